"""``fakedriver serve``'s start (issue 17, second round): a numeric flag is refused beyond
the most it can take, what the server reads at start must be a regular file, a signal ends
a start that is stuck, the folders it makes are not others' to write, and which TCP
addresses are this host's alone."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.rawhttp import Served, call, connect, eventually, read_one

from fakedriver import FakeNetDriver
from fakedriver.cli.args import MOST, parser
from fakedriver.core.state import State
from fakedriver.persist.store import Store, peek_state
from fakedriver.server.files import ServeError
from fakedriver.server.server import PluginServer


# -- numeric flags ------------------------------------------------------------------------
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _over(most: float) -> str:
    return repr(most * 10) if isinstance(most, float) else str(most + 1)


@pytest.mark.parametrize("name", sorted(MOST))
@pytest.mark.parametrize("kind", ["over", "huge", "nan", "inf", "zero", "negative"])
def test_a_numeric_flag_beyond_its_bounds_is_a_usage_error(
    name: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--idle-timeout 1e10`` was taken, then every connection's settimeout() overflowed
    and the client was reset."""
    value = {
        "over": _over(MOST[name]),
        "huge": "1e10" if isinstance(MOST[name], float) else str(10**12),
        "nan": "nan",
        "inf": "inf",
        "zero": "0",
        "negative": "-1",
    }[kind]
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["serve", _flag(name), value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {_flag(name)}: " in err and "Traceback" not in err, err


def test_every_numeric_flag_of_serve_has_its_most() -> None:
    serve = parser().parse_args(["serve"]).subparser
    numeric = {
        action.dest
        for action in serve._actions
        if getattr(action.type, "__name__", "") in ("int", "float")
    }
    persona = {"seed"}  # a persona field: checked by Persona (test_persona.py)
    assert numeric - persona == set(MOST)


@pytest.mark.socket
def test_every_numeric_flag_at_its_most_serves(short_dir: Path) -> None:
    """The bounds are values that work: a call read in two parts (the read timeout's
    deadline set) and a second one on the same kept-alive connection (the idle one)."""
    most = [arg for name, value in MOST.items() for arg in (_flag(name), str(value))]
    served = Served(short_dir, "--socket", str(short_dir / "p.sock"), *most).wait_ready()
    try:
        with connect(str(short_dir / "p.sock")) as sock:
            data = call("Plugin.Activate", {})
            sock.sendall(data[:10])
            sock.sendall(data[10:])
            assert read_one(sock).status == 200
            sock.sendall(call("NetworkDriver.GetCapabilities", {}))
            assert json.loads(read_one(sock).body)["Scope"] == "local"
    finally:
        assert served.stop() == 0
    assert "Traceback" not in served.stderr(), served.stderr()


def _serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    """``fakedriver serve ARGS`` that must not start: its exit, within 20 s."""
    return subprocess.run(
        [sys.executable, "-m", "fakedriver", "serve", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


# -- files read at start ------------------------------------------------------------------
#: Each file serve reads at start, and the words its refusal names it with.
START_FILES = {
    "--control-token-file": "--control-token-file",
    "--persona": "persona file",
    "--faults": "fault scenario",
    "--state": "state file",
}


def _irregular(folder: Path, kind: str) -> str:
    if kind == "fifo":
        os.mkfifo(folder / "fifo", 0o600)
        return str(folder / "fifo")
    if kind == "folder":
        (folder / "folder").mkdir(mode=0o700)
        return str(folder / "folder")
    return "/dev/zero"  # endless: a read of it would fill the memory


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
@pytest.mark.parametrize("flag", sorted(START_FILES))
def test_a_file_read_at_start_must_be_a_regular_file(short_dir: Path, flag: str, kind: str) -> None:
    """A FIFO as --persona blocked the start for ever (and no signal ended it)."""
    path = _irregular(short_dir, kind)
    sock = short_dir / "p.sock"
    done = _serve_once("--socket", str(sock), flag, path)
    shown = {"fifo": "a FIFO", "folder": "a folder", "device": "a character device"}[kind]
    line = f"fakedriver: {START_FILES[flag]} {path} is {shown}, not a regular file\n"
    assert (done.returncode, done.stderr) == (2, line)
    assert not sock.exists()


@pytest.mark.parametrize("argv", [["show", "{fifo}"], ["import", "{fifo}", "{dir}/new.db"]])
def test_state_show_and_import_refuse_a_fifo(short_dir: Path, argv: list[str]) -> None:
    fifo = _irregular(short_dir, "fifo")
    argv = [a.format(fifo=fifo, dir=short_dir) for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "fakedriver", "state", *argv],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    line = f"fakedriver: state file {fifo} is a FIFO, not a regular file\n"
    assert (done.returncode, done.stderr) == (2, line)
    assert sorted(p.name for p in short_dir.iterdir()) == ["fifo"]


# -- a signal during the start ------------------------------------------------------------
HUNG_IP = """#!/bin/sh
# `ip` hung (a wedged netlink): says it started, then waits a minute.
echo $$ > "$FDT_IP_PID"
exec sleep 60
"""


@pytest.mark.parametrize(
    ("signum", "tcp"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGHUP, True)],
    ids=["SIGTERM", "SIGINT", "SIGHUP-tcp"],
)
def test_a_signal_ends_a_start_blocked_on_something_slow(
    short_dir: Path, signum: int, tcp: bool
) -> None:
    """The start reconciles the saved link intents with ``ip``, which hangs: a stop
    signal ends it within seconds, the ``ip`` is killed, and the socket (or spec file)
    made before is removed. (Python retries a system call a signal interrupts, and the
    handler raised nothing: the start waited for the ``ip``.)"""
    eid = "e" * 64
    state = State()
    state.links.add(eid)  # a pair being made when the last server died
    store = Store.open(str(short_dir / "s.db"))
    store.replace(state)
    store.close()
    (short_dir / "bin").mkdir()
    (short_dir / "bin" / "ip").write_text(HUNG_IP)
    (short_dir / "bin" / "ip").chmod(0o755)
    pid_file = short_dir / "ip.pid"
    env = {
        **os.environ,
        "PATH": f"{short_dir / 'bin'}:{os.environ['PATH']}",
        "FDT_IP_PID": str(pid_file),
    }
    where = (
        ["--tcp", "127.0.0.1:0", "--spec-dir", str(short_dir)]
        if tcp
        else ["--socket", str(short_dir / "p.sock")]
    )
    made = short_dir / ("fake.spec" if tcp else "p.sock")
    args = [*where, "--state", str(short_dir / "s.db"), "--links", "veth"]
    served = Served(short_dir, *args, env=env)
    try:
        assert eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), 20)
        assert made.exists()  # made before the reconciling
        ip = int(pid_file.read_text())
    finally:
        code = served.stop(signum)  # within 10 s, or killed and failed
    name = signal.Signals(signum).name
    assert code == 128 + signum, served.stderr()
    said = f"fakedriver: {name} during the start: stopped before serving\n"
    assert served.stderr().endswith(said)
    assert "Traceback" not in served.stderr()
    assert not made.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(ip, 0)  # the hung `ip` was killed with the start
    assert peek_state(str(short_dir / "s.db")).links == {eid}  # nothing saved half-done


