"""Serving a fake to a real dockerd: on a unix socket, or on TCP with a ``.spec`` file.

dockerd speaks HTTP/1.1 with keep-alive, sends calls concurrently, an empty ``Host:``
header and no ``Content-Type``. werkzeug's development server closes every connection,
so the plugin socket has its own small HTTP/1.1 handler (threads, keep-alive) that calls
:meth:`FakeNetDriver.respond` directly; owning the socket is also what lets a fault close
it before or in the middle of an answer, or notice that the client gave up on a hang.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import socketserver
import stat
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import IO, Any

from ._app import FakeNetDriver
from ._http import encode, headers, not_allowed
from ._journal import Call
from ._peer import gone, hang_up

PLUGIN_DIR = "/run/docker/plugins"
SPEC_DIR = "/etc/docker/plugins"
#: Serves ``(verb, path, body) -> (status, answer)`` for paths under ``/fakedriver/``.
Control = Callable[[str, str, bytes], tuple[int, Any]]


class ServeError(Exception):
    """The server cannot start; the message says why."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as dockerd expects
    server: _Server

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        if self.path.startswith("/fakedriver/") or not self.server.protocol:
            self._control("POST", body)
            return
        reply = self.server.fake.engine.respond(self.path, body, gone=gone(self.connection))
        if reply.drop == "before":
            self._hang_up()
            return
        self._send(reply.status, reply.body, half=reply.drop == "mid_body")

    def do_GET(self) -> None:
        self._other("GET")

    def do_PUT(self) -> None:
        self._other("PUT")

    def do_DELETE(self) -> None:
        self._other("DELETE")

    def _other(self, verb: str) -> None:
        body = self._body()
        if body is None:
            return
        if self.path.startswith("/fakedriver/"):
            self._control(verb, body)
        else:
            self._send(*not_allowed(verb))

    def _control(self, verb: str, body: bytes) -> None:
        if self.server.control is None:
            self._json(404, {"Err": "the control API is not served on this socket"})
            return
        status, answer = self.server.control(verb, self.path, body)
        self._json(status, answer)

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._json(411, {"Err": "send a Content-Length (chunked bodies are not read)"})
            return None
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, status: int, answer: Any) -> None:
        self._send(status, encode(answer))

    def _send(self, status: int, body: bytes, half: bool = False) -> None:
        self.send_response(status)
        for name, value in headers(body):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if half else body)
        if half:
            self.wfile.flush()
            self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        hang_up(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the journal logs calls; see PluginServer.log_call


class _Server(socketserver.ThreadingMixIn, socketserver.BaseServer):
    daemon_threads = True
    request_queue_size = 128  # dockerd dials without blocking: a full backlog fails at once
    fake: FakeNetDriver
    control: Control | None
    protocol = True  # serve the plugin protocol (a control-only socket does not)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is fine
            super().handle_error(request, client_address)


class _UnixServer(_Server, socketserver.UnixStreamServer):
    pass


class _TCPServer(_Server, socketserver.TCPServer):
    allow_reuse_address = True


def claim_socket(path: str) -> None:
    """Make ``path`` free for a new socket: remove a stale socket, refuse a live one."""
    if not os.path.lexists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise ServeError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a leftover of a server that died
        return
    finally:
        probe.close()
    raise ServeError(f"{path} is served by a live process; stop it first")


class PluginServer:
    """Serve ``app`` on ``socket_path``, or on ``tcp`` (host, port) with a spec file.

    :param spec: for TCP, where to write the ``.spec`` file dockerd looks for
        (``/etc/docker/plugins/NAME.spec``).
    :param control: serves the control API under ``/fakedriver/`` on this socket.
    :param protocol: serve the plugin protocol (false for a control-only socket).
    :param log: where one line per call goes (``None``: nowhere); ``log_format`` is
        ``"text"`` or ``"json"`` (JSON lines, each a whole journal entry).
    """

    def __init__(
        self,
        app: FakeNetDriver,
        *,
        socket_path: str | None = None,
        tcp: tuple[str, int] | None = None,
        spec: str | None = None,
        control: Control | None = None,
        protocol: bool = True,
        log: IO[str] | None = None,
        log_format: str = "text",
    ) -> None:
        if (socket_path is None) == (tcp is None):
            raise ValueError("give a socket path or a TCP address, not both")
        self.app, self.socket_path, self.spec = app, socket_path, spec
        self.log, self.log_format = log, log_format
        if socket_path is not None:
            claim_socket(socket_path)
            self.server: _Server = _UnixServer(socket_path, _Handler)
            os.chmod(socket_path, 0o660)
            self.address = f"unix://{socket_path}"
        else:
            host, port = tcp  # type: ignore[misc]
            self.server = _TCPServer((host, port), _Handler)
            self.address = f"tcp://{host}:{self.server.server_address[1]}"
            if spec:
                _write_spec(spec, self.address)
        self.server.fake, self.server.control = app, control
        self.server.protocol = protocol
        if log is not None:
            app.listeners.append(self.log_call)

    def log_call(self, call: Call) -> None:
        if self.log_format == "json":
            line = json.dumps(dataclasses.asdict(call))  # the whole journal entry
        else:
            line = str(call) + "".join(f" (violation: {v})" for v in call.violations)
            line += f" [fault: {call.fault}]" if call.fault else ""
        print(line, file=self.log, flush=True)

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.1)

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (from another thread)."""
        self.server.shutdown()

    def close(self) -> None:
        """Stop listening and remove the socket and spec file."""
        self.server.server_close()
        for path in (self.socket_path, self.spec):
            if path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def __enter__(self) -> PluginServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _write_spec(path: str, address: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as out:
        out.write(address + "\n")
    os.replace(tmp, path)
