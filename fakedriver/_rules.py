"""What both protocol models share: the state, the persona, the seeded RNG, the
strict/lenient switch for lifecycle violations, and the notes a call leaves in the journal."""

from __future__ import annotations

import random

from ._errors import ProtocolViolation
from ._persona import Persona
from ._state import State


class Model:
    """Base of :class:`NetworkModel` and :class:`IpamModel`.

    A method first reads and checks everything, then changes state, so a refused call
    changes nothing. Lifecycle violations go through :meth:`violate`: in strict mode it
    raises; otherwise it records the finding and the method carries on as a tolerant
    driver would. What a call did beyond what its name says (an implicit Leave, say) goes
    through :meth:`note`, and shows in the call's journal entry.
    """

    def __init__(self, state: State, persona: Persona, rng: random.Random) -> None:
        self.state = state
        self.persona = persona
        self.rng = rng
        #: Index of the call being served; set by the app before each call.
        self.call = 0
        #: Violations found in the current call (non-strict mode only).
        self.findings: list[ProtocolViolation] = []
        #: What the current call did beyond what its name says; set by the app per call.
        self.notes: list[str] = []

    def violate(self, error: ProtocolViolation) -> None:
        if self.persona.strict:
            raise error
        self.findings.append(error)

    def note(self, text: str) -> None:
        self.notes.append(text)
