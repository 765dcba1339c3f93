"""Speak to ``fakedriver serve`` and PluginServer on a real socket, exactly as dockerd does.

dockerd's requests (transcript §1): ``POST`` over HTTP/1.1, an empty ``Host:`` header, no
``Content-Type``, ``Content-Length: 0`` for calls without arguments, bodies of compact JSON
and a newline, one keep-alive connection reused for many calls, calls in parallel.
:class:`Conn` and :class:`Dockerd` write requests byte for byte so; :class:`Served` and
:class:`Launcher` run ``fakedriver serve`` as a subprocess (conftest's ``serve`` fixture).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from fakedriver.server.server import PluginServer

Address = str | tuple[str, int]  # a unix socket path, or a TCP (host, port)


# -- a client that writes requests byte for byte as dockerd does ----------------------------
class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict), self.body
        return value

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


def dockerd_request(method: str, body: dict[str, Any] | None = None) -> bytes:
    """The bytes dockerd 20.10 puts on the wire for one plugin call."""
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode() + b"\n"
    head = (
        f"POST /{method} HTTP/1.1\r\n"
        "Host: \r\n"
        "User-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "Accept: application/vnd.docker.plugins.v1.2+json\r\n"
        "\r\n"
    )
    return head.encode() + payload


def read_response(stream: BinaryIO) -> Response:
    line = stream.readline()
    if not line:
        raise ConnectionError("the server closed the connection without answering")
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(status, headers, stream.read(int(headers.get("content-length", 0))))


class Conn:
    """One connection; every call goes over it (no redial).

    It connects in blocking mode, which waits for room in the server's listen backlog
    (Go's non-blocking connect does not: see the burst test below)."""

    def __init__(self, address: Address, timeout: float = 5.0) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(timeout)
        self.stream = self.sock.makefile("rb")

    def send(self, method: str, body: dict[str, Any] | None = None) -> Response:
        self.sock.sendall(dockerd_request(method, body))
        return read_response(self.stream)

    def close(self) -> None:
        self.stream.close()
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Dockerd:
    """Like Go's HTTP client in dockerd: reuse the connection unless the server said
    ``Connection: close`` (then redial for the next call)."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.conn: Conn | None = None
        self.dials = 0

    def call(self, method: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        if self.conn is None:
            self.conn, self.dials = Conn(self.address), self.dials + 1
        response = self.conn.send(method, body)
        if response.closes:
            self.close()
        return response.status, response.json

    def ok(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, answer = self.call(method, body)
        assert status == 200 and not (answer.get("Err") or answer.get("Error")), answer
        return answer

    def refused(self, method: str, body: dict[str, Any] | None = None) -> str:
        status, answer = self.call(method, body)
        error = answer.get("Error" if method.startswith("IpamDriver.") else "Err")
        assert error, (status, answer)
        return str(error)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def create_network(nid: str, pool: str = "10.0.0.0/24", gateway: str = "10.0.0.1/24") -> dict:
    return {
        "NetworkID": nid,
        "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
        "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": gateway, "Pool": pool}],
        "IPv6Data": [],
    }


# -- `fakedriver serve` as a subprocess -----------------------------------------------------
BANNER = "fakedriver: serving on "


class Served:
    """A ``fakedriver serve`` process, its stderr in a file."""

    def __init__(self, folder: Path, *args: str, log: str = "serve.log") -> None:
        self.log = folder / log
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fakedriver", "serve", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def text(self) -> str:
        return self.log.read_text()

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def wait_ready(self, timeout: float = 10.0) -> Served:
        deadline = time.monotonic() + timeout
        while BANNER not in self.text():
            if self.proc.poll() is not None:
                pytest.fail(f"fakedriver serve exited with {self.proc.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"fakedriver serve did not start within {timeout} s:\n{self.text()}")
            time.sleep(0.02)
        return self

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def temporary_short_dir() -> Iterator[Path]:
    """A directory with a short path: AF_UNIX socket paths are limited to 108 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="fdt", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Launcher:
    """Starts ``fakedriver serve ARGS`` in ``folder``; :meth:`kill_all` ends what it started."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Served] = []

    def __call__(self, *args: str) -> Served:
        served = Served(self.folder, *args, log=f"serve{len(self.started)}.log")
        self.started.append(served)
        return served

    def kill_all(self) -> None:
        for served in self.started:
            served.kill()


@contextlib.contextmanager
def running(server: PluginServer, wait: float = 5.0) -> Iterator[threading.Thread]:
    """``server`` serving in a thread of its own (given) until the block ends; then it is
    closed and its thread has ended within ``wait`` seconds (a hang fails the test)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        server.close()
        thread.join(wait)
        assert not thread.is_alive(), "the server's thread did not end"
