"""One HTTP/1.1 connection of the plugin socket, parsed by h11.

h11 is a small, strict, sans-I/O HTTP/1.1 parser: it refuses what a smuggler or a broken
client sends (a bad request line, a ``Content-Length`` that is not digits or disagrees
with another, a ``Transfer-Encoding`` other than ``chunked``, a header block larger than
its limit) and decodes chunked bodies, while the socket stays ours: the reads (with their
timeouts) and the writes are done here, so a fault can still close the connection
before or in the middle of an answer.

Every refusal is a real HTTP/1.1 response (status line, JSON body in the protocol's
dialect) after which the connection is closed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import h11

from ..core.http import encode, error_key, headers, reason
from ..transports.peer import gone, hang_up


@dataclass(frozen=True)
class Limits:
    """What one connection may send, and how long it may take.

    :param max_body: the largest request body, in bytes (413 beyond).
    :param max_header: the largest request line and headers, in bytes (431 beyond).
    :param read_timeout: seconds from a request's first byte to its last (408 beyond).
    :param idle_timeout: seconds a keep-alive connection may wait for its next request;
        longer than Go's 90 s idle timeout, so that dockerd always closes first.
    :param max_connections: connections served at once; beyond, the one idle the longest
        is closed to make room, or, when every one is in a request, the newcomer gets 503.
    """

    max_body: int = 1 << 20
    max_header: int = 16 << 10
    read_timeout: float = 30.0
    idle_timeout: float = 120.0
    max_connections: int = 512


@dataclass(frozen=True)
class Request:
    """A whole request: verb, target, headers (by lower-case name) and body; ``raw_headers``
    as the client wrote them, in order and in their case (what a proxy forwards), and its
    HTTP version."""

    verb: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    raw_headers: tuple[tuple[str, str], ...] = ()
    http_version: str = "1.1"


@dataclass(frozen=True)
class Answer:
    """What to send back; ``drop`` is ``"before"`` or ``"mid_body"`` to close the
    connection without an answer or halfway through it (see ``Reply.drop``)."""

    status: int
    body: bytes
    drop: str | None = None
    #: The answer's own headers (``Content-Length`` is added), instead of the plugin
    #: protocol's content type: the dashboard's page and its JSON.
    headers: tuple[tuple[str, str], ...] | None = None


#: Serves one request; the callable tells whether the client has gone away.
App = Callable[[Request, Callable[[], bool]], Answer]


#: How much of a request's first bytes is kept to find its target.
_HEAD = 1024


def _target(head: bytes) -> str:
    """The target of a request line, as far as it reads as one (``""`` if not)."""
    parts = head.partition(b"\r\n")[0].split(b" ")
    return parts[1].decode("latin-1") if len(parts) == 3 else ""


class Refused(Exception):
    """The request cannot be served; answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _Closed(Exception):
    """The client closed the connection, or left it idle too long."""


