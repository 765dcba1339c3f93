"""What the client gets for one call: the [`Reply`][fakedriver.Reply] every transport shows in its
own way, and the [`Outcome`][fakedriver.Outcome] that says how.

The driver decides the reply (the fault kinds shape it: ``kinds``); a transport only
renders it, through one table from outcome to what its library does: the socket server
and the WSGI app close a real connection, the in-process routes raise the error their
client would. A transport asks for it of a ``ports.Responder`` (a fake), the one thing of
the core it needs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .call import Call


class ConnectionDropped(Exception):
    """A fault closed the connection; raised where there is no real socket to close."""


class NeverAnswered(Exception):
    """A ``hang`` rule held a call whose client set no timeout and cannot be seen to go
    away (an in-process client: ``requests`` without ``timeout=``, a WSGI test client):
    raised at once instead of blocking the test for ever. The call is journaled as not
    answered. Give the client a timeout, or ``release()`` the rule first."""

    #: Why: what the journal entry's ``error`` says too.
    WHY = "this call would never be answered: the client set no timeout"


class Outcome(enum.Enum):
    """What a transport does with a [`Reply`][fakedriver.Reply]: each transport maps every
    outcome, through one table, to what its client library does."""

    #: Send the status and the body (which a fault may have cut short, or made not JSON).
    ANSWER = "answer"
    #: Close the connection without answering (a ``drop``; or the client went away).
    DROP_BEFORE = "drop before the answer"
    #: Send the status line, the headers and half the body, then close the connection.
    DROP_MID_BODY = "drop in the middle of the body"
    #: No answer: the client's timeout passed first (raise its own timeout error).
    TIMED_OUT = "timed out"
    #: No answer could ever come: the client set no timeout and cannot be seen to go
    #: away (raise [`NeverAnswered`][fakedriver.NeverAnswered] at once).
    NEVER_ANSWERED = "never answered"


@dataclass(frozen=True)
class Reply:
    """What the client gets for one call.

    :param status: the HTTP status (0 when no answer is sent at all).
    :param body: the bytes of the answer.
    :param call: the journal entry of the call.
    :param outcome: what the transport does: answer, or how it fails the call.
    """

    status: int
    body: bytes
    call: Call
    outcome: Outcome = Outcome.ANSWER

    @property
    def drop(self) -> str | None:
        """``"before"`` (close without answering: a drop, a timeout, never answered) or
        ``"mid_body"`` (close halfway through `body`), else ``None``."""
        if self.outcome is Outcome.ANSWER:
            return None
        return "mid_body" if self.outcome is Outcome.DROP_MID_BODY else "before"

    @property
    def timed_out(self) -> bool:
        """Whether the client gave up waiting (a hold, hang or latency outlived its timeout)."""
        return self.outcome is Outcome.TIMED_OUT

    @property
    def why(self) -> str:
        """``"fakedriver fault (<rules>)"``: the head of a dropped connection's message."""
        return f"fakedriver fault ({self.call.fault})"

    def never_answered(self) -> NeverAnswered:
        """The error a transport raises for `Outcome.NEVER_ANSWERED`."""
        rules = self.call.fault
        return NeverAnswered(
            f"{self.call.method}: {NeverAnswered.WHY} (and the {rules!r} rule holds it)"
        )
