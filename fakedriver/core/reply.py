"""What the client gets for one call: the [`Reply`][fakedriver.Reply] every transport shows in its
own way, and how a fault's outcome shapes it.

The engine decides the reply; a transport only renders it: the socket server and the WSGI
app close a real connection, the in-process routes raise the error their client would.
A transport asks for it of a `Responder` (the engine), the one thing of the core it needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .faults import Faults, Rule
from .http import encode, error_key
from .journal import Call

#: Outcomes for which the call is still served by the driver (its state changes).
SERVED = frozenset({"lost_reply", "answer", "truncated", "drop_mid_body"})


class ConnectionDropped(Exception):
    """A fault closed the connection; raised where there is no real socket to close."""


class NeverAnswered(Exception):
    """A ``hang`` rule held a call whose client set no timeout and cannot be seen to go
    away (an in-process client: ``requests`` without ``timeout=``, a WSGI test client):
    raised at once instead of blocking the test for ever. The call is journaled as not
    answered. Give the client a timeout, or ``release()`` the rule first."""

    #: Why: what the journal entry's ``error`` says too.
    WHY = "this call would never be answered: the client set no timeout"


@dataclass(frozen=True)
class Reply:
    """What the client gets for one call.

    :param status: the HTTP status (0 when no answer is sent at all).
    :param body: the bytes of the answer.
    :param call: the journal entry of the call.
    :param drop: ``"before"`` (close without answering) or ``"mid_body"`` (close halfway
        through ``body``), else ``None``.
    :param timed_out: the client gave up waiting (a ``hang`` outlived its timeout).
    """

    status: int
    body: bytes
    call: Call
    drop: str | None = None
    timed_out: bool = False

    @property
    def why(self) -> str:
        """``"fakedriver fault (<rules>)"``: the head of a dropped connection's message."""
        return f"fakedriver fault ({self.call.fault})"



class Responder(Protocol):
    """What a transport serves a call on: a fake's `Engine`."""

    @property
    def faults(self) -> Faults:
        """The fault rules: with none, no call can be held, and a transport may serve it
        inline rather than off its event loop."""

    def respond(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> Reply:
        """Serve one call with the fault rules applied (see `Engine.respond()`)."""

def as_sent(call: Call, outcome: Rule | None) -> Call:
    """The journal entry of a served call once ``outcome`` changed its answer."""
    if outcome is None:
        return call
    if outcome.kind == "lost_reply":
        answer = {error_key(call.method): outcome.message}
        return dataclasses.replace(call, status=200, response=answer, error=outcome.message)
    if outcome.kind == "answer":
        return dataclasses.replace(call, response=merge(call.response, outcome.answer or {}))
    return call


def served(call: Call, outcome: Rule | None) -> Reply:
    """The reply to a call the driver served (``outcome`` one of `SERVED` or none)."""
    payload = encode(call.response)
    if outcome is not None and outcome.kind == "truncated":
        return Reply(call.status, payload[: len(payload) // 2], call)
    drop = "mid_body" if outcome is not None and outcome.kind == "drop_mid_body" else None
    return Reply(call.status, payload, call, drop=drop)


def refused(method: str, outcome: Rule) -> tuple[int, bytes, str | None, str]:
    """What a fault answers instead of the driver: status, body, drop and journal error."""
    key, message = error_key(method), outcome.message
    status, payload, drop = {
        "error": (200, encode({key: message}), None),
        "status": (
            outcome.status or 500,
            outcome.body.encode() if outcome.body is not None else encode({"Err": message}),
            None,
        ),
        "not_found": (404, b"404 page not found\n", None),
        "empty_body": (200, b"", None),
        "invalid_json": (200, b'{"Err": this is not JSON', None),
        "wrong_key": (200, encode({"Err" if key == "Error" else "Error": message}), None),
        "drop": (0, b"", "before"),
    }[outcome.kind]
    error = message if outcome.kind in ("error", "status", "wrong_key") else outcome.kind
    return status, payload, drop, error


def merge(answer: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``answer``, object fields merged rather than replaced."""
    merged = dict(answer)
    for key, value in extra.items():
        old = merged.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        merged[key] = merge(old, value) if both else value  # type: ignore[arg-type]
    return merged