# -- the folders the server makes ---------------------------------------------------------
@pytest.mark.parametrize("umask", [0o000, 0o077, 0o022])
@pytest.mark.socket
def test_the_folders_the_server_makes_are_0755_whatever_the_umask(
    short_dir: Path, umask: int
) -> None:
    """Under umask 000 ``--spec-dir new/spec/dir`` was made 0777 without a sticky bit:
    anyone could replace the spec file and send dockerd to their own plugin."""
    spec = short_dir / "new" / "spec" / "dir" / "fake.spec"
    sock = short_dir / "run" / "plugins" / "p.sock"
    old = os.umask(umask)
    try:
        servers = [
            PluginServer(FakeNetDriver(), tcp=("127.0.0.1", 0), spec=str(spec)),
            PluginServer(FakeNetDriver(), socket_path=str(sock)),
        ]
    finally:
        os.umask(old)
    for server in servers:
        server.close()
    made = [p for p in short_dir.rglob("*") if p.is_dir()]
    assert len(made) == 5
    assert {str(p.relative_to(short_dir)): oct(stat.S_IMODE(p.stat().st_mode)) for p in made} == {
        str(p.relative_to(short_dir)): "0o755" for p in made
    }


@pytest.mark.parametrize(
    ("mode", "where"),
    [(0o777, "spec"), (0o757, "spec"), (0o777, "above"), (0o777, "socket")],
)
def test_a_folder_others_may_write_without_a_sticky_bit_is_refused(
    short_dir: Path, mode: int, where: str
) -> None:
    shared = short_dir / "shared"
    shared.mkdir()
    shared.chmod(mode)
    folder = shared / "mine" if where == "above" else shared
    if where == "socket":
        argv = ["--socket", str(folder / "p.sock")]
    else:
        argv = ["--tcp", "127.0.0.1:0", "--spec-dir", str(folder)]
    done = _serve_once(*argv, "--no-control")  # served, it would run until the timeout
    err = done.stderr
    assert done.returncode == 2 and err.count("\n") == 1, err
    assert f": {shared} may be written by others and has no sticky bit (mode 0{mode:o})" in err
    assert err.endswith(f"chmod o-w {shared}\n")
    assert [p for p in short_dir.rglob("*") if p.is_file() or p.is_socket()] == []