class Connection:
    """Serves the requests of one accepted socket, one after the other, until either
    side closes it, or the server stops it (`evict()`, `stop()`). `run()`
    never raises.

    Between requests it is *idle* (`idle_since` is when it began to wait); from the
    first byte of a request until its answer is written it is *busy* (``None``). The
    server may close an idle connection at any time; a busy one ends after its answer.
    """

    def __init__(
        self, sock: socket.socket, app: App, limits: Limits, log: Callable[[str], None]
    ) -> None:
        self.sock, self.app, self.limits, self.log = sock, app, limits, log
        self.h11 = self._parser(b"")
        self.keep_alive = False  # whether the request being served allows another
        self.verb, self.target = "", ""  # of the request being read (a refusal's dialect)
        self.deadline: float | None = None  # when the request being read must be whole
        self.head = b""  # its first bytes: the target of a request h11 refused
        self.timeout: float | None = None  # the socket's, as last set
        self._lock = threading.Lock()  # idle_since and closing change together
        #: When it began to wait for its next request (``time.monotonic()``); ``None``
        #: while it is in a request.
        self.idle_since: float | None = time.monotonic()
        #: When the last answer began to be written: the connection is idle from then on
        #: (so one answered before another connected counts as idle the longer, however
        #: late its thread comes back to wait).
        self.answered: float | None = None
        #: Set by the server: serve no further request.
        self.closing = False

    def _parser(self, pending: bytes) -> h11.Connection:
        """h11 parses one request each (it would also frame the answers, which are
        written here); ``pending`` is what the client already sent of the next."""
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header)
        if pending:
            parser.receive_data(pending)
        return parser

    def run(self) -> None:
        try:
            while self._serve_one():
                pass
        except (_Closed, OSError):
            pass
        finally:
            hang_up(self.sock)
            self.sock.close()

    # -- idle or busy, and stopped by the server ------------------------------------------
    def evict(self) -> bool:
        """Close the connection if it is idle; whether it was (and is now closed)."""
        with self._lock:
            if self.closing or self.idle_since is None:
                return False
            self.closing = True
        hang_up(self.sock)  # its thread wakes from recv() and ends
        return True

    def stop(self) -> None:
        """Serve no further request: an idle connection is closed now; a busy one stops
        reading (a request not yet whole is not served, a held call sees its client gone)
        and its answer, if it has one, is the last, with ``Connection: close``."""
        with self._lock:
            self.closing = True
            idle = self.idle_since is not None
        if idle:
            hang_up(self.sock)
        else:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RD)

    def _idle(self) -> None:
        with self._lock:
            if self.closing:
                raise _Closed
            if self.answered is not None:  # idle from when its answer began to be written
                self.idle_since = self.answered
            elif self.idle_since is None:  # (idle from its accept: that wait goes on)
                self.idle_since = time.monotonic()
            self.answered = None

    def _busy(self) -> None:
        with self._lock:
            if self.closing:  # evicted or stopped as the request came in: not served
                raise _Closed
            self.idle_since = None

    # -- serving ----------------------------------------------------------------------------
    def _serve_one(self) -> bool:
        """Serve one request; whether the connection stays open for the next."""
        self.verb, self.target = "", ""
        pending = self.h11.trailing_data[0]  # a pipelined request already started
        if pending:
            self._busy()
        else:
            self._idle()
        self.h11 = self._parser(pending)
        self.head = bytes(pending[:_HEAD])
        self.deadline = time.monotonic() + self.limits.read_timeout if pending else None
        try:
            request = self._read()
        except Refused as refused:
            self._refuse(refused)
            return False
        try:
            answer = self.app(request, gone(self.sock))
        except Exception as exc:  # a bug in the fake: still a response, in the protocol
            self._refuse(Refused(500, f"internal error in fakedriver: {exc!r}"))
            return False
        return self._send(answer)

    # -- reading ----------------------------------------------------------------------------
    def _read(self) -> Request:
        event = self._next()
        if isinstance(event, h11.ConnectionClosed):
            raise _Closed
        assert isinstance(event, h11.Request)
        self.verb, self.target = event.method.decode("latin-1"), event.target.decode("latin-1")
        if event.http_version not in (b"1.0", b"1.1"):
            raise Refused(400, f"HTTP/{event.http_version.decode()} is not served; use HTTP/1.1")
        # one list of the headers, as written (h11's Headers is a Sequence: each pass over
        # it indexes every item through Python code, three passes cost 10 us a call)
        raw = tuple(
            (n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers.raw_items()
        )
        size = len(event.target) + sum(len(name) + len(value) + 4 for name, value in raw)
        if size > self.limits.max_header:  # h11 checks only a head that is still incomplete
            raise Refused(431, f"request headers over the limit of {self.limits.max_header} bytes")
        fields = {name.lower(): value for name, value in raw}  # names are ASCII tokens
        version = event.http_version.decode("latin-1")
        tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
        self.keep_alive = event.http_version == b"1.1" and "close" not in tokens
        length = fields.get("content-length")
        if length is not None and int(length) > self.limits.max_body:  # h11 checked: digits
            raise Refused(413, f"request body over the limit of {self.limits.max_body} bytes")
        if self.h11.they_are_waiting_for_100_continue:
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = bytearray()
        while not isinstance(event := self._next(), h11.EndOfMessage):
            if isinstance(event, h11.ConnectionClosed):
                raise _Closed
            assert isinstance(event, h11.Data)
            body += event.data
            if len(body) > self.limits.max_body:  # a chunked body has no length up front
                raise Refused(413, f"request body over the limit of {self.limits.max_body} bytes")
        return Request(self.verb, self.target, fields, bytes(body), raw, version)

    def _next(self) -> h11.Event:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise Refused(exc.error_status_hint, f"bad request: {exc}") from None
            if event is not h11.NEED_DATA:
                assert not isinstance(event, type)
                return event
            self._receive()

    def _receive(self) -> None:
        if self.deadline is None:  # waiting for the first byte of a request
            timeout: float = self.limits.idle_timeout
        else:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise self._too_slow()
        self._timeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            if self.deadline is None:
                raise _Closed from None  # idle: close quietly, as any keep-alive server does
            raise self._too_slow() from None
        if len(self.head) < _HEAD:
            self.head += data[: _HEAD - len(self.head)]
        if data and self.deadline is None:
            self._busy()
            self.deadline = time.monotonic() + self.limits.read_timeout
        self.h11.receive_data(data)

    def _timeout(self, seconds: float) -> None:
        """Set the socket's timeout; on a keep-alive connection it stays the idle timeout
        for reads and writes alike, so the common call sets nothing (each set is two
        system calls)."""
        if seconds != self.timeout:
            self.sock.settimeout(seconds)
            self.timeout = seconds

    def _too_slow(self) -> Refused:
        return Refused(408, f"request not received within {self.limits.read_timeout} s")

    # -- writing ----------------------------------------------------------------------------
    def _send(self, answer: Answer) -> bool:
        """Write the answer (or drop the connection, as a fault says); whether the
        connection stays open."""
        if answer.drop == "before":
            return False
        self._timeout(self.limits.idle_timeout)  # a client that never reads its answer
        close = not self.keep_alive or answer.drop is not None or self.closing
        head = response_head(answer.status, answer.body, close=close, own=answer.headers)
        body = answer.body if self.verb != "HEAD" else b""
        if answer.drop == "mid_body":
            body = body[: len(body) // 2]
        self.answered = time.monotonic()
        self.sock.sendall(head + body)
        return not close

    def _refuse(self, refused: Refused) -> None:
        self.log(f"fakedriver: refused a request: {refused.status} {refused.message}")
        target = self.target or _target(self.head)
        answer = encode({error_key(target): refused.message})
        self._timeout(min(self.limits.read_timeout, 5.0))

        self.sock.sendall(response_head(refused.status, answer, close=True) + answer)


def response_head(
    status: int,
    body: bytes,
    *,
    close: bool,
    own: tuple[tuple[str, str], ...] | None = None,
) -> bytes:
    """The status line and headers of an answer carrying ``body`` (``own`` headers and its
    length, when given, else the plugin protocol's). Written by hand rather than through
    h11: the answers are the server's own, and h11's checks of them cost as much as
    parsing the request."""
    fields = headers(body) if own is None else [*own, ("Content-Length", str(len(body)))]
    lines = [f"HTTP/1.1 {status} {reason(status)}", *(f"{k}: {v}" for k, v in fields)]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
