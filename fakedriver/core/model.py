"""What the protocol models share: the state, the persona, the seeded RNG, the index of
the call being served, the strict/lenient switch for lifecycle violations, and the notes
a call leaves in the journal."""

from __future__ import annotations

import random

from .errors import ProtocolViolation
from .persona import Persona
from .ports import Links
from .state import State


class Model:
    """Base of the protocol models. One is made for each call, so everything about the
    call (its journal index, the violations it found) lives on an object that dies with it.

    A method first reads and checks everything, then changes state, so a refused call
    changes nothing; it changes state only through the methods of `State`, which keep
    the indexes and say what changed (the driver commits that). Lifecycle
    violations go through `violate()`: in strict mode it
    raises; otherwise it records the finding and the method carries on as a tolerant
    driver would. What a call did beyond what its name says goes through `note()`, or
    comes from its changes (an implicit Leave, say: see `fakedriver.core.changes`), and
    shows in the call's journal entry.

    :param call: the journal index of the call being served (records remember it).
    :param links: makes the host interfaces handed out by Join (``None``: none).
    """

    def __init__(
        self,
        state: State,
        persona: Persona,
        rng: random.Random,
        call: int,
        links: Links | None = None,
    ) -> None:
        self.state = state
        self.persona = persona
        self.rng = rng
        self.call = call
        self.links = links
        #: Violations this call found (non-strict mode only).
        self.findings: list[ProtocolViolation] = []
        #: What this call did beyond what its name says (besides its changes' notes).
        self.notes: list[str] = []

    def violate(self, error: ProtocolViolation) -> None:
        if self.persona.strict:
            raise error
        self.findings.append(error)

    def note(self, text: str) -> None:
        self.notes.append(text)