@pytest.mark.socket
def test_a_sticky_folder_others_may_write_is_fine(short_dir: Path) -> None:
    """As /tmp: others may make files there, not rename nor remove this server's."""
    short_dir.chmod(0o1777)
    server = PluginServer(FakeNetDriver(), tcp=("127.0.0.1", 0), spec=str(short_dir / "f.spec"))
    try:
        assert (short_dir / "f.spec").read_text() == server.address + "\n"
    finally:
        server.close()


@pytest.mark.socket
def test_a_server_that_cannot_write_its_spec_leaves_nothing_open(short_dir: Path) -> None:
    """The TCP socket was bound and listening when the spec file failed: it was left open
    (and the log's thread running) in a process that goes on, as a test's does."""
    short_dir.chmod(0o777)
    fds, threads = len(os.listdir("/proc/self/fd")), threading.active_count()
    with pytest.raises(ServeError, match="may be written by others"):
        PluginServer(
            FakeNetDriver(),
            tcp=("127.0.0.1", 0),
            spec=str(short_dir / "f.spec"),
            log=io.StringIO(),
        )
    assert (len(os.listdir("/proc/self/fd")), threading.active_count()) == (fds, threads)


# -- which TCP addresses are this host's alone --------------------------------------------
def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


#: ``--tcp`` values, and whether serving there is beyond this host (and warned about).
TCP_REACH = [
    ("127.0.0.1:0", False),
    ("127.1:0", False),  # the C library's short form of 127.0.0.1
    ("127.3.4.5:0", False),  # all of 127/8 is loopback
    ("localhost:0", False),
    ("0.0.0.0:0", True),
    pytest.param("[::1]:0", False, marks=pytest.mark.skipif(not _ipv6(), reason="no IPv6")),
    pytest.param(
        "[::ffff:127.0.0.1]:0", False, marks=pytest.mark.skipif(not _ipv6(), reason="no IPv6")
    ),
    pytest.param("[::]:0", True, marks=pytest.mark.skipif(not _ipv6(), reason="no IPv6")),
]


@pytest.mark.parametrize(("value", "beyond"), TCP_REACH)
def test_only_an_address_beyond_this_host_is_warned_about(
    short_dir: Path, value: str, beyond: bool
) -> None:
    """``127.1`` and ``::ffff:127.0.0.1`` were warned about as if they were not loopback."""
    served = Served(short_dir, "--tcp", value, "--spec-dir", str(short_dir), "--no-control")
    try:
        served.wait_ready()
        warned = "beyond this host" in served.stderr()
    finally:
        assert served.stop() == 0
    assert warned is beyond, served.stderr()
