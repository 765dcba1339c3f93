"""One journal entry: a [`Call`][fakedriver.Call] the fake served (or did not answer). A
module of its own, importing nothing, so that what a transport gets (``reply``) and what
the core asks of the world (``ports``) can name it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One served call.

    :param index: position in the journal, from 0.
    :param method: ``"NetworkDriver.Join"``, ``"IpamDriver.RequestPool"``, ``"Plugin.Activate"``;
        for an unknown path, the path without its leading slash.
    :param request: the decoded request object, or ``None`` when the body was not a JSON object.
    :param response: the answer object sent back.
    :param status: the HTTP status sent back.
    :param error: the error text when the call was refused, else ``None``.
    :param violations: lifecycle rules this call broke and that were tolerated (non-strict mode).
    :param fault: the fault applied to this call, if any.
    :param timestamp: ``time.time()`` when the call was served.
    :param notes: what the call did beyond what its name says, e.g. the implicit Leave of
        a DeleteEndpoint for an endpoint that was still joined.
    """

    index: int
    method: str
    request: dict[str, Any] | None
    response: dict[str, Any]
    status: int
    error: str | None = None
    violations: tuple[str, ...] = field(default_factory=tuple)
    fault: str | None = None
    timestamp: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether the call was answered with no error (``error`` is ``None``)."""
        return self.error is None

    def __str__(self) -> str:
        mark = "ok" if self.ok else f"ERROR {self.status}: {self.error}"
        notes = "".join(f" (note: {note})" for note in self.notes)
        return f"#{self.index} {self.method} -> {mark}{notes}"
