"""Serving a call with the fault rules applied, and turning the reply into HTTP.

``respond`` decides *what* the client gets (a status and body bytes, or a dropped
connection); each transport shows it its own way: the WSGI app closes the real socket
when there is one, the ``responses`` route raises the exception ``requests`` would.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request

from ._faults import TIMING, Rule
from ._journal import Call
from ._wire import encode

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ._app import FakeNetDriver

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
#: Outcomes for which the call is still served by the driver (its state changes).
SERVED = frozenset({"lost_reply", "answer", "truncated", "drop_mid_body"})


class ConnectionDropped(Exception):
    """A fault closed the connection; raised where there is no real socket to close."""


@dataclass(frozen=True)
class Reply:
    """What the client gets for one call.

    :param status: the HTTP status (0 when no answer is sent at all).
    :param body: the bytes of the answer.
    :param drop: ``"before"`` (close without answering) or ``"mid_body"`` (close halfway
        through ``body``), else ``None``.
    :param timed_out: the client gave up waiting (a ``hang`` outlived its timeout).
    """

    status: int
    body: bytes
    call: Call
    drop: str | None = None
    timed_out: bool = False


def respond(
    fake: FakeNetDriver,
    path: str,
    body: bytes,
    *,
    timeout: float | None = None,
    gone: Callable[[], bool] | None = None,
) -> Reply:
    method = path.lstrip("/")
    with fake._lock:
        fired = fake.faults.select(method, _peek(body)) if fake.faults.rules else []
        if not fired:
            call = fake._journal(method, body)
            fake._notify(call)
            return Reply(call.status, encode(call.response), call)
    names = " + ".join(fake.faults.describe(rule) for rule in fired)
    delay = sum(rule.seconds for rule in fired if rule.kind == "latency")
    if timeout is not None and delay > timeout:  # served, but the client stops waiting
        fake.clock.sleep(timeout)
        with fake._lock:
            call = fake._journal(method, body, fault=names)
            call = fake.amend(
                call, status=0, error=f"no answer: client gave up after {timeout} s (served)"
            )
            fake._notify(call)
        return Reply(0, b"", call, drop="before", timed_out=True)
    if delay:
        fake.clock.sleep(delay)
    for rule in fired:
        if rule.kind in ("hold", "hang"):
            waited = _wait(fake, rule, timeout, gone)
            if waited is not None:
                return _unanswered(fake, method, body, names, waited)
    outcome = next((rule for rule in fired if rule.kind not in TIMING), None)
    with fake._lock:
        if outcome is None or outcome.kind in SERVED:
            reply = _served(fake, method, body, names, outcome)
        else:
            reply = _refused(fake, method, body, names, outcome)
        fake._notify(reply.call)
    return reply


def _wait(
    fake: FakeNetDriver, rule: Rule, timeout: float | None, gone: Callable[[], bool] | None
) -> str | None:
    """Hold the call; ``None`` once released, else why it ends unanswered."""
    if rule.kind == "hang" and timeout is not None and not rule._release.is_set():
        fake.clock.sleep(timeout)
        return f"client gave up after {timeout} s"
    return None if rule.hold(gone) else "client went away"


def _unanswered(fake: FakeNetDriver, method: str, body: bytes, names: str, why: str) -> Reply:
    with fake._lock:
        call = fake.record(method, _peek(body), {}, 0, f"no answer: {why}", fault=names)
        fake._notify(call)
    return Reply(0, b"", call, drop="before", timed_out=why.startswith("client gave up"))


def _served(
    fake: FakeNetDriver, method: str, body: bytes, names: str, outcome: Rule | None
) -> Reply:
    call = fake._journal(method, body, fault=names)
    if outcome is None:
        return Reply(call.status, encode(call.response), call)
    if outcome.kind == "lost_reply":
        answer = {_error_key(method): outcome.message}
        call = fake.amend(call, status=200, response=answer, error=outcome.message)
    elif outcome.kind == "answer":
        call = fake.amend(call, response=_merge(call.response, outcome.answer or {}))
    payload = encode(call.response)
    if outcome.kind == "truncated":
        return Reply(call.status, payload[: len(payload) // 2], call)
    drop = "mid_body" if outcome.kind == "drop_mid_body" else None
    return Reply(call.status, payload, call, drop=drop)


def _refused(fake: FakeNetDriver, method: str, body: bytes, names: str, outcome: Rule) -> Reply:
    """The call is not served: the fault alone decides the answer."""
    key, message = _error_key(method), outcome.message
    status, payload, drop = {
        "error": (200, encode({key: message}), None),
        "status": (
            outcome.status,
            outcome.body.encode() if outcome.body is not None else encode({"Err": message}),
            None,
        ),
        "not_found": (404, b"404 page not found\n", None),
        "empty_body": (200, b"", None),
        "invalid_json": (200, b'{"Err": this is not JSON', None),
        "wrong_key": (200, encode({"Err" if key == "Error" else "Error": message}), None),
        "drop": (0, b"", "before"),
    }[outcome.kind]
    answer = _peek(payload) or {}
    error = message if outcome.kind in ("error", "status", "wrong_key") else outcome.kind
    call = fake.record(method, _peek(body), answer, status, error, fault=names)
    return Reply(status, payload, call, drop=drop)


def _merge(answer: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``answer``, object fields merged rather than replaced."""
    merged = dict(answer)
    for key, value in extra.items():
        old = merged.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        merged[key] = _merge(old, value) if both else value  # type: ignore[arg-type]
    return merged


def _error_key(method: str) -> str:
    return "Error" if method.startswith("IpamDriver.") else "Err"


def _peek(body: bytes) -> dict[str, Any] | None:
    """The request as a JSON object, if it is one (for matching rules and the journal)."""
    try:
        value = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# -- WSGI ---------------------------------------------------------------------------------
def serve_wsgi(
    fake: FakeNetDriver, request: Request, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    sock: socket.socket | None = environ.get("werkzeug.socket")
    reply = fake.respond(request.path, request.get_data(), gone=_gone(sock) if sock else None)
    if reply.drop is None:
        start_response(f"{reply.status} {_reason(reply.status)}", _headers(reply.body))
        return [reply.body]
    if sock is None:
        raise ConnectionDropped(f"fakedriver fault ({reply.call.fault}): connection dropped")
    if reply.drop == "before":
        _close(sock)
        return []
    start_response(f"{reply.status} {_reason(reply.status)}", _headers(reply.body))
    return _half_then_close(reply.body, sock)


def _half_then_close(body: bytes, sock: socket.socket) -> Iterator[bytes]:
    yield body[: len(body) // 2]
    _close(sock)


def _headers(body: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _gone(sock: socket.socket) -> Callable[[], bool]:
    """Whether the peer has closed the connection (readable with nothing to read)."""

    def check() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    return check
