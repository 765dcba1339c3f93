"""``fakedriver record``: a transparent proxy that dockerd loads as the plugin. It forwards
every request unchanged (its path, its headers in their order, its body) to the real
plugin (``--upstream``), or answers it with a fake of its own (``--no-upstream``), and
writes each exchange, both sides, as one JSON line of a session file (docs:
"Recording"). The listening side is the server's (`fakedriver.server.connection`: HTTP on
h11, a thread per connection).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from typing import IO, Any

from .. import __version__
from ..fake import FakeNetDriver
from ..server.connection import Answer, Connection, Limits, Request
from ..server.files import claim_socket
from .client import Client, Target

#: The session format's version (the ``session`` marker's ``format``).
FORMAT = 1
#: Where a step marker is asked for (never sent by dockerd; not forwarded).
MARK = "/fakedriver/mark"
_DOCKER_UA = re.compile(r"docker/([0-9][0-9A-Za-z.+~-]*)")


def daemon_version(docker: str = "docker") -> str | None:
    """The version of the daemon ``docker`` reaches (``DOCKER_HOST`` as docker uses it), or
    ``None`` when there is no docker CLI or no daemon answers within 10 s."""
    if shutil.which(docker) is None:
        return None
    try:
        done = subprocess.run(
            [docker, "version", "-f", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    version = done.stdout.strip()
    return version if done.returncode == 0 and version else None


def _stamp(when: float) -> str:
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def _decoded(raw: bytes) -> Any:
    """The body's JSON value, or ``None`` (empty, or not JSON)."""
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


class Recorder:
    """Serve ``socket_path`` as a plugin: each request forwarded to ``upstream`` (or
    answered by ``fake``), each exchange written to ``out`` (one JSON line, flushed).

    :param dockerd: the daemon's version, written in the session marker (and each
        exchange) when known; a ``User-Agent`` naming ``docker/X`` overrides it.
    :param timeout: how long an upstream call may take (then the connection is closed
        without an answer, as a plugin that went away, and the exchange says so).
    """

    def __init__(
        self,
        socket_path: str,
        out: IO[str],
        *,
        upstream: Target | None = None,
        fake: FakeNetDriver | None = None,
        dockerd: str | None = None,
        timeout: float = 120.0,
        limits: Limits | None = None,
    ) -> None:
        if (upstream is None) == (fake is None):
            raise ValueError("record from an upstream plugin or a fake, not both")
        self.out, self.fake, self.dockerd = out, fake, dockerd
        self.upstream = upstream
        self.client = Client(upstream, timeout=timeout) if upstream is not None else None
        self.limits = limits or Limits()
        self.seq = 0
        self.steps = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        claim_socket(socket_path)
        self.socket_path = socket_path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.listener.bind(socket_path)
        finally:
            os.umask(old)
        os.chmod(socket_path, 0o660)
        self.listener.listen(128)
        self._write(
            {
                "marker": "session",
                "format": FORMAT,
                "fakedriver": __version__,
                "upstream": str(upstream) if upstream is not None else None,
                "socket": socket_path,
                "dockerd": dockerd,
                "t": time.time(),
            }
        )

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.out.flush()

    # -- serving ------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Accept connections until `close()`, each served by a thread of its own."""
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            connection = Connection(sock, self.serve, self.limits, lambda line: None)
            threading.Thread(target=connection.run, daemon=True).start()

    def serve(self, request: Request, gone: Any) -> Answer:
        """Forward one request (or mark a step), and record the exchange."""
        if request.target.startswith(MARK):
            return self._mark(request)
        received = time.time()
        began = time.monotonic()
        if self.client is not None:
            headers = [(k, v) for k, v in request.raw_headers if k.lower() != "transfer-encoding"]
            if not any(k.lower() == "content-length" for k, _ in headers):
                headers.append(("Content-Length", str(len(request.body))))
            exchange = self.client.send(request.target, request.body, headers, verbatim=True)
            status, body, error = exchange.status, exchange.body, exchange.error
            answer_headers = exchange.headers
        else:
            assert self.fake is not None
            reply = self.fake.respond(request.target, request.body, gone=gone)
            status, body = reply.status, reply.body
            error = reply.why if reply.drop is not None else None
            answer_headers = []
        took = time.monotonic() - began
        agent = request.headers.get("user-agent", "")
        named = _DOCKER_UA.search(agent)
        with self._lock:
            self.seq += 1
            seq = self.seq
        self._write(
            {
                "seq": seq,
                "ts": _stamp(received),
                "t_recv": received,
                "method": request.verb,
                "path": request.target,
                "http_version": f"HTTP/{request.http_version}",
                "header_list": [list(pair) for pair in request.raw_headers],
                "headers": dict(request.raw_headers),
                "body_raw": request.body.decode("utf-8", "surrogateescape"),
                "body": _decoded(request.body),
                "status": status,
                "response_headers": [list(pair) for pair in answer_headers],
                "response_raw": body.decode("utf-8", "surrogateescape"),
                "response": _decoded(body),
                "error": error,
                "dur_ms": round(took * 1000, 3),
                "dockerd": named.group(1) if named else self.dockerd,
            }
        )
        if error is not None:
            return Answer(0, b"", drop="before")  # as the plugin did: no answer
        return Answer(status, body)

    def _mark(self, request: Request) -> Answer:
        """``POST /fakedriver/mark {"desc": ...}``: the next calls are a new step."""
        given = _decoded(request.body)
        desc = str(given.get("desc", "")) if isinstance(given, dict) else ""
        with self._lock:
            self.steps += 1
            step = self.steps
        self._write({"marker": "begin", "step": step, "desc": desc, "t": time.time()})
        return Answer(200, json.dumps({"step": step}).encode() + b"\n")

    def close(self) -> None:
        """Stop accepting and remove the socket (the connections end with their client)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        if self.client is not None:
            self.client.close()
