"""Recorded from a real daemon: ``fakedriver record`` in front of ``fakedriver serve`` while
the docker CLI runs a dozen steps (network create/rm with and without the plugin's IPAM,
``--subnet``/``--ip``/``--ipv6``, run, connect/disconnect), each step marked; the session
then replays clean against a fresh fake (`fakedriver.conformance.replay`) and through
``fakedriver check --session``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.dockerd_env import PLUGIN_DIR, Dockerd, host_lock, run_name

from fakedriver import FakeNetDriver, serving
from fakedriver.conformance import load, replay
from fakedriver.conformance.client import Client, Target

pytestmark = pytest.mark.dockerd

NAME = run_name("fdr")
NETS = [f"{NAME}-{x}" for x in "abcd"]
CREATE = ["network", "create", "-d", NAME]
IPAM = [*CREATE, "--ipam-driver", NAME]
BOX = f"{NAME}-c"
STEPS = [
    ("network create, plugin IPAM", [*IPAM, NETS[0]]),
    ("network create, --subnet", [*CREATE, "--subnet", "10.97.0.0/24", "--gateway", "10.97.0.1",
                                  NETS[1]]),
    ("network create, plugin IPAM --subnet", [*IPAM, "--subnet", "10.98.0.0/24", NETS[2]]),
    ("network create, plugin IPAM --ipv6", [*IPAM, "--ipv6", "--subnet", "fd00:97::/64", NETS[3]]),
    ("run --rm", ["run", "--rm", "--network", NETS[0], "bb:local", "true"]),
    ("create with --ip", ["create", "--name", BOX, "--stop-timeout", "1", "--network", NETS[1],
                          "--ip", "10.97.0.50", "bb:local", "sleep", "600"]),
    ("start", ["start", BOX]),
    ("connect --ip", ["network", "connect", "--ip", "10.98.0.77", NETS[2], BOX]),
    ("connect", ["network", "connect", NETS[0], BOX]),
    ("disconnect", ["network", "disconnect", NETS[2], BOX]),
    ("stop", ["stop", BOX]),
    ("rm", ["rm", BOX]),
    ("network rm", ["network", "rm", *NETS]),
]  # fmt: skip


def _wait_for(path: Path, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not listen at {path}")
        time.sleep(0.05)


def test_a_session_recorded_from_dockerd_replays_clean(dockerd: Dockerd) -> None:
    base = dockerd.base
    upstream, plugin_socket = base / f"{NAME}-up.sock", PLUGIN_DIR / f"{NAME}.sock"
    session = base / f"{NAME}.jsonl"
    version = dockerd.docker("version", "-f", "{{.Server.Version}}").stdout.strip()
    with open(base / f"{NAME}-serve.log", "wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "fakedriver", "serve", "--socket", str(upstream),
             "--links", "veth", "--quiet"], stderr=log, stdout=log,
        )  # fmt: skip
    try:
        _wait_for(upstream, serve, "fakedriver serve")
        with open(base / f"{NAME}-record.log", "wb") as log:
            record = subprocess.Popen(
                [sys.executable, "-m", "fakedriver", "record", "--upstream", str(upstream),
                 "--socket", str(plugin_socket), "--out", str(session),
                 "--dockerd-version", version], stderr=log, stdout=log,
            )  # fmt: skip
        try:
            _wait_for(plugin_socket, record, "fakedriver record")
            marks = Client(Target("rec", path=str(plugin_socket)), timeout=10)
            with host_lock("docker_gwbridge"):
                for desc, argv in STEPS:
                    marks.call("fakedriver/mark", {"desc": desc})
                    dockerd.docker(*argv)
            marks.close()
        finally:
            record.send_signal(signal.SIGTERM)
            record.wait(timeout=30)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
    assert record.returncode == 0, (base / f"{NAME}-record.log").read_text()
    steps = load(session)
    assert [s.desc for s in steps] == [desc for desc, _ in STEPS]
    methods = {c["path"] for s in steps for c in s.calls}
    for wanted in ("/NetworkDriver.Join", "/NetworkDriver.Leave", "/IpamDriver.RequestPool",
                   "/IpamDriver.RequestAddress", "/NetworkDriver.DeleteNetwork"):  # fmt: skip
        assert wanted in methods
    runner = replay(FakeNetDriver(), session)
    assert runner.sent == sum(len(s.calls) for s in steps)
    with serving() as other:
        done = subprocess.run(
            [sys.executable, "-m", "fakedriver", "check", "--session", str(session),
             other.socket_path], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "PASS sequences/session" in done.stdout
