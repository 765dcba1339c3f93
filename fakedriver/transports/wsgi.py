"""The WSGI transport: ``FakeNetDriver`` as a WSGI application.

Behind a WSGI server that exposes the socket (werkzeug's sets ``werkzeug.socket``) a
dropped connection is a real closed socket; with no socket (``werkzeug.test.Client``,
``httpx.WSGITransport``) it is [`ConnectionDropped`][fakedriver.ConnectionDropped].
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request

from ..core.http import headers, not_allowed, reason
from ..core.ports import Responder
from ..core.reply import ConnectionDropped, Outcome, Reply
from .peer import gone, hang_up

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def serve(
    driver: Responder, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """Serve one WSGI request on ``driver``."""
    request = Request(environ)
    if request.method != "POST":
        status, body = not_allowed(request.method)
        start_response(f"{status} {reason(status)}", headers(body))
        return [body]
    sock: socket.socket | None = environ.get("werkzeug.socket")
    reply = driver.respond(request.path, request.get_data(), gone=gone(sock) if sock else None)
    return RENDER[reply.outcome](reply, sock, start_response)


def _answer(reply: Reply, sock: socket.socket | None, start: StartResponse) -> Iterable[bytes]:
    start(f"{reply.status} {reason(reply.status)}", headers(reply.body))
    return [reply.body]


def _dropped(reply: Reply, sock: socket.socket | None, start: StartResponse) -> Iterable[bytes]:
    if sock is None:
        raise ConnectionDropped(f"{reply.why}: connection dropped")
    hang_up(sock)
    return []


def _cut(reply: Reply, sock: socket.socket | None, start: StartResponse) -> Iterable[bytes]:
    if sock is None:
        raise ConnectionDropped(f"{reply.why}: connection dropped")
    start(f"{reply.status} {reason(reply.status)}", headers(reply.body))
    return _half_then_hang_up(reply.body, sock)


def _never(reply: Reply, sock: socket.socket | None, start: StartResponse) -> Iterable[bytes]:
    raise reply.never_answered()


#: What the WSGI app does for each outcome: the body it returns, or the connection it
#: closes (no socket: it raises `ConnectionDropped`). The client of a timed-out call has
#: gone: its connection is closed too.
RENDER: dict[Outcome, Callable[[Reply, socket.socket | None, StartResponse], Iterable[bytes]]] = {
    Outcome.ANSWER: _answer,
    Outcome.DROP_BEFORE: _dropped,
    Outcome.DROP_MID_BODY: _cut,
    Outcome.TIMED_OUT: _dropped,
    Outcome.NEVER_ANSWERED: _never,
}


def _half_then_hang_up(body: bytes, sock: socket.socket) -> Iterator[bytes]:
    yield body[: len(body) // 2]
    hang_up(sock)
