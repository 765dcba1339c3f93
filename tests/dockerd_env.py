"""A real, isolated dockerd and a `fakedriver serve` process for the integration tests.

The daemon gets its own data root, exec root, pid file and API socket, with iptables off,
no default bridge and vfs storage, so it touches nothing of a daemon the machine may run.
The plugin is a v1 plugin on ``/run/docker/plugins/NAME.sock``, where every dockerd looks.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

IMAGE = "bb:local"


class Unavailable(Exception):
    """dockerd cannot run here; the message says why."""


class Dockerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        self.log = base / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("dockerd")
        if binary is None or shutil.which("docker") is None:
            raise Unavailable("dockerd/docker not installed (Debian package docker.io)")
        argv = [
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
            if self.docker("info", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.3)
        self.stop()
        raise Unavailable(f"dockerd did not answer within 60 s:\n{self.tail()}")

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
    """``fakedriver serve --name NAME --state FILE --log-format json [EXTRA...]``."""

    def __init__(self, name: str, base: Path, *extra: str) -> None:
        self.name, self.extra = name, list(extra)
        self.socket = Path(f"/run/docker/plugins/{name}.sock")
        self.state = base / f"{name}-state.json"
        self.log = base / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "fakedriver",
            "serve",
            "--name",
            self.name,
            "--state",
            str(self.state),
            "--log-format",
            "json",
            *self.extra,
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stderr=log, stdout=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"fakedriver serve exited:\n{self.log.read_text()}")
            if _accepts(self.socket):
                return
            time.sleep(0.05)
        raise AssertionError("fakedriver serve did not listen within 20 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
            self.process = None

    def control(self, verb: str, path: str, body: Any = None) -> Any:
        """Call the control API, served on the plugin socket under /fakedriver/."""
        conn = _UnixHTTPConnection(str(self.socket))
        try:
            conn.request(verb, path, body=b"" if body is None else json.dumps(body).encode())
            response = conn.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200, answer
            return answer
        finally:
            conn.close()

    def calls(self) -> list[dict[str, Any]]:
        """The server's journal: its JSON log lines, oldest first."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        return [entry for entry in entries if "method" in entry]


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
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
