"""A real, isolated dockerd and a `fakedriver serve` process for the integration tests.

The daemon gets its own data root, exec root, pid file and API socket, with iptables off,
no default bridge and vfs storage, so it touches nothing of a daemon the machine may run.
The plugin is a v1 plugin on ``/run/docker/plugins/NAME.sock``, where every dockerd looks:
that directory is the host's, so every name a test gives a plugin comes from
:func:`run_name` (unique to the test run), and what else is one per host
(``docker_gwbridge``) is used under :func:`host_lock`. :class:`Tap` records the answers
exactly as dockerd received them.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .dockerd_versions import Version, parse_version

IMAGE = "bb:local"
PLUGIN_DIR = Path("/run/docker/plugins")


def run_name(stem: str) -> str:
    """A plugin name no other test run on this host uses at the same time: plugin sockets
    live in the host's /run/docker/plugins, and a fixed name lets one run's plugin serve
    another run's daemon."""
    return f"{stem}{os.getpid()}"


def unavailable(reason: str) -> NoReturn:
    """Skip loudly, or fail where the real-dockerd tests are required (CI)."""
    if os.environ.get("FAKEDRIVER_REQUIRE_DOCKERD") == "1":
        pytest.fail(f"required here (FAKEDRIVER_REQUIRE_DOCKERD=1) but missing: {reason}")
    pytest.skip(f"SKIPPED LOUDLY: {reason}")


@contextlib.contextmanager
def host_lock(resource: str, timeout: float = 300) -> Iterator[None]:
    """Hold a host-wide lock on a resource there is one of per host, whichever daemon uses
    it (``docker_gwbridge``: a Linux bridge of that name)."""
    path = Path(f"/run/lock/fakedriver-{resource}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} is held by another test run") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Unavailable(Exception):
    """dockerd cannot run here; the message says why."""


