"""Raw-socket helpers for the hardening tests: bytes in, bytes out, every socket with a
timeout, every wait bounded. Loopback TCP and unix sockets only."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Address = str | tuple[str, int]
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def connect(address: Address, timeout: float = 5.0) -> Iterator[socket.socket]:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
        yield sock
    finally:
        sock.close()


def until_eof(sock: socket.socket, wait: float = 5.0) -> bytes:
    """Every byte until the server closes; fails if it has not within ``wait`` s."""
    deadline = time.monotonic() + wait
    received = b""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            why = f"the server did not close within {wait} s: {received!r}"
            raise AssertionError(why) from None
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def exchange(address: Address, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data`` on a new connection; every byte back until the server closes."""
    with connect(address, wait) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)  # the server may answer and close before reading it all
        return until_eof(sock, wait)


def readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLHUP)
    return bool(poller.poll(0))


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def parse(raw: bytes) -> Response:
    """One whole HTTP/1.1 response: a status line, headers, and exactly the body its
    ``Content-Length`` announces."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head: {raw!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, code, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    length = int(headers["content-length"])
    assert len(rest) >= length, f"a body shorter than its Content-Length: {raw!r}"
    return Response(int(code), headers, rest[:length])


def read_one(sock: socket.socket) -> Response:
    """Read exactly one response off a keep-alive connection."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-response: {raw!r}"
        raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":", 1)[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        rest += chunk
    return parse(head + b"\r\n\r\n" + rest)


def request(
    verb: str, target: str, body: bytes = b"", headers: str | None = None, version: str = "1.1"
) -> bytes:
    """Request bytes; ``headers`` (lines ending in CRLF) replace the default Content-Length."""
    if headers is None:
        headers = f"Content-Length: {len(body)}\r\n"
    return f"{verb} {target} HTTP/{version}\r\nHost: \r\n{headers}\r\n".encode() + body


def call(method: str, payload: Any = None) -> bytes:
    """A plugin call as dockerd writes it."""
    body = b"" if payload is None else json.dumps(payload).encode()
    return request("POST", f"/{method}", body)


def eventually(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


# -- a `fakedriver serve` in a subprocess -------------------------------------------------------
class Served:
    """``python -m fakedriver serve ARGS``, its stderr in a file, stopped at the end."""

    def __init__(self, folder: Path, *args: str, **popen: Any) -> None:
        self.err = folder / "stderr.log"
        self.err.touch()
        stderr = popen.pop("stderr", None)
        self.sink = None if stderr is not None else self.err.open("w")
        command = popen.pop("command", [sys.executable, "-m", "fakedriver"])
        self.process = subprocess.Popen(
            [*command, "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr if stderr is not None else self.sink,
            cwd=ROOT,
            **popen,
        )

    def stderr(self) -> str:
        return self.err.read_text()

    def wait_ready(self, wait: float = 20.0) -> Served:
        if not eventually(
            lambda: "serving on" in self.stderr() or self.process.poll() is not None, wait
        ):
            raise AssertionError(f"not serving within {wait} s: {self.stderr()}")
        assert self.process.poll() is None, self.stderr()
        return self

    def stop(self, signum: int = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        if self.sink is not None:
            self.sink.close()
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError("the server did not stop within 10 s of the signal") from None


def system_python() -> str | None:
    """Debian's ``/usr/bin/python3`` when it is of this interpreter's version (so this
    environment's packages run under it), else ``None``."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        return None
    same = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    return python if same == str(sys.version_info[:2]) else None


def nobody_command() -> list[str] | None:
    """How to run fakedriver as ``nobody`` (uid 65534): the system Python of the same
    version, with this checkout and its site-packages on the path; ``None`` when not root
    or there is no such interpreter."""
    python = system_python() if os.geteuid() == 0 else None
    if python is None:
        return None
    return ["/usr/bin/env", f"PYTHONPATH={_readable_copy()}", python, "-m", "fakedriver"]


#: What ``fakedriver serve`` imports: the package and its dependencies.
SERVE_NEEDS = ("fakedriver", "werkzeug", "markupsafe", "h11")


def _readable_copy() -> str:
    """The packages ``serve`` needs, copied where any user may read them: a checkout (CI's
    clone, an unpacked sdist) may sit below a folder that only root can enter."""
    folder = Path(tempfile.mkdtemp(prefix="fakedriver-nobody-"))
    folder.chmod(0o755)
    for name in SERVE_NEEDS:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, name
        source = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return str(folder)
