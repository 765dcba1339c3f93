"""Serving a fake to a real dockerd: on a unix socket, or on TCP with a ``.spec`` file.

dockerd speaks HTTP/1.1 with keep-alive, sends calls concurrently, an empty ``Host:``
header and no ``Content-Type``. werkzeug's development server closes every connection,
so the plugin socket has its own event loop (`.loop`), which serves each call that
cannot wait itself, and a thread for a connection while its call may wait (`.connection`,
HTTP on h11), calling the fake's `respond_now()` or `respond()` directly; owning the
socket is also what lets a fault close it before or in the middle of an answer, or notice
that the client gave up on a hang.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from ..core.http import encode, error_key, from_browser, headers, not_allowed, reason
from ..core.journal import Call
from ..core.reply import Outcome, Reply
from ..core.wire import MAX_DEPTH, too_deep
from ..fake import FakeNetDriver
from ..transports.peer import hang_up
from .connection import Answer, App, Connection, Limits, Quick, Request
from .control import refusal
from .files import (
    Identity,
    bind_tcp,
    bind_unix,
    claim_socket,
    host_port,
    identity,
    remove_if_ours,
    write_spec,
)
from .log import LineWriter, printable
from .loop import Loop

PLUGIN_DIR = "/run/docker/plugins"
SPEC_DIR = "/etc/docker/plugins"
#: The least listen backlog (it is ``--max-connections`` when that is more): dockerd dials
#: without blocking, so a full backlog fails at once.
BACKLOG = 128
#: Seconds `PluginServer.close()` waits for the calls being served to be answered.
GRACE = 5.0
#: Serves ``(verb, path, body) -> (status, answer)`` for paths under ``/fakedriver/``.
Control = Callable[[str, str, bytes], tuple[int, Any]]
#: What a protocol call gets while a server has no app (see `PluginServer.swap()`).
_NO_APP = "no fake is served on this socket now"
#: accept() errors that pass once connections close: back off instead of spinning.
_SHORT_OF = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def _close(reply: Reply) -> Answer:
    return Answer(0, b"", "before")


#: What the server sends for each outcome. It sees a client go away, so none of its calls
#: ends NEVER_ANSWERED (one would be closed, as one whose client gave up).
RENDER: dict[Outcome, Callable[[Reply], Answer]] = {
    Outcome.ANSWER: lambda reply: Answer(reply.status, reply.body),
    Outcome.DROP_BEFORE: _close,
    Outcome.DROP_MID_BODY: lambda reply: Answer(reply.status, reply.body, "mid_body"),
    Outcome.TIMED_OUT: _close,
    Outcome.NEVER_ANSWERED: _close,
}


class PluginServer:
    """Serve ``app`` on ``socket_path``, or on ``tcp`` (host, port) with a spec file.

    :param spec: for TCP, where to write the ``.spec`` file dockerd looks for
        (``/etc/docker/plugins/NAME.spec``).
    :param control: serves the control API under ``/fakedriver/`` on this socket. On TCP
        only with a ``control_token``; without one it is not served there.
    :param control_token: the bearer token every control request must carry.
    :param protocol: serve the plugin protocol (false for a control-only socket).
    :param limits: body and header sizes, timeouts and the connection cap.
    :param log: where one line per call goes (``None``: nowhere); ``log_format`` is
        ``"text"`` or ``"json"`` (JSON lines, each a whole journal entry). Lines are
        written by a thread of their own, never under the driver's lock.
    :param handler: serves every request instead (the dashboard's listener: see
        `fakedriver.server.dashboard`).

    Each connection is served by the ``app`` (and ``control``) it was accepted under:
    `swap()` gives the server another one for the connections that come next, and ends
    those that came before. With no ``app`` (``None``), protocol calls are answered 503.
    """

    def __init__(
        self,
        app: FakeNetDriver | None,
        *,
        socket_path: str | None = None,
        tcp: tuple[str, int] | None = None,
        spec: str | None = None,
        control: Control | None = None,
        control_token: str | None = None,
        protocol: bool = True,
        limits: Limits | None = None,
        log: IO[str] | None = None,
        log_format: str = "text",
        handler: App | None = None,
    ) -> None:
        if (socket_path is None) == (tcp is None):
            raise ValueError("give a socket path or a TCP address, not both")
        self.app, self.socket_path, self.spec = app, socket_path, spec
        self.protocol, self.control_token = protocol, control_token
        self.control = self._served_control(control)
        self.limits = limits or Limits()
        self.log_format = log_format
        #: What serves every request instead of the app (the dashboard's listener).
        self.handler: App | None = handler
        self.writer = LineWriter(log) if log is not None else None
        #: The files this server made, each with its identity (removed at close if still it).
        self.made: dict[str, Identity] = {}
        self._spec_fd: int | None = None  # the spec file, held open until it is removed
        try:
            self._listen(socket_path, tcp, spec)
        except BaseException:  # what was made is undone: no socket, no spec, no thread left
            for path, ours in self.made.items():
                remove_if_ours(path, ours)
            if hasattr(self, "listener"):
                self.listener.close()
            if self.writer is not None:
                self.writer.close()
            raise
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._wake, self._woken = socket.socketpair()  # ends the accept loop's wait
        #: The connections being served, oldest first; the lock is also notified when
        #: one ends.
        self._open: dict[Connection, None] = {}
        self._open_lock = threading.Condition()
        self._loop: Loop | None = None  # serve_forever()'s, while it runs
        self._backoff = 0.0  # seconds accept() is given up for, after it failed
        if self.writer is not None and app is not None and handler is None:
            app.listeners.append(self.log_call)

    def _served_control(self, control: Control | None) -> Control | None:
        """The control API this socket serves: on TCP only with a token."""
        return control if self.socket_path is not None or self.control_token else None

    def _listen(
        self, socket_path: str | None, tcp: tuple[str, int] | None, spec: str | None
    ) -> None:
        """Bind and listen, and write the spec file of a TCP address."""
        if socket_path is not None:
            claim_socket(socket_path)
            self.listener = bind_unix(socket_path)
            self.made[socket_path] = identity(os.lstat(socket_path))
            self.address = f"unix://{socket_path}"
        else:
            host, port = tcp  # type: ignore[misc]
            self.listener = bind_tcp(host, port)
            bound = self.listener.getsockname()  # numeric, as Go reads it (127.1 is 127.0.0.1)
            self.address = f"tcp://{host_port(bound[0], bound[1])}"
        self.listener.listen(max(BACKLOG, self.limits.max_connections))
        if socket_path is None and spec:
            self._spec_fd = write_spec(spec, self.address)
            self.made[spec] = identity(os.fstat(self._spec_fd))

    # -- logging ----------------------------------------------------------------------------
    def log_call(self, call: Call) -> None:
        """Log ``call`` (a listener of the driver: the call is already served, and nothing
        here may fail it)."""
        if self.log_format == "json":
            line = json_line(call)
        else:
            line = str(call) + "".join(f" (violation: {v})" for v in call.violations)
            line += f" [fault: {call.fault}]" if call.fault else ""
        self.say(line, when=call.timestamp)

    def say(self, line: str, when: float | None = None) -> None:
        """Log one line (a call, a refusal, the connection cap), unless there is no log. A
        text line starts with its UTC time (``when``, or now), to the millisecond."""
        if self.writer is None:
            return
        if self.log_format == "json":
            if not line.startswith("{"):
                line = json.dumps({"event": "server", "message": line})
        else:  # a client's text, its ids included, cannot forge a line or reach a terminal
            line = f"{stamp(time.time() if when is None else when)} {printable(line)}"
        self.writer.write(line)

    # -- serving ----------------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """How many connections are being served now."""
        with self._open_lock:
            return len(self._open)

    def serve_forever(self) -> None:
        """Accept connections and serve them until `shutdown()`: on this thread every call
        that cannot wait, and each connection whose call may wait in a thread of its own
        from then on (see `fakedriver.server.loop`). The dashboard's listener serves each
        connection in a thread of its own."""
        try:  # a signal anywhere in here still leaves it stopped, so close() never waits
            self._stopped.clear()
            self.listener.setblocking(False)
            loop = Loop(
                self.listener, self._woken, self._wake, self._accept, self._thread, self._ended
            )
            self._loop = loop
            loop.run(self._stop)
        finally:
            self._stopped.set()

    def _accept(self) -> float:
        """Accept the connections waiting; how long to stop listening (``0``: not at all):
        a want of descriptors or memory passes only as connections close."""
        for _ in range(64):  # and let the loop serve the others meanwhile
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return 0.0  # none left (or the client gave up in between)
            except OSError as exc:
                if self._stop.is_set() or exc.errno not in _SHORT_OF:
                    continue  # ECONNABORTED and the like: that client is gone
                if not self._backoff:
                    why = f"cannot accept a connection ({exc.strerror})"
                    self.say(f"fakedriver: {why}; backing off until connections close")
                self._backoff = min(max(self._backoff * 2, 0.01), 1.0)
                return self._backoff
            self._backoff = 0.0
            self._start(sock)
        return 0.0

    def _bound(self) -> tuple[App, Quick | None]:
        """What serves the requests of a connection accepted now: the app (and control
        API) of now, whatever `swap()` does later (the caller holds the lock); in a
        thread, and on the loop (``None``: only in a thread)."""
        if self.handler is not None:
            return self.handler, None
        app, control = self.app, self.control
        return (
            lambda request, gone: self._serve(request, gone, app, control),
            lambda request: self._quick(request, app, control),
        )

    def _start(self, sock: socket.socket) -> None:
        evicted = None
        with self._open_lock:  # bound under the lock: swap() sees it, or it sees the new app
            app, quick = self._bound()
            back = self._loop.give_back if self._loop is not None and quick else None
            connection = Connection(sock, app, self.limits, self.say, quick, back)
            full = len(self._open) >= self.limits.max_connections
            if full:
                evicted = self._evict()
            if not full or evicted is not None:
                self._open[connection] = None
        cap = self.limits.max_connections
        if evicted is not None:
            idle = time.monotonic() - (evicted.idle_since or time.monotonic())
            self.say(
                f"fakedriver: {cap} connections open (the cap); closed the one idle the "
                f"longest ({idle:.1f} s) to make room"
            )
        elif full:
            self._turn_away(sock)
            return
        if quick is None or self._loop is None:
            self._thread(connection)
        else:
            self._loop.add(connection)

    def _thread(self, connection: Connection) -> None:
        threading.Thread(target=self._run, args=(connection,), daemon=True).start()

    def _evict(self) -> Connection | None:
        """Close the connection idle the longest and forget it; ``None`` when every one
        is in a request (the caller holds the lock)."""
        idle = [c for c in self._open if c.idle_since is not None]
        for connection in sorted(idle, key=lambda c: c.idle_since or 0.0):
            if connection.evict():  # still idle: it was not in a request meanwhile
                del self._open[connection]
                return connection
        return None

    def _run(self, connection: Connection) -> None:
        if not connection.run():  # else the loop took it back
            self._ended(connection)

    def _ended(self, connection: Connection) -> None:
        with self._open_lock:
            self._open.pop(connection, None)
            self._open_lock.notify_all()

    def _turn_away(self, sock: socket.socket) -> None:
        cap = self.limits.max_connections
        self.say(
            f"fakedriver: {cap} connections open (the cap), each in a request; "
            "turned one away with 503"
        )
        body = encode({"Err": f"too many connections (the server serves {cap} at once)"})
        head = f"HTTP/1.1 503 {reason(503)}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers(body)
        )
        with contextlib.suppress(OSError):
            sock.settimeout(1.0)
            sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
        sock.close()

    def _serve(
        self,
        request: Request,
        gone: Callable[[], bool],
        app: FakeNetDriver | None,
        control: Control | None,
    ) -> Answer:
        """Route one request to ``app`` and ``control``, those of its connection (see
        `_route()`), in a thread: a protocol call waits as its fault rules say."""
        answer = self._route(request, app, control)
        if answer is not None:
            return answer
        assert app is not None
        reply = app.respond(request.target, request.body, gone=gone)
        return RENDER[reply.outcome](reply)

    def _quick(
        self, request: Request, app: FakeNetDriver | None, control: Control | None
    ) -> Answer | None:
        """`_serve()` on the loop: ``None`` for a protocol call that a timed fault rule
        may make wait (`Driver.respond_now()`), which a thread then serves."""
        answer = self._route(request, app, control)
        if answer is not None:
            return answer
        assert app is not None
        reply = app.respond_now(request.target, request.body)
        return None if reply is None else RENDER[reply.outcome](reply)

    def _route(
        self, request: Request, app: FakeNetDriver | None, control: Control | None
    ) -> Answer | None:
        """The answer to a request that is not a protocol call to ``app``: none of a
        browser's, the control API under ``/fakedriver/``, a verb other than POST, a call
        while no app is served; ``None`` for a protocol call (``app`` serves it)."""
        browser = from_browser(request.headers)
        if browser is not None:
            return self._refuse_browser(request, browser)
        if request.target.startswith("/fakedriver/") or not self.protocol:
            return self._control(request, control)
        if request.verb != "POST":
            return Answer(*not_allowed(request.verb))
        if app is None:  # swapped out: between two fakes (see swap())
            return Answer(503, encode({error_key(request.target): _NO_APP}))
        return None

    def _refuse_browser(self, request: Request, header: str) -> Answer:
        """403 in the dialect of the path, served nothing: a web page (any page the
        user opens, from any site) can send requests to loopback TCP, and dockerd never
        sends ``header``. Logged, not journaled: the journal holds the calls of clients."""
        message = f"fakedriver does not answer browsers (the request carries {header})"
        asked = f"{request.verb} {request.target[:200]}"
        self.say(f"fakedriver: refused a request: 403 {asked}: {message}")
        return Answer(403, encode({error_key(request.target): message}))

    def _control(self, request: Request, control: Control | None) -> Answer:
        if control is None:
            tcp = self.socket_path is None
            why = (
                "not served over TCP without a control token (--control-token-file)"
                if tcp
                else "not served on this socket"
            )
            return Answer(404, encode({"Err": f"the control API is {why}"}))
        refused = refusal(request.verb, request.headers, self.control_token)
        status, answer = refused or control(request.verb, request.target, request.body)
        return Answer(status, encode(answer))

    # -- another app ------------------------------------------------------------------------
    def swap(
        self, app: FakeNetDriver | None, control: Control | None = None, grace: float = GRACE
    ) -> None:
        """Serve ``app`` (and ``control``) on the connections accepted from now on, and stop
        those accepted before, as `close()` does: an idle one is closed at once, a call
        being served is answered, a held one ends as if its client left; wait up to
        ``grace`` seconds for them, then cut off those left. Every call of theirs is
        served by the app they were accepted under, never by ``app``. With ``app``
        ``None``, protocol calls are answered 503 until the next swap."""
        with self._open_lock:
            old, self.app = self.app, app
            self.control = self._served_control(control)
            before = list(self._open)
        if self.writer is not None and self.handler is None:
            if old is not None:
                with contextlib.suppress(ValueError):
                    old.listeners.remove(self.log_call)
            if app is not None:
                app.listeners.append(self.log_call)
        self._drain(grace, before)

    # -- stopping ---------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop `serve_forever()` (from another thread) and wait until it has. The
        connections served on its loop are closed (each idle, or in a request not yet
        whole, which is not served); those in threads of their own go on until
        `close()`."""
        self._signal_stop()
        self._stopped.wait()

    def _signal_stop(self) -> None:
        """Tell `serve_forever()` to stop (its loop wakes to see it), without waiting."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake.send(b"\0")

    def close(self, grace: float = GRACE) -> None:
        """Stop listening and remove the socket and spec file (if they are still the ones
        this server made), then stop the connections (`Connection.stop()`: an idle one
        is closed at once, a call being served is answered, a held one ends as if its
        client left) and wait up to ``grace`` seconds for them; those left are cut off.
        Then write what is left to log. Once it returns, no connection of this server
        starts another call."""
        self._signal_stop()
        with self._open_lock:  # before the loop is waited for: it may be serving a call
            for connection in self._open:
                connection.stop()
        self._stopped.wait()
        for path, ours in self.made.items():  # while they are held: see Identity
            remove_if_ours(path, ours)
        self.listener.close()
        self._wake.close()
        self._woken.close()
        if self._spec_fd is not None:
            os.close(self._spec_fd)
            self._spec_fd = None
        self._drain(grace)
        if self.writer is not None:
            if self.app is not None:
                with contextlib.suppress(ValueError):
                    self.app.listeners.remove(self.log_call)
            self.writer.close()

    def _drain(self, grace: float, connections: list[Connection] | None = None) -> None:
        """Stop ``connections`` (default: every open one) and wait for them to end."""
        if connections is None:
            with self._open_lock:
                connections = list(self._open)
        if not connections:
            return
        for connection in connections:
            connection.stop()

        def open_ones() -> list[Connection]:
            return [c for c in connections if c in self._open]

        with self._open_lock:
            if self._open_lock.wait_for(lambda: not open_ones(), grace):
                return
            left = open_ones()
        for connection in left:  # stuck writing, or in a long latency: cut off
            hang_up(connection.sock)

    def __enter__(self) -> PluginServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def json_line(call: Call) -> str:
    """The whole journal entry as one line of JSON. Never an error: an entry that cannot
    be written whole (a ``NaN``, a request or answer nesting deeper than any body the fake
    takes, `MAX_DEPTH`) is written without its request and answer, saying why. The depth is
    checked, not left to the encoder: CPython 3.13's writes 5,000 levels where 3.11's
    raised RecursionError."""
    entry = {f.name: getattr(call, f.name) for f in dataclasses.fields(call)}
    try:
        if too_deep(call.request) or too_deep(call.response):
            raise ValueError(f"nests deeper than {MAX_DEPTH} objects and arrays")
        return json.dumps(entry, allow_nan=False, default=repr)
    except (ValueError, TypeError, RecursionError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    head = {"index": call.index, "method": call.method, "status": call.status}
    return json.dumps({**head, "error": call.error, "unlogged": why}, default=repr)


def stamp(when: float) -> str:
    """``2026-12-01T12:00:00.123Z``: a log line's time."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    return f"{whole}.{int(when % 1 * 1000):03d}Z"
