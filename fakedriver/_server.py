"""Serving a fake to a real dockerd: on a unix socket, or on TCP with a ``.spec`` file.

dockerd speaks HTTP/1.1 with keep-alive, sends calls concurrently, an empty ``Host:``
header and no ``Content-Type``. The server is werkzeug's threaded one with HTTP/1.1
switched on and its access log replaced by one line per call from the journal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import stat
from typing import IO, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ._app import FakeNetDriver
from ._journal import Call

PLUGIN_DIR = "/run/docker/plugins"
SPEC_DIR = "/etc/docker/plugins"


class ServeError(Exception):
    """The server cannot start; the message says why."""


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as dockerd expects

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the journal logs calls; see PluginServer.log_call


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
    :param log: where one line per call goes (``None``: nowhere); ``log_format`` is
        ``"text"`` or ``"json"`` (JSON lines).
    """

    def __init__(
        self,
        app: FakeNetDriver,
        *,
        socket_path: str | None = None,
        tcp: tuple[str, int] | None = None,
        spec: str | None = None,
        log: IO[str] | None = None,
        log_format: str = "text",
    ) -> None:
        if (socket_path is None) == (tcp is None):
            raise ValueError("give a socket path or a TCP address, not both")
        self.app, self.socket_path, self.spec = app, socket_path, spec
        self.log, self.log_format = log, log_format
        if socket_path is not None:
            claim_socket(socket_path)
            self.server: BaseWSGIServer = make_server(
                f"unix://{socket_path}", 0, app, threaded=True, request_handler=_Handler
            )
            os.chmod(socket_path, 0o660)
            self.address = f"unix://{socket_path}"
        else:
            host, port = tcp  # type: ignore[misc]
            self.server = make_server(host, port, app, threaded=True, request_handler=_Handler)
            self.address = f"tcp://{host}:{self.server.server_port}"
            if spec:
                _write_spec(spec, self.address)
        app.listeners.append(self.log_call)

    def log_call(self, call: Call) -> None:
        if self.log is None:
            return
        if self.log_format == "json":
            line = json.dumps(dataclasses.asdict(call))  # the whole journal entry
        else:
            line = str(call) + "".join(f" (violation: {v})" for v in call.violations)
        print(line, file=self.log, flush=True)

    def serve_forever(self) -> None:
        self.server.serve_forever()

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
