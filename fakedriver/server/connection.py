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


#: Serves one request without waiting, on the event loop: ``None`` when it may wait.
Quick = Callable[[Request], Answer | None]


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


def _internal(exc: Exception) -> Refused:
    """A bug in the fake, answered as a refusal in the protocol's dialect all the same."""
    return Refused(500, f"internal error in fakedriver: {exc!r}")


class _Closed(Exception):
    """The client closed the connection, or left it idle too long."""


class _Elsewhere(Exception):
    """The loop cannot go on with this connection without waiting: a thread takes it."""


#: What `Connection.readable()` tells the loop: keep watching the connection, hand it to
#: a thread of its own, or forget it (it is closed).
KEEP, THREAD, CLOSED = "keep", "thread", "closed"

#: After the rest of an output is written, a thread: ends the connection, begins the next
#: request, or reads on in this one (the rest was a ``100 Continue``).
_THEN_CLOSE, _THEN_NEXT, _THEN_MORE = "close", "next", "more"


class Connection:
    """Serves the requests of one accepted socket, one after the other, until either
    side closes it, or the server stops it (`evict()`, `stop()`).

    It is served in one of two ways. In a thread of its own, `run()` reads, serves and
    writes, waiting as long as each step takes (and never raises). On the server's event
    loop, `readable()` serves, without waiting, what the client has sent so far: each
    request whole is answered at once by ``quick``, the loop's server of calls that cannot
    wait; a call that may wait (``quick`` answers ``None``), or an answer the socket cannot
    take at once, hands the connection to a thread, which goes on with `run()` from
    there.

    Between requests it is *idle* (`idle_since` is when it began to wait); from the
    first byte of a request until its answer is written it is *busy* (``None``). The
    server may close an idle connection at any time; a busy one ends after its answer.
    """

    def __init__(
        self,
        sock: socket.socket,
        app: App,
        limits: Limits,
        log: Callable[[str], None],
        quick: Quick | None = None,
        back: Callable[[Connection], bool] | None = None,
    ) -> None:
        self.sock, self.app, self.limits, self.log = sock, app, limits, log
        #: Answers a request without waiting, or ``None`` when it may wait (on the loop).
        self.quick = quick
        #: Gives the connection back to the loop, from its thread, between two requests;
        #: whether the loop took it (not when it has stopped). Only with ``quick``.
        self.back = back if quick is not None else None
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
        # the request being read: its head (h11's event, once parsed) and body so far
        self._fields: dict[str, str] = {}
        self._raw: tuple[tuple[str, str], ...] = ()
        self._version = "1.1"
        self._body = bytearray()
        self._whole: Request | None = None  # read whole by the loop, to be served by a thread
        self._out = b""  # what the loop could not write at once, for the thread to write
        self._then = _THEN_NEXT  # and what the thread does after writing it

    def _parser(self, pending: bytes) -> h11.Connection:
        """h11 parses one request each (it would also frame the answers, which are
        written here); ``pending`` is what the client already sent of the next."""
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header)
        if pending:
            parser.receive_data(pending)
        return parser

    def run(self) -> bool:
        """Serve in this thread until the connection ends (from its accept, or from where
        the loop handed it over), or, when it came from the loop, until it is idle again
        and the loop takes it `back`: whether it did (the connection is still open)."""
        try:
            if self.closing:
                raise _Closed
            while self._serve_one():
                if not self._begin() and self.back is not None and self.back(self):
                    return True
        except (_Closed, OSError):
            pass
        except BaseException:
            self.end()
            raise
        self.end()
        return False

    def blocking(self, blocking: bool) -> None:
        """Make the socket wait in its calls (in a thread, which sets its own timeouts), or
        never (on the loop)."""
        self.sock.setblocking(blocking)
        self.timeout = None if blocking else 0.0

    def end(self) -> None:
        """Close the connection under the client."""
        hang_up(self.sock)
        self.sock.close()

    # -- idle or busy, and stopped by the server ------------------------------------------
    def evict(self) -> bool:
        """Close the connection if it is idle; whether it was (and is now closed). One
        whose client has sent the start of a request that is not read yet is not idle."""
        with self._lock:
            if self.closing or self.idle_since is None or self._unread():
                return False
            self.closing = True
        hang_up(self.sock)  # its thread wakes from recv() (the loop sees it end) and ends
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

    def _unread(self) -> bool:
        """Whether the client has sent bytes not read yet (not the end of its side)."""
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except OSError:  # nothing to read (BlockingIOError), or the socket is gone
            return False

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

    # -- serving in a thread ----------------------------------------------------------------
    def _begin(self) -> bool:
        """Get ready for the next request; whether it has begun (pipelined after the last)."""
        self.verb, self.target = "", ""
        pending = self.h11.trailing_data[0]  # a pipelined request already started
        if pending:
            self._busy()
        else:
            self._idle()
        self.h11 = self._parser(pending)
        self.head = bytes(pending[:_HEAD])
        self.deadline = time.monotonic() + self.limits.read_timeout if pending else None
        self._body = bytearray()
        return bool(pending)

    def _serve_one(self) -> bool:
        """Serve one request, waiting as long as it takes; whether the connection stays
        open for the next."""
        if self._out:  # the loop's output, not all written
            out, self._out = self._out, b""
            self._timeout(self.limits.idle_timeout)
            self.sock.sendall(out)
            if self._then != _THEN_MORE:
                return self._then == _THEN_NEXT
        request, self._whole = self._whole, None
        try:
            if request is None:
                request = self._read(wait=True)
                assert request is not None
        except Refused as refused:
            self._refuse(refused, wait=True)
            return False
        try:
            answer = self.app(request, gone(self.sock))
        except Exception as exc:  # a bug in the fake: still a response, in the protocol
            self._refuse(_internal(exc), wait=True)
            return False
        return self._send(answer, wait=True)

    # -- serving on the loop ----------------------------------------------------------------
    def readable(self) -> str:
        """Serve what the client sent, without waiting (the loop saw the socket readable):
        `KEEP` watching it, hand it to a `THREAD`, or it is over: `CLOSED` (the loop
        closes it: `end()`)."""
        assert self.quick is not None
        try:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return KEEP
            self._feed(data)
            while True:
                request = self._read(wait=False)
                if request is None:
                    return KEEP
                try:
                    answer = self.quick(request)
                except Exception as exc:  # a bug in the fake: as in a thread
                    raise _internal(exc) from None
                if answer is None:  # it may wait: a thread serves it
                    self._whole = request
                    return THREAD
                if not self._send(answer, wait=False):
                    return CLOSED
                if not self._begin():  # nothing of the next request yet
                    return KEEP
        except _Elsewhere:
            return THREAD
        except Refused as refused:
            self._refuse(refused, wait=False)
        except (_Closed, OSError):
            pass
        return CLOSED

    def expiry(self) -> float:
        """When the loop must look at the connection again, if nothing comes: the end of
        its idle time, or the time by which its request must be whole."""
        if self.deadline is not None:
            return self.deadline
        return (self.idle_since or time.monotonic()) + self.limits.idle_timeout

    def expire(self, now: float) -> bool:
        """On the loop: whether the connection's time is up, and it is to be closed (a
        request not whole in time is answered 408 first)."""
        if now < self.expiry():
            return False
        if self.deadline is not None:
            self._refuse(self._too_slow(), wait=False)
        return True

    # -- reading ----------------------------------------------------------------------------
    def _read(self, wait: bool) -> Request | None:
        """The request, once whole; ``None`` (when not to ``wait``) while it is not yet."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise Refused(exc.error_status_hint, f"bad request: {exc}") from None
            if event is h11.NEED_DATA:
                if not wait:
                    return None
                self._receive()
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.limits.max_body:  # chunked: no length up front
                    raise self._too_big()
            elif isinstance(event, h11.Request):
                self._head(event, wait)
            elif isinstance(event, h11.EndOfMessage):
                body = bytes(self._body)
                return Request(self.verb, self.target, self._fields, body, self._raw, self._version)
            else:
                assert isinstance(event, h11.ConnectionClosed)
                raise _Closed

    def _head(self, event: h11.Request, wait: bool) -> None:
        """Take the request line and headers, refusing what is not served."""
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
        tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
        self.keep_alive = event.http_version == b"1.1" and "close" not in tokens
        length = fields.get("content-length")
        if length is not None and int(length) > self.limits.max_body:  # h11 checked: digits
            raise self._too_big()
        self._fields, self._raw = fields, raw
        self._version = event.http_version.decode("latin-1")
        if self.h11.they_are_waiting_for_100_continue:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n", _THEN_MORE, wait)

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
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Take what the client sent (``b""``: it closed its side)."""
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

    def _too_big(self) -> Refused:
        return Refused(413, f"request body over the limit of {self.limits.max_body} bytes")

    def _too_slow(self) -> Refused:
        return Refused(408, f"request not received within {self.limits.read_timeout} s")

    # -- writing ----------------------------------------------------------------------------
    def _send(self, answer: Answer, wait: bool) -> bool:
        """Write the answer (or drop the connection, as a fault says); whether the
        connection stays open."""
        if answer.drop == "before":
            return False
        close = not self.keep_alive or answer.drop is not None or self.closing
        head = response_head(answer.status, answer.body, close=close, own=answer.headers)
        body = answer.body if self.verb != "HEAD" else b""
        if answer.drop == "mid_body":
            body = body[: len(body) // 2]
        self.answered = time.monotonic()
        if wait:
            self._timeout(self.limits.idle_timeout)  # a client that never reads its answer
        self._write(head + body, _THEN_CLOSE if close else _THEN_NEXT, wait)
        return not close

    def _write(self, data: bytes, then: str, wait: bool) -> None:
        """Write ``data``; on the loop (not to ``wait``), what the socket cannot take at
        once is left for a thread, which then does as ``then`` says."""
        if wait:
            self.sock.sendall(data)
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._out, self._then = data[sent:], then
            raise _Elsewhere

    def _refuse(self, refused: Refused, wait: bool) -> None:
        """Answer ``refused`` (the connection is closed after it); on the loop, as much of
        it as the socket takes at once."""
        self.log(f"fakedriver: refused a request: {refused.status} {refused.message}")
        target = self.target or _target(self.head)
        answer = encode({error_key(target): refused.message})
        data = response_head(refused.status, answer, close=True) + answer
        if wait:
            self._timeout(min(self.limits.read_timeout, 5.0))
            self.sock.sendall(data)
        else:
            with contextlib.suppress(OSError):
                self.sock.send(data)


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
