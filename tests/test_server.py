"""``fakedriver serve`` and PluginServer on a real socket, spoken to exactly as dockerd does.

dockerd's requests (transcript §1): ``POST`` over HTTP/1.1, an empty ``Host:`` header, no
``Content-Type``, ``Content-Length: 0`` for calls without arguments, bodies of compact JSON
and a newline, one keep-alive connection reused for many calls, calls in parallel.

The clients and launchers are in ``serve_env.py``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.serve_env import (
    BANNER,
    Conn,
    Dockerd,
    Launcher,
    Served,
    create_network,
    dockerd_request,
    read_response,
    temporary_short_dir,
)

from fakedriver import FakeNetDriver
from fakedriver.server.server import BACKLOG, PluginServer

pytestmark = pytest.mark.socket  # the socket tier: the socket server

NET = "n" * 64


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """One ``fakedriver serve --socket`` for the wire-format tests; yields the socket path."""
    with temporary_short_dir() as folder:
        served = Served(folder, "--socket", str(folder / "x.sock")).wait_ready()
        yield str(folder / "x.sock")
        served.kill()


# -- the wire ---------------------------------------------------------------------------------
def test_requests_exactly_like_dockerds_are_answered(server: str) -> None:
    """Empty Host header, no Content-Type, Content-Length: 0 for calls without arguments."""
    for method, expected in [
        ("Plugin.Activate", {"Implements": ["NetworkDriver", "IpamDriver"]}),
        ("NetworkDriver.GetCapabilities", {"Scope": "local", "ConnectivityScope": ""}),
        (
            "IpamDriver.GetCapabilities",
            {"RequiresMACAddress": False, "RequiresRequestReplay": False},
        ),
        (
            "IpamDriver.GetDefaultAddressSpaces",
            {
                "LocalDefaultAddressSpace": "LocalDefault",
                "GlobalDefaultAddressSpace": "GlobalDefault",
            },
        ),
    ]:
        with Conn(server) as conn:
            response = conn.send(method)  # Content-Length: 0, no body at all
        assert (response.status, response.json) == (200, expected), method
        assert response.headers["content-type"] == "application/vnd.docker.plugins.v1.2+json"

    with Conn(server) as conn:
        response = conn.send("NetworkDriver.CreateNetwork", create_network("w" * 64))
    assert (response.status, response.json) == (200, {})
    with Conn(server) as conn:
        response = conn.send("NetworkDriver.DeleteNetwork", {"NetworkID": "w" * 64})
    assert (response.status, response.json) == (200, {})


def test_a_refusal_over_the_socket_is_in_the_protocol(server: str) -> None:
    with Conn(server) as conn:
        response = conn.send("NetworkDriver.DeleteNetwork", {"NetworkID": "x" * 64})
    assert response.status == 200
    assert response.json == {"Err": f"network {'x' * 64} not found"}


def test_one_keep_alive_connection_serves_many_calls(server: str) -> None:
    """dockerd reuses one connection for many calls (transcript §1: 10 calls on one)."""
    answered: list[tuple[int, str]] = []
    with Conn(server, timeout=2.0) as conn:
        for i in range(5):
            try:
                response = conn.send("NetworkDriver.GetCapabilities")
            except (OSError, ConnectionError) as exc:
                pytest.fail(
                    f"call #{i} on the same connection got no answer ({exc!r}); answers so far "
                    f"(status, Connection header): {answered}"
                )
            answered.append((response.status, response.headers.get("connection", "")))
            assert response.json["Scope"] == "local"
    assert [status for status, _ in answered] == [200] * 5
    assert all(header.lower() != "close" for _, header in answered), answered


def test_the_socket_is_rw_for_owner_and_group_only(server: str) -> None:
    mode = os.stat(server).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


# -- concurrency (in-process server in a thread) ---------------------------------------------
@pytest.fixture
def in_process(short_dir: Path) -> Iterator[tuple[FakeNetDriver, str]]:
    fake = FakeNetDriver()
    path = str(short_dir / "x.sock")
    plugin = PluginServer(fake, socket_path=path)
    thread = threading.Thread(target=plugin.serve_forever, daemon=True)
    thread.start()
    yield fake, path
    plugin.shutdown()
    thread.join(5)
    plugin.close()


def test_eight_concurrent_connections_never_get_the_same_address(
    in_process: tuple[FakeNetDriver, str],
) -> None:
    fake, path = in_process
    setup = Dockerd(path)
    pool = setup.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "Options": {}, "V6": False},
    )
    setup.close()
    workers, per_worker = 8, 12
    start = threading.Barrier(workers)
    results: list[list[str]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        client = Dockerd(path)
        try:
            start.wait(5)
            client.ok("NetworkDriver.CreateNetwork", create_network(f"{i:064x}"))
            for _ in range(per_worker):
                client.ok("NetworkDriver.GetCapabilities")
                answer = client.ok(
                    "IpamDriver.RequestAddress",
                    {"PoolID": pool["PoolID"], "Address": "", "Options": None},
                )
                results[i].append(answer["Address"])
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    handed_out = [address for addresses in results for address in addresses]
    assert len(handed_out) == workers * per_worker
    assert len(set(handed_out)) == len(handed_out), "an address was handed out twice"
    # Served one at a time, lowest free first: exactly the first 96 addresses of the pool.
    base = ipaddress.ip_network(pool["Pool"])
    assert sorted(handed_out, key=lambda a: ipaddress.ip_interface(a)) == [
        f"{base.network_address + n}/{base.prefixlen}" for n in range(1, len(handed_out) + 1)
    ]
    assert len(fake.state.networks) == workers
    assert len(fake.calls) == 1 + workers * (1 + 2 * per_worker)
    assert all(call.ok for call in fake.calls)


def test_a_burst_of_connections_fits_in_the_listen_backlog(short_dir: Path) -> None:
    """Go (dockerd) connects to a unix socket without blocking: when the listen backlog is
    full, connect fails at once with EAGAIN ("connect: resource temporarily unavailable")
    instead of waiting. dockerd makes calls in parallel, so a burst of connections must
    fit in the backlog while the server is busy accepting."""
    burst = 16
    path = str(short_dir / "x.sock")
    plugin = PluginServer(FakeNetDriver(), socket_path=path)  # not accepting yet
    pending: list[socket.socket] = []
    try:
        for i in range(burst):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)  # as Go's net.Dial does
            try:
                sock.connect(path)
            except BlockingIOError as exc:
                sock.close()
                pytest.fail(
                    f"connection {i + 1} of a burst of {burst} was refused ({exc}); "
                    f"listen backlog: {BACKLOG}"
                )
            pending.append(sock)
        thread = threading.Thread(target=plugin.serve_forever, daemon=True)
        thread.start()
        try:
            for sock in pending:
                sock.settimeout(5)
                sock.sendall(dockerd_request("NetworkDriver.GetCapabilities"))
                with sock.makefile("rb") as stream:
                    assert read_response(stream).status == 200
        finally:
            plugin.shutdown()
            thread.join(5)
    finally:
        for sock in pending:
            sock.close()
        plugin.close()


# -- claiming the socket ---------------------------------------------------------------------
def test_a_second_server_on_a_live_socket_exits_2_and_leaves_the_first_alone(
    serve: Launcher, short_dir: Path
) -> None:
    path = str(short_dir / "x.sock")
    first = serve("--socket", path).wait_ready()
    second = serve("--socket", path)
    assert second.wait() == 2
    assert second.text().strip() == f"fakedriver: {path} is served by a live process; stop it first"
    assert first.proc.poll() is None
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    client = Dockerd(path)
    assert client.ok("Plugin.Activate") == {"Implements": ["NetworkDriver", "IpamDriver"]}
    client.close()
    assert first.stop() == 0


def test_a_stale_socket_is_replaced(serve: Launcher, short_dir: Path) -> None:
    path = str(short_dir / "x.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)  # bound, never listened on, then closed: what a crashed server leaves
    dead.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    served = serve("--socket", path).wait_ready()
    client = Dockerd(path)
    assert client.ok("NetworkDriver.GetCapabilities")["Scope"] == "local"
    client.close()
    assert served.stop() == 0


def test_a_regular_file_at_the_socket_path_is_refused(serve: Launcher, short_dir: Path) -> None:
    path = short_dir / "x.sock"
    path.write_text("precious")
    served = serve("--socket", str(path))
    assert served.wait() == 2
    assert served.text().strip() == (
        f"fakedriver: {path} exists and is not a socket; not removing it"
    )
    assert path.read_text() == "precious"


# -- shutting down ---------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_shuts_down_cleanly_and_removes_the_socket(
    serve: Launcher, short_dir: Path, signum: int
) -> None:
    path = str(short_dir / "x.sock")
    served = serve("--socket", path).wait_ready()
    idle = Conn(path)  # dockerd keeps a connection open: it must not hold up shutdown
    try:
        assert idle.send("Plugin.Activate").status == 200
        assert served.stop(signum) == 0
    finally:
        idle.close()
    assert not os.path.lexists(path)
    assert "Traceback" not in served.text()


def test_tcp_mode_writes_the_spec_file_and_removes_it(serve: Launcher, short_dir: Path) -> None:
    spec_dir = short_dir / "specs"
    served = serve("--tcp", "127.0.0.1:0", "--spec-dir", str(spec_dir), "--name", "fk")
    served.wait_ready()
    spec = spec_dir / "fk.spec"
    match = re.fullmatch(r"tcp://127\.0\.0\.1:(\d+)\n?", spec.read_text())
    assert match, spec.read_text()
    port = int(match.group(1))
    assert port > 0
    assert f"{BANNER}tcp://127.0.0.1:{port}" in served.text()
    with Conn(("127.0.0.1", port)) as conn:
        response = conn.send("Plugin.Activate")
    assert response.json == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert sorted(os.listdir(spec_dir)) == ["fk.spec"]  # no temporary file left
    assert served.stop() == 0
    assert not spec.exists()


# -- the per-call log ------------------------------------------------------------------------
def _three_calls(path: str) -> None:
    client = Dockerd(path)
    client.ok("Plugin.Activate")
    client.ok("NetworkDriver.CreateNetwork", create_network(NET))
    client.refused("NetworkDriver.DeleteNetwork", {"NetworkID": "x" * 64})
    client.close()


def test_text_log_has_one_line_per_call(serve: Launcher, short_dir: Path) -> None:
    path = str(short_dir / "x.sock")
    served = serve("--socket", path).wait_ready()
    _three_calls(path)
    assert served.stop() == 0
    banner, *calls = served.lines()
    assert banner == f"{BANNER}unix://{path}"
    stamp = r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "  # each line's UTC time
    assert [re.sub(f"^{stamp}", "", line) for line in calls] == [
        "#0 Plugin.Activate -> ok",
        "#1 NetworkDriver.CreateNetwork -> ok",
        f"#2 NetworkDriver.DeleteNetwork -> ERROR 200: network {'x' * 64} not found",
    ]
    assert all(re.match(stamp, line) for line in calls)


def test_json_log_has_one_json_object_per_call(serve: Launcher, short_dir: Path) -> None:
    path = str(short_dir / "x.sock")
    served = serve("--socket", path, "--log-format", "json").wait_ready()
    _three_calls(path)
    assert served.stop() == 0
    banner, *records = [json.loads(line) for line in served.lines()]  # JSON lines throughout
    assert banner["event"] == "serving" and banner["message"].startswith(BANNER)
    assert [(r["index"], r["method"], r["status"], r["error"]) for r in records] == [
        (0, "Plugin.Activate", 200, None),
        (1, "NetworkDriver.CreateNetwork", 200, None),
        (2, "NetworkDriver.DeleteNetwork", 200, f"network {'x' * 64} not found"),
    ]
    assert all(r["violations"] == [] for r in records)


#: A NetworkID that would forge a whole log line, clear the terminal's line, reverse the
#: text after it and end a line the Unicode way.
FORGING = "x -> ok\n2026-01-01T00:00:00.000Z #9 Plugin.Activate -> ok\x1b[2K\u202e\u2028"
FORGING_ESCAPED = r"x -> ok\n2026-01-01T00:00:00.000Z #9 Plugin.Activate -> ok\x1b[2K\u202e\u2028"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_clients_text_cannot_forge_a_log_line_or_reach_the_terminal(
    serve: Launcher, short_dir: Path, log_format: str
) -> None:
    path = str(short_dir / "x.sock")
    served = serve("--socket", path, "--log-format", log_format).wait_ready()
    client = Dockerd(path)
    client.refused("NetworkDriver.DeleteNetwork", {"NetworkID": FORGING})
    client.ok("Plugin.Activate")
    client.close()
    assert served.stop() == 0
    raw = served.log.read_bytes().decode()
    _banner, *calls = raw.split("\n")[:-1]  # a newline only at the end of each line
    assert len(calls) == 2, raw
    assert all(char.isprintable() for char in raw.replace("\n", "")), ascii(raw)
    if log_format == "json":  # JSON escapes them: the text is whole once decoded
        assert json.loads(calls[0])["request"]["NetworkID"] == FORGING
    else:  # escaped as in a Python string
        assert f"ERROR 200: network {FORGING_ESCAPED} not found" in calls[0], calls[0]


def test_quiet_logs_no_call(serve: Launcher, short_dir: Path) -> None:
    path = str(short_dir / "x.sock")
    served = serve("--socket", path, "--quiet").wait_ready()
    _three_calls(path)
    assert served.stop() == 0
    assert served.lines() == [f"{BANNER}unix://{path}"]


# -- --help ----------------------------------------------------------------------------------
SERVE_OPTIONS = [
    "--name", "--socket", "--tcp", "--spec-dir",
    "--scope", "--connectivity-scope", "--gw-alloc-checker", "--no-ipam",
    "--requires-mac-address", "--requires-request-replay",
    "--local-address-space", "--global-address-space", "--lenient", "--seed",
    "--links", "--state", "--log-format", "--quiet",
]  # fmt: skip


def _serve_parser() -> argparse.ArgumentParser:
    from fakedriver.cli.args import parser

    serve: argparse.ArgumentParser = parser().parse_args(["serve"]).subparser
    return serve


def test_serve_help_documents_every_option() -> None:
    """The options this suite knows, and any the parser has besides, are all in --help,
    each with a help text."""
    done = subprocess.run(
        [sys.executable, "-m", "fakedriver", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    actions = [a for a in _serve_parser()._actions if a.option_strings != ["-h", "--help"]]
    declared = {option for a in actions for option in a.option_strings if option.startswith("--")}
    assert set(SERVE_OPTIONS) <= declared
    missing = [
        option
        for option in sorted(declared)
        if not re.search(rf"^\s+(?:--[\w-]+, )?{re.escape(option)}\b", done.stdout, re.MULTILINE)
    ]
    assert not missing, done.stdout
    undocumented = [a.option_strings for a in actions if a.help in (None, "", argparse.SUPPRESS)]
    assert not undocumented