class Dockerd:
    """An isolated dockerd with everything under ``base``.

    :param wrapper: a command line that ends by running its arguments (dockerd's own
        command line), to start the daemon in other namespaces (see swarm_env.Node).
    """

    def __init__(self, base: Path, wrapper: Sequence[str] = ()) -> None:
        self.base = base
        self.wrapper = list(wrapper)
        self.sock = base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        self.log = base / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._version: Version | None = None

    def start(self) -> None:
        binary = shutil.which("dockerd")
        if binary is None or shutil.which("docker") is None:
            raise Unavailable("dockerd/docker not installed (Debian package docker.io)")
        argv = [
            *self.wrapper,
            binary,
            "--data-root",
            str(self.base / "data"),
            "--exec-root",
            str(self.base / "exec"),
            "--pidfile",
            str(self.base / "docker.pid"),
            "-H",
            f"unix://{self.sock}",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=vfs",
            "-D",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(f"dockerd exited with {self.process.returncode}:\n{self.tail()}")
            if self._answers():
                return
            time.sleep(0.3)
        self.stop()
        raise Unavailable(f"dockerd did not answer within 60 s:\n{self.tail()}")

    def _answers(self) -> bool:
        """Whether ``docker info`` succeeds (a daemon still starting on a busy machine may
        not answer within its 10 s: that is a no, not an error)."""
        try:
            return self.docker("info", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def version(self) -> Version:
        """The daemon's version, as ``docker version`` gives it (asked once)."""
        if self._version is None:
            said = self.docker("version", "--format", "{{.Server.Version}}", timeout=60)
            self._version = parse_version(said.stdout)
        return self._version

    def sweep(self) -> list[str]:
        """Remove every container and network of this daemon but its own (``host``,
        ``none``), starting it first if it is down; what it removed. The daemon is the
        tests' own: whatever a test left there, failed or not, goes."""
        if self.process is None:
            self.start()
        removed = self.docker("ps", "-aq").stdout.split()
        if removed:
            self.docker("rm", "-f", *removed, check=False)
        names = self.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        networks = [n for n in names if n not in ("host", "none", "bridge", "docker_gwbridge")]
        if networks:
            self.docker("network", "rm", *networks, check=False)
        if "docker_gwbridge" in names:  # one per host: see host_lock
            with host_lock("docker_gwbridge"):
                self.docker("network", "rm", "docker_gwbridge", check=False)
        return [*removed, *networks, *({"docker_gwbridge"} & set(names))]

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["docker", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n--- dockerd log ---\n{self.tail()}"
            )
        return done

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Any command (``docker ...`` or ``bash -c ...``) against this daemon."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def import_busybox(self) -> None:
        """Make the tiny image ``bb:local`` from Debian's busybox-static (no registry needed)."""
        busybox = shutil.which("busybox")
        if busybox is None:
            raise Unavailable("busybox not installed (Debian package busybox-static)")
        tar_path = self.base / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(busybox, arcname="bin/busybox")
            for applet in ("sh", "ip", "sleep", "true", "cat", "ls"):
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        with open(tar_path, "rb") as source:
            done = subprocess.run(
                ["docker", "import", "-c", 'CMD ["/bin/sh"]', "-", IMAGE],
                env=self.env,
                stdin=source,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        if done.returncode != 0:
            raise Unavailable(f"docker import failed: {done.stderr}")


class Plugin:
    """``fakedriver serve --name NAME --state FILE --log-format json [EXTRA...]`` (no
    ``--state`` unless ``stateful``).

    With ``tapped`` the server listens on a socket of its own and a :class:`Tap` on the
    plugin socket relays dockerd's calls to it (the control API is spoken directly)."""

    def __init__(
        self, name: str, base: Path, *extra: str, tapped: bool = False, stateful: bool = True
    ) -> None:
        self.name, self.extra, self.stateful = name, list(extra), stateful
        self.plugin_socket = PLUGIN_DIR / f"{name}.sock"
        self.socket = base / f"{name}.sock" if tapped else self.plugin_socket
        self.tap = Tap(self.plugin_socket, self.socket) if tapped else None
        self.state = base / f"{name}-state.db"
        self.log = base / f"{name}.log"
        self.logged = 0  # where the running process's lines start in the log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        where = ["--socket", str(self.socket)] if self.tap else ["--name", self.name]
        argv = [
            sys.executable,
            "-m",
            "fakedriver",
            "serve",
            *where,
            *(["--state", str(self.state)] if self.stateful else []),
            "--log-format",
            "json",
            *self.extra,
        ]
        with open(self.log, "ab") as log:
            self.logged = log.tell()  # where this process's lines start
            self.process = subprocess.Popen(argv, stderr=log, stdout=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"fakedriver serve exited:\n{self.log.read_text()}")
            if _accepts(self.socket):
                if self.tap is not None and not self.tap.running:
                    self.tap.start()
                return
            time.sleep(0.05)
        raise AssertionError("fakedriver serve did not listen within 20 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
            self.process = None
        if self.tap is not None:
            self.tap.stop()

    def control(self, verb: str, path: str, body: Any = None) -> Any:
        """Call the control API, served on the plugin socket under /fakedriver/."""
        return control(self.socket, verb, path, body)

    def calls(self) -> list[dict[str, Any]]:
        """The server's journal: its JSON log lines, oldest first (of every process this
        plugin ran). A thread of the server writes the log after the answer: wait until
        the running process's lines hold every call its journal holds."""
        if self.process is not None and self.process.poll() is None:
            journaled = self.control("GET", f"/fakedriver/calls?since={2**31}")["next"]
            deadline = time.monotonic() + 10
            while len(self._entries(self.logged)) < journaled:
                assert time.monotonic() < deadline, f"the log lacks calls of {journaled}"
                time.sleep(0.01)
        return self._entries(0)

    def _entries(self, start: int) -> list[dict[str, Any]]:
        """The call entries of the log from byte ``start`` on."""
        with open(self.log, "rb") as log:
            log.seek(start)
            lines = log.read().decode().splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        return [entry for entry in entries if "method" in entry]


def control(socket_path: Path, verb: str, path: str, body: Any = None) -> Any:
    """Call a fake's control API on a unix socket (JSON in, JSON out; 200 expected)."""
    status, answer = unix_call(socket_path, verb, path, body)
    assert status == 200, answer
    return answer


class ManagedPlugin:
    """A managed (v2) plugin made from a bundle of ``fakedriver plugin build``, on one
    daemon, with a host folder of its own (``data``) mounted at ``/var/lib/fakedriver``
    inside; its control API is on its socket (``fakedriver plugin socket NAME``, in
    ``/run/docker/plugins/<id>/`` whatever the daemon's exec root)."""

    def __init__(self, dockerd: Dockerd, name: str, data: Path | None = None) -> None:
        self.dockerd, self.name = dockerd, name
        self.data = data or dockerd.base / f"{name}-data"
        self.socket = Path()

    def install(self, bundle: Path, *args: str) -> None:
        """``docker plugin create``, ``set data.source=... args=...`` and ``enable``."""
        self.data.mkdir(exist_ok=True)
        self.dockerd.docker("plugin", "create", self.name, str(bundle), timeout=300)
        settings = [f"data.source={self.data}", *([f"args={' '.join(args)}"] if args else [])]
        self.dockerd.docker("plugin", "set", self.name, *settings, timeout=60)
        self.enable()

    def enable(self) -> None:
        """``docker plugin enable``; returns once the plugin listens on its socket."""
        self.dockerd.docker("plugin", "enable", self.name, timeout=120)
        found = subprocess.run(
            [sys.executable, "-m", "fakedriver", "plugin", "socket", self.name],
            env=self.dockerd.env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        self.socket = Path(found.stdout.strip())
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            assert time.monotonic() < deadline, f"the socket of {self.name} did not appear in 20 s"
            time.sleep(0.1)

    def restart(self, *settings: str) -> None:
        """``disable``, ``docker plugin set`` these settings, ``enable``."""
        self.dockerd.docker("plugin", "disable", self.name, timeout=60)
        self.dockerd.docker("plugin", "set", self.name, *settings, timeout=60)
        self.enable()

    def remove(self) -> None:
        self.dockerd.docker("plugin", "disable", "--force", self.name, check=False, timeout=60)
        self.dockerd.docker("plugin", "rm", "--force", self.name, check=False, timeout=60)

    def control(self, verb: str, path: str, body: Any = None) -> Any:
        """Call the fake's control API (JSON in, JSON out)."""
        return control(self.socket, verb, path, body)

    def calls(self) -> list[dict[str, Any]]:
        """The fake's whole journal (of this plugin process), oldest first."""
        answer = self.control("GET", "/fakedriver/calls?since=0")
        assert answer["evicted"] == 0, answer
        return list(answer["calls"])

    def state(self) -> dict[str, Any]:
        return dict(self.control("GET", "/fakedriver/state"))

    def leaks(self) -> list[str]:
        return list(self.control("GET", "/fakedriver/leaks")["leaks"])


def unix_call(
    path: str | Path, verb: str, target: str, body: Any = None, timeout: float = 30
) -> tuple[int, Any]:
    """One HTTP request over a unix socket (JSON body, if any); the status and JSON answer."""
    conn = _UnixHTTPConnection(str(path), timeout=timeout)
    try:
        payload = b"" if body is None else json.dumps(body).encode()
        conn.request(verb, target, body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def _accepts(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


# -- the wire as dockerd saw it -------------------------------------------------------------
@dataclass(frozen=True)
class Exchange:
    """One plugin call as it crossed the tap: the request, and the answer exactly as
    dockerd received it (cut short if the plugin closed the connection)."""

    at: float  # time.monotonic() when the request's first byte arrived
    method: str  # "NetworkDriver.Join"
    headers: dict[str, str]
    body: bytes
    status: int | None  # None: the connection closed before any answer
    answer: bytes
    complete: bool  # the whole answer arrived (its Content-Length)

    @property
    def request(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


class Tap:
    """A byte-for-byte relay from ``listen`` (where dockerd connects) to ``upstream`` (the
    plugin), one upstream connection per dockerd connection, closing each side when the
    other closes: a plugin that drops a connection, before or in the middle of an answer,
    drops dockerd's. What crossed is recorded, for :meth:`exchanges`."""

    def __init__(self, listen: Path, upstream: Path) -> None:
        self.listen, self.upstream = listen, upstream
        self.running = False
        self._server: socket.socket | None = None
        self._lock = threading.Lock()
        #: per connection: request chunks (time, bytes) and the answer bytes
        self._streams: list[tuple[list[tuple[float, bytes]], bytearray]] = []
        self._open: list[socket.socket] = []

    def start(self) -> None:
        self.listen.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.listen.unlink()
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(self.listen))
        server.listen(128)
        self._server, self.running = server, True
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        self.running = False
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.listen.unlink()
        with self._lock:
            for sock in self._open:
                _shut(sock)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                down, _ = server.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX)
            try:
                up.connect(str(self.upstream))
            except OSError:  # the plugin is down: dockerd sees the connection close
                down.close()
                up.close()
                continue
            requests: list[tuple[float, bytes]] = []
            answers = bytearray()
            with self._lock:
                self._streams.append((requests, answers))
                self._open += [down, up]
            threading.Thread(target=self._pump, args=(down, up, requests), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, answers), daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, into: list[tuple[float, bytes]] | bytearray
    ) -> None:
        try:
            while chunk := src.recv(65536):
                with self._lock:
                    if isinstance(into, bytearray):
                        into += chunk
                    else:
                        into.append((time.monotonic(), chunk))
                dst.sendall(chunk)
        except OSError:
            pass
        _shut(dst)
        _shut(src)
        with self._lock:  # each socket is the source of one pump: that one closes it
            if src in self._open:
                self._open.remove(src)
        src.close()

    def exchanges(self) -> list[Exchange]:
        """Every call so far, in the order the requests arrived."""
        found: list[Exchange] = []
        with self._lock:
            streams = [(list(reqs), bytes(ans)) for reqs, ans in self._streams]
        for chunks, answers in streams:
            raw = b"".join(chunk for _, chunk in chunks)
            starts, offset = [], 0
            for at, chunk in chunks:
                starts.append((offset, at))
                offset += len(chunk)
            replies = _messages(answers)
            for i, (head, body, end, _) in enumerate(_messages(raw)):
                begin = end - len(body) - len(head) - 4
                at = max(t for o, t in starts if o <= begin)
                line, *fields = head.decode("latin-1").split("\r\n")
                headers = dict(f.split(": ", 1) for f in fields if ": " in f)
                status, answer, complete = None, b"", False
                if i < len(replies):
                    reply_head, answer, _, complete = replies[i]
                    status = int(reply_head.split(b" ", 2)[1])
                method = line.split(" ")[1].lstrip("/")
                found.append(Exchange(at, method, headers, body, status, answer, complete))
        return sorted(found, key=lambda e: e.at)


def _messages(stream: bytes) -> list[tuple[bytes, bytes, int, bool]]:
    """HTTP/1.1 messages in a byte stream: (head, body, end offset, whole body)."""
    found, at = [], 0
    while (split := stream.find(b"\r\n\r\n", at)) != -1:
        head = stream[at:split]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = stream[split + 4 : split + 4 + length]
        at = split + 4 + len(body)
        found.append((head, body, at, len(body) == length))
    return found


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def host_links() -> set[str]:
    """The names of the host's network interfaces (``ip -o link``)."""
    out = subprocess.run(
        ["ip", "-o", "link"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}
