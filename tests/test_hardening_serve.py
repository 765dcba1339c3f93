"""``fakedriver serve`` under attack, beyond HTTP (issue 9): the control API from a
browser or over TCP, numbers that are not numbers, a journal that grows, and the files
and signals of the process (socket mode, another user's socket, the spec file, the plugin
name, SIGHUP). Raw sockets, loopback and unix only, each with a timeout."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.rawhttp import (
    Served,
    call,
    connect,
    eventually,
    exchange,
    nobody_command,
    parse,
    read_one,
    until_eof,
)
from support.rawhttp import request as raw_request

from fakedriver import FakeNetDriver
from fakedriver.cli.args import parser, tcp_address
from fakedriver.cli.main import main
from fakedriver.server import connection as connection_module
from fakedriver.server.connection import Answer, Connection, Limits, Request
from fakedriver.server.control import control
from fakedriver.server.server import PluginServer

pytestmark = pytest.mark.socket  # the socket tier: fakedriver serve's limits, over its socket

NET = "b" * 64
CREATE = {"NetworkID": NET, "Options": {}, "IPv4Data": [], "IPv6Data": []}
HANG = json.dumps({"method": "*", "kind": "hang"}).encode()


class Site:
    """A fake served on a unix socket (control API on it) and on loopback TCP."""

    def __init__(self, folder: Path, token: str | None = None, **options: Any) -> None:
        self.fake = FakeNetDriver(**options)
        api = lambda *a: control(self.fake, *a)  # noqa: E731
        self.path = str(folder / "p.sock")
        self.servers = [
            PluginServer(self.fake, socket_path=self.path, control=api),
            PluginServer(self.fake, tcp=("127.0.0.1", 0), control=api, control_token=token),
        ]
        self.tcp = ("127.0.0.1", self.servers[1].listener.getsockname()[1])
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self.servers]
        for thread in self.threads:
            thread.start()
        answer = self.send(
            self.path,
            raw_request("POST", "/NetworkDriver.CreateNetwork", json.dumps(CREATE).encode()),
        )
        assert answer.status == 200

    def send(self, address: Any, data: bytes) -> Any:
        with connect(address) as sock:
            sock.sendall(data)
            return read_one(sock)

    def unchanged(self) -> bool:
        """The network made at start is all there is, and no fault rule was added."""
        return list(self.fake.state.networks) == [NET] and self.fake.faults.rules == []

    def close(self) -> None:
        self.fake.release_rules()
        for server in self.servers:
            server.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def site(short_dir: Path) -> Iterator[Site]:
    served = Site(short_dir)
    try:
        yield served
    finally:
        served.close()


def control_request(verb: str, target: str, body: bytes = b"", headers: str = "") -> bytes:
    return raw_request(verb, target, body, f"{headers}Content-Length: {len(body)}\r\n")


JSON = "Content-Type: application/json\r\n"


# -- the control API -------------------------------------------------------------------------
BROWSER = {
    "reset, text/plain, Origin": control_request(
        "POST",
        "/fakedriver/reset",
        b"{}",
        "Origin: http://evil.example\r\nContent-Type: text/plain\r\n",
    ),
    "hang, text/plain, Origin": control_request(
        "POST",
        "/fakedriver/faults",
        HANG,
        "Origin: http://evil.example\r\nContent-Type: text/plain\r\n",
    ),
    "hang, JSON, Origin": control_request(
        "POST", "/fakedriver/faults", HANG, f"Origin: http://evil.example\r\n{JSON}"
    ),
    "reset, Sec-Fetch-Site": control_request(
        "POST", "/fakedriver/reset", b"{}", f"Sec-Fetch-Site: cross-site\r\n{JSON}"
    ),
    "state, Origin null": control_request("GET", "/fakedriver/state", headers="Origin: null\r\n"),
    "reset, Sec-Fetch-Mode alone": control_request(
        "POST", "/fakedriver/reset", b"{}", f"Sec-Fetch-Mode: cors\r\n{JSON}"
    ),
}


@pytest.mark.parametrize("data", BROWSER.values(), ids=BROWSER.keys())
def test_a_browser_request_is_refused_403(site: Site, data: bytes) -> None:
    answer = site.send(site.path, data)
    assert answer.status == 403 and "browsers" in answer.json["Err"]
    assert site.unchanged()


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_control_body_must_be_json(site: Site, kind: str) -> None:
    header = f"Content-Type: {kind}\r\n" if kind else ""
    answer = site.send(site.path, control_request("POST", "/fakedriver/faults", HANG, header))
    assert answer.status == 415 and site.unchanged()
    answer = site.send(site.path, control_request("POST", "/fakedriver/faults", HANG, JSON))
    assert answer.status == 200 and len(site.fake.faults.rules) == 1  # with it: accepted


def test_over_tcp_without_a_token_there_is_no_control_api(site: Site) -> None:
    for data in (
        control_request("POST", "/fakedriver/reset", b"{}", JSON),
        control_request("POST", "/fakedriver/faults", HANG, JSON),
        control_request("GET", "/fakedriver/state"),
    ):
        answer = site.send(site.tcp, data)
        assert answer.status == 404 and "--control-token-file" in answer.json["Err"]
    assert site.unchanged()
    assert site.send(site.tcp, call("Plugin.Activate")).status == 200  # the protocol is served


WRONG = ["", "Bearer wrong", "s3cret", "Basic s3cret", "Bearers3cret", "Bearer s3cret2",
         "bearer S3CRET", "Bearer s3cre", "Bearer", "Token s3cret"]  # fmt: skip
#: The scheme in any case (RFC 7235 §2.1), and one or more spaces before the token.
RIGHT = ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "BeArEr s3cret", "Bearer   s3cret"]


def test_over_tcp_with_a_token_only_the_bearer_gets_in(short_dir: Path) -> None:
    site = Site(short_dir, token="s3cret")
    try:
        for auth in WRONG:
            header = f"Authorization: {auth}\r\n" if auth else ""
            answer = site.send(
                site.tcp, control_request("POST", "/fakedriver/reset", b"{}", JSON + header)
            )
            assert answer.status == 401, auth
        assert site.unchanged()
        for count, auth in enumerate(RIGHT, 1):
            good = control_request(
                "POST", "/fakedriver/faults", HANG, JSON + f"Authorization: {auth}\r\n"
            )
            assert site.send(site.tcp, good).status == 200, auth
            assert len(site.fake.faults.rules) == count
    finally:
        site.close()


# -- the plugin protocol from a browser ------------------------------------------------------
CSRF = {"NetworkID": "csrf-net", "Options": {}, "IPv4Data": [], "IPv6Data": []}
#: What Chromium sends for ``fetch(url, {method: "POST", mode: "no-cors", body})`` from a
#: page of another site: every header, in its order.
CHROMIUM_NO_CORS = (
    "Connection: keep-alive\r\n"
    'sec-ch-ua-platform: "Linux"\r\n'
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36\r\n"
    'sec-ch-ua: "Chromium";v="126", "Not.A/Brand";v="24"\r\n'
    "Content-Type: text/plain;charset=UTF-8\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "Accept: */*\r\n"
    "Origin: http://evil.example\r\n"
    "Sec-Fetch-Site: cross-site\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Dest: empty\r\n"
    "Referer: http://evil.example/\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
)
FROM_A_PAGE = {
    "simple text/plain POST": (
        "Origin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\nContent-Type: text/plain\r\n"
    ),
    "no-cors fetch": CHROMIUM_NO_CORS,
    "Origin alone": "Origin: null\r\n",
    "Sec-Fetch-Mode alone": "Sec-Fetch-Mode: navigate\r\n",
    "Sec-Fetch-Dest alone": "sec-fetch-dest: document\r\n",
}


def _from_a_page(method: str, body: Any, headers: str) -> bytes:
    data = json.dumps(body).encode()
    return raw_request(
        "POST", f"/{method}", data, f"Host: 127.0.0.1\r\n{headers}Content-Length: {len(data)}\r\n"
    ).replace(b"Host: \r\n", b"", 1)


@pytest.mark.parametrize("headers", FROM_A_PAGE.values(), ids=FROM_A_PAGE.keys())
@pytest.mark.parametrize(
    ("method", "body", "key"),
    [
        ("NetworkDriver.CreateNetwork", CSRF, "Err"),
        ("IpamDriver.RequestPool", {"AddressSpace": "", "Pool": "10.99.0.0/16"}, "Error"),
    ],
    ids=["network", "ipam"],
)
def test_a_browsers_plugin_call_over_tcp_is_refused_403_in_its_dialect(
    site: Site, headers: str, method: str, body: Any, key: str
) -> None:
    """A page the user opens can POST to loopback TCP; with ``--links veth`` that would be
    a root process making interfaces. dockerd never sends Origin or Sec-Fetch-*."""
    calls = len(site.fake.calls)
    answer = site.send(site.tcp, _from_a_page(method, body, headers))
    assert answer.status == 403, answer.body
    assert list(answer.json) == [key] and "does not answer browsers" in answer.json[key]
    assert site.unchanged() and site.fake.state.pools == {}
    assert len(site.fake.calls) == calls  # served nothing, not even journaled


def test_dockerds_own_request_bytes_still_pass_over_tcp(site: Site) -> None:
    from support.serve_env import dockerd_request

    answer = site.send(site.tcp, dockerd_request("NetworkDriver.CreateNetwork", CSRF))
    assert answer.status == 200, answer.body
    assert "csrf-net" in site.fake.state.networks


def test_a_browsers_request_is_logged_as_refused(short_dir: Path) -> None:
    log = io.StringIO()
    server = PluginServer(FakeNetDriver(), tcp=("127.0.0.1", 0), log=log)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = ("127.0.0.1", server.listener.getsockname()[1])
        data = _from_a_page("NetworkDriver.CreateNetwork", CSRF, CHROMIUM_NO_CORS)
        assert parse(exchange(address, data.replace(b"keep-alive", b"close"))).status == 403
    finally:
        server.close()
        thread.join(5)
    assert "refused a request: 403 POST /NetworkDriver.CreateNetwork" in log.getvalue()
    assert "(the request carries Origin)" in log.getvalue()


NOT_NUMBERS = {
    "NaN seconds": b'{"method": "Join", "kind": "latency", "seconds": NaN}',
    "Infinity seconds": b'{"method": "Join", "kind": "latency", "seconds": Infinity}',
    "1e308 seconds": b'{"method": "Join", "kind": "latency", "seconds": 1e308}',
    "-Infinity probability": b'{"method": "Join", "kind": "error", "probability": -Infinity}',
    "NaN in match": b'{"method": "Join", "kind": "error", "match": {"EndpointID": NaN}}',
}


@pytest.mark.parametrize("body", NOT_NUMBERS.values(), ids=NOT_NUMBERS.keys())
def test_a_fault_rule_with_a_number_that_is_not_finite_is_400(site: Site, body: bytes) -> None:
    answer = site.send(site.path, control_request("POST", "/fakedriver/faults", body, JSON))
    assert answer.status == 400 and "bad control request" in answer.json["Err"]
    assert site.unchanged()


def test_a_scenario_file_with_an_infinite_latency_is_refused(short_dir: Path) -> None:
    scenario = short_dir / "inf.toml"
    scenario.write_text('[[fault]]\nmethod = "Join"\nkind = "latency"\nseconds = inf\n')
    with pytest.raises(ValueError, match="seconds must be from 0"):
        FakeNetDriver().faults.load(str(scenario))


@pytest.mark.parametrize(
    ("method", "key"),
    [("NetworkDriver.CreateNetwork", "Err"), ("IpamDriver.RequestPool", "Error")],
)
def test_nan_in_a_plugin_call_is_400(site: Site, method: str, key: str) -> None:
    body = b'{"NetworkID": "' + b"c" * 64 + b'", "Options": {"x": NaN}, "AddressSpace": NaN}'
    answer = site.send(site.path, raw_request("POST", f"/{method}", body))
    assert answer.status == 400 and "NaN is not a JSON value" in answer.json[key]
    assert site.unchanged()
    json.dumps([c.request for c in site.fake.calls], allow_nan=False)  # the journal is JSON


# -- a journal that grows --------------------------------------------------------------------
def test_a_bounded_journal_keeps_absolute_indexes_and_says_what_was_evicted(
    short_dir: Path,
) -> None:
    site = Site(short_dir, journal_size=3)  # as serve --journal-size 3 makes it
    try:  # call 0 made the site's network
        for _ in range(5):
            assert site.send(site.path, call("Plugin.Activate")).status == 200
        got = site.send(site.path, control_request("GET", "/fakedriver/calls?since=0")).json
        assert [c["index"] for c in got["calls"]] == [3, 4, 5]
        assert (got["first"], got["next"], got["evicted"]) == (3, 6, 3)
        got = site.send(site.path, control_request("GET", "/fakedriver/calls?since=5")).json
        assert [c["index"] for c in got["calls"]] == [5] and got["evicted"] == 0
    finally:
        site.close()


def test_a_large_refused_body_is_cut_down_in_a_bounded_journal(short_dir: Path) -> None:
    site = Site(short_dir, journal_size=10)
    try:
        big = {"NetworkID": "d" * 64, "EndpointID": "e" * 64, "Options": {"x": "y" * 500_000}}
        raw = json.dumps(big).encode()
        answer = site.send(site.path, raw_request("POST", "/NetworkDriver.CreateEndpoint", raw))
        assert "not found" in answer.json["Err"]  # no such network: refused
        entry = site.fake.calls[-1]
        assert len(json.dumps(entry.request)) < 5000
        assert entry.request is not None and entry.request["fakedriver.truncated"]
    finally:
        site.close()


def test_serve_journal_size_bounds_the_served_journal(short_dir: Path) -> None:
    path = str(short_dir / "p.sock")
    served = Served(short_dir, "--socket", path, "--journal-size", "2").wait_ready()
    try:
        for _ in range(4):
            assert (
                parse(
                    exchange(
                        path,
                        raw_request("POST", "/Plugin.Activate", headers=("Connection: close\r\n")),
                    )
                ).status
                == 200
            )
        with connect(path) as sock:
            sock.sendall(control_request("GET", "/fakedriver/calls"))
            got = read_one(sock).json
        assert [c["index"] for c in got["calls"]] == [2, 3] and got["evicted"] == 2
    finally:
        assert served.stop() == 0


def test_serve_journal_bytes_bounds_the_journal_and_cuts_accepted_bodies(short_dir: Path) -> None:
    """Accepted calls kept their whole request: 300 of 900 KB held 266 MB."""
    path = str(short_dir / "p.sock")
    args = ("--socket", path, "--journal-bytes", "20000", "--max-body", "2000000")
    served = Served(short_dir, *args).wait_ready()
    try:
        with connect(path) as sock:
            for i in range(8):
                big = {"NetworkID": f"{i:064x}", "Options": {"x": "y" * 900_000}, "IPv4Data": []}
                body = json.dumps(big).encode()
                sock.sendall(raw_request("POST", "/NetworkDriver.CreateNetwork", body))
                assert read_one(sock).status == 200
            sock.sendall(control_request("GET", "/fakedriver/calls"))
            got = read_one(sock).json
        held = got["calls"]
        assert got["first"] > 0 and [c["index"] for c in held] == list(range(got["first"], 8))
        assert all(c["error"] is None and "fakedriver.truncated" in c["request"] for c in held)
        assert len(json.dumps(held)) <= 20000
    finally:
        assert served.stop() == 0


# -- files and signals ---------------------------------------------------------------------
def test_the_socket_is_never_open_to_others_even_under_umask_0(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What bind() leaves, before the chmod, is what others could connect to meanwhile."""
    seen: list[int] = []
    chmod = os.chmod

    def spy(path: Any, mode: int, **kw: Any) -> None:
        if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
            seen.append(stat.S_IMODE(os.lstat(path).st_mode))
        chmod(path, mode, **kw)

    monkeypatch.setattr(os, "chmod", spy)
    old = os.umask(0)
    try:
        server = PluginServer(FakeNetDriver(), socket_path=str(short_dir / "p.sock"))
    finally:
        os.umask(old)
    server.close()
    assert seen and all(mode & 0o077 == 0 for mode in seen), [oct(m) for m in seen]


def test_the_spec_file_is_not_written_through_a_planted_symlink(short_dir: Path) -> None:
    victim = short_dir / "victim"
    victim.write_text("precious\n")
    (short_dir / "fake.spec.tmp").symlink_to(victim)
    spec = short_dir / "fake.spec"
    server = PluginServer(FakeNetDriver(), tcp=("127.0.0.1", 0), spec=str(spec))
    try:
        assert victim.read_text() == "precious\n"
        assert not spec.is_symlink() and spec.read_text() == server.address + "\n"
        assert stat.S_IMODE(spec.stat().st_mode) == 0o644
        assert sorted(p.name for p in short_dir.iterdir()) == [
            "fake.spec",
            "fake.spec.tmp",
            "victim",
        ]
    finally:
        server.close()


@pytest.mark.parametrize("name", ["../x", "/etc/x", "", "a\nb", ".hidden", "a/b", "-x"])
def test_a_plugin_name_that_is_not_one_path_component_is_refused(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", f"--name={name}", "--socket", "/nonexistent/x.sock"])
    assert exited.value.code == 2
    assert "is not a plugin name" in capsys.readouterr().err


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_sighup_shuts_down_as_cleanly_as_sigterm(short_dir: Path, tcp: bool) -> None:
    path, spec = short_dir / "p.sock", short_dir / "fake.spec"
    where = (
        ["--tcp", "127.0.0.1:0", "--spec-dir", str(short_dir)] if tcp else ["--socket", str(path)]
    )
    served = Served(short_dir, *where).wait_ready()
    left = spec if tcp else path
    assert left.exists()
    assert served.stop(signal.SIGHUP) == 0, served.stderr()
    assert not left.exists() and "Traceback" not in served.stderr()


def test_a_non_loopback_address_is_warned_about(short_dir: Path) -> None:
    served = Served(
        short_dir, "--tcp", "0.0.0.0:0", "--spec-dir", str(short_dir), "--no-control"
    ).wait_ready()
    try:
        assert "warning: serving the plugin protocol on 0.0.0.0" in served.stderr()
    finally:
        served.stop()
    quiet = Served(short_dir, "--tcp", "127.0.0.1:0", "--spec-dir", str(short_dir)).wait_ready()
    try:
        assert "warning" not in quiet.stderr()
        assert "not served over TCP without a control token" in quiet.stderr()
    finally:
        quiet.stop()


NOBODY = nobody_command()
needs_nobody = pytest.mark.skipif(
    NOBODY is None,
    reason="needs root and /usr/bin/python3 of this Python's version, to run as nobody",
)


@needs_nobody
def test_another_users_socket_that_cannot_be_probed_is_left_alone(short_dir: Path) -> None:
    """Root's live socket, mode 0600, in a folder anyone may write (sticky): nobody's server may
    not connect to it (EACCES), so it cannot tell it is live, and must not remove it."""
    assert NOBODY is not None
    short_dir.chmod(0o1777)  # as /tmp: anyone may make a file there, not remove one
    path = short_dir / "p.sock"
    owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    owner.bind(str(path))
    owner.listen(1)
    path.chmod(0o600)
    try:
        done = subprocess.run(
            [*NOBODY, "serve", "--socket", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            user=65534,
            group=65534,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "cannot be probed (Permission denied); not removing it" in done.stderr
        assert path.exists() and stat.S_ISSOCK(path.lstat().st_mode)
        with connect(str(path)) as sock:  # still root's, still live
            assert sock.getpeername() == str(path)
    finally:
        owner.close()


@needs_nobody
def test_a_non_root_name_run_says_it_needs_root(short_dir: Path) -> None:
    assert NOBODY is not None
    done = subprocess.run(
        [*NOBODY, "serve", "--name", "fd-hardening-x"],
        capture_output=True,
        text=True,
        timeout=30,
        user=65534,
        group=65534,
        cwd="/tmp",
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "fakedriver: needs root for /run/docker/plugins; use --socket PATH"
    )


def _hung(path: str) -> bool:
    with connect(path) as sock:
        sock.sendall(control_request("GET", "/fakedriver/faults"))
        return bool(read_one(sock).json["faults"][0]["fired"])


def test_a_hung_call_does_not_keep_the_server_from_stopping(short_dir: Path) -> None:
    """SIGHUP with a call hanging: the server still exits, cleanly, within the wait."""
    path = str(short_dir / "p.sock")
    served = Served(short_dir, "--socket", path).wait_ready()
    with connect(path) as sock:
        sock.sendall(control_request("POST", "/fakedriver/faults", HANG, JSON))
        assert read_one(sock).status == 200
        sock.sendall(call("Plugin.Activate"))
        assert eventually(lambda: _hung(path), 5.0)
        assert served.stop(signal.SIGHUP) == 0


# -- stopping removes only what is still its own (issue 17) ------------------------------------
def test_stop_leaves_a_socket_another_server_made_at_the_same_path(short_dir: Path) -> None:
    path = str(short_dir / "p.sock")
    first = PluginServer(FakeNetDriver(), socket_path=path)
    os.unlink(path)  # someone removes it, and another server starts on the same path
    second = PluginServer(FakeNetDriver(), socket_path=path)
    accepting = threading.Thread(target=second.serve_forever, daemon=True)
    accepting.start()
    try:
        first.close()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        with connect(path) as sock:  # still the second server's, still served
            sock.sendall(call("Plugin.Activate"))
            assert read_one(sock).status == 200
    finally:
        second.close()
    assert not os.path.lexists(path)


def test_stop_leaves_a_spec_file_another_server_wrote_at_the_same_path(short_dir: Path) -> None:
    spec = short_dir / "fake.spec"
    first = PluginServer(FakeNetDriver(), tcp=("127.0.0.1", 0), spec=str(spec))
    spec.unlink()
    second = PluginServer(FakeNetDriver(), tcp=("127.0.0.1", 0), spec=str(spec))
    try:
        first.close()
        assert spec.read_text() == second.address + "\n"
    finally:
        second.close()
    assert not spec.exists()


# -- --tcp: one parser, and a bind that fails says why (issue 17) -------------------------------
TCP_ADDRESSES = {
    "127.0.0.1:0": ("127.0.0.1", 0),
    ":9000": ("127.0.0.1", 9000),
    "0.0.0.0:65535": ("0.0.0.0", 65535),
    "localhost:80": ("localhost", 80),
    "[::1]:0": ("::1", 0),
    "[::]:7": ("::", 7),
}
BAD_TCP = {
    "abc": "is not HOST:PORT",
    "127.0.0.1": "is not HOST:PORT",
    "127.0.0.1:99999": "the port must be 0 to 65535",
    ":-1": "the port must be 0 to 65535",
    "127.0.0.1:": "the port must be 0 to 65535",
    "127.0.0.1:+80": "the port must be 0 to 65535",
    "127.0.0.1: 80": "the port must be 0 to 65535",
    "127.0.0.1:\u0664\u0665": "the port must be 0 to 65535",  # Arabic-Indic digits
    "::1:0": "write an IPv6 address in brackets, as [::1]:0",
    "[::1]": "write an IPv6 address as [ADDRESS]:PORT",
    "[::1]80": "write an IPv6 address as [ADDRESS]:PORT",
    "[::1:0": "write an IPv6 address as [ADDRESS]:PORT",
    "[127.0.0.1]:0": "in brackets is not an IPv6 address",
    "[]:0": "in brackets is not an IPv6 address",
}


@pytest.mark.parametrize("value", TCP_ADDRESSES)
def test_a_tcp_address_is_parsed(value: str) -> None:
    assert tcp_address(value) == TCP_ADDRESSES[value]


@pytest.mark.parametrize("value", BAD_TCP)
def test_a_bad_tcp_address_is_a_usage_error_exit_2(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:  # parsed only: a bad parser starts no server
        parser().parse_args(["serve", "--tcp", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --tcp: {value!r}" in err and BAD_TCP[value] in err, err
    assert "Traceback" not in err


def test_a_tcp_address_that_cannot_be_listened_on_is_one_line_exit_2(
    short_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    cases = {
        "192.0.2.1:0": "cannot listen on 192.0.2.1:0: Cannot assign requested address",
        f"127.0.0.1:{port}": f"cannot listen on 127.0.0.1:{port}: Address already in use",
    }
    try:
        for value, why in cases.items():
            code = main(["serve", "--tcp", value, "--spec-dir", str(short_dir), "--quiet"])
            assert (code, capsys.readouterr().err) == (2, f"fakedriver: {why}\n")
            assert list(short_dir.iterdir()) == []  # no spec file written
    finally:
        taken.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_a_bracketed_ipv6_tcp_address_is_served_and_written_to_the_spec(short_dir: Path) -> None:
    served = Served(short_dir, "--tcp", "[::1]:0", "--spec-dir", str(short_dir)).wait_ready()
    try:
        spec = (short_dir / "fake.spec").read_text().strip()
        host, _, port = spec.removeprefix("tcp://").rpartition(":")
        assert host == "[::1]" and f"serving on {spec}" in served.stderr()
        with socket.create_connection(("::1", int(port)), timeout=5) as sock:
            sock.sendall(call("Plugin.Activate"))
            assert read_one(sock).status == 200
    finally:
        assert served.stop() == 0
    assert not (short_dir / "fake.spec").exists()


# -- the connection cap: idle connections make room (issue 17) ---------------------------------
@pytest.fixture
def capped(short_dir: Path) -> Iterator[tuple[PluginServer, str, io.StringIO]]:
    """A server of at most three connections, idle for as long as they like."""
    fake, log = FakeNetDriver(), io.StringIO()
    path = str(short_dir / "p.sock")
    limits = Limits(idle_timeout=300.0, max_connections=3)
    server = PluginServer(fake, socket_path=path, limits=limits, log=log)
    accepting = threading.Thread(target=server.serve_forever, daemon=True)
    accepting.start()
    try:
        yield server, path, log
    finally:
        fake.release_rules()
        server.close()


def _never_called(request: Request, gone: Callable[[], bool]) -> Answer:
    raise AssertionError("no request is read here")


def test_a_connection_is_idle_from_its_accept_not_from_when_its_thread_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection is idle from its accept; its thread, started later (much later on a
    loaded machine), begins the wait it is already in. It restarted the clock: a silent
    connection whose thread ran after another's call seemed idle for less than that
    other, which the cap then closed in its place."""
    clock = iter(range(100, 200))
    monkeypatch.setattr(connection_module.time, "monotonic", lambda: float(next(clock)))
    ours, theirs = socket.socketpair()
    with ours, theirs:
        accepted = Connection(ours, _never_called, Limits(), print)
        since = accepted.idle_since
        accepted._idle()  # what its thread does first, before it reads
        assert accepted.idle_since == since == 100.0


def test_at_the_cap_the_connection_idle_the_longest_makes_room(
    capped: tuple[PluginServer, str, io.StringIO],
) -> None:
    """Idle connections (after a call, or before any) cannot lock a client out: each
    newcomer closes the one that has waited the longest for its next request."""
    server, path, log = capped
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(connect(path))
        first.sendall(call("Plugin.Activate"))
        assert read_one(first).status == 200  # idle from here on
        silent = stack.enter_context(connect(path))  # never sends anything
        assert eventually(lambda: server.connections == 2, 5.0)
        third = stack.enter_context(connect(path))
        third.sendall(call("Plugin.Activate"))
        assert read_one(third).status == 200
        for evicted in (first, silent):
            newcomer = stack.enter_context(connect(path))
            newcomer.sendall(call("NetworkDriver.GetCapabilities"))
            assert read_one(newcomer).status == 200
            assert until_eof(evicted) == b""  # closed, without a word
            assert server.connections == 3
        third.sendall(call("Plugin.Activate"))  # the newest of the old ones is still served
        assert read_one(third).status == 200
    line = "3 connections open (the cap); closed the one idle the longest"
    assert eventually(lambda: log.getvalue().count(line) == 2, 5.0), log.getvalue()


def test_at_the_cap_with_every_connection_in_a_call_a_newcomer_gets_503(
    capped: tuple[PluginServer, str, io.StringIO],
) -> None:
    server, path, log = capped
    rule = server.app.hold("Plugin.Activate")
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(connect(path)).sendall(call("Plugin.Activate"))
        assert rule.wait_held(3)
        raw = exchange(path, call("Plugin.Activate"))
        assert parse(raw).status == 503 and "too many connections" in parse(raw).json["Err"]
        assert "each in a request; turned one away with 503" in eventually(log.getvalue)


@pytest.mark.skipif(
    int(Path("/proc/sys/net/core/somaxconn").read_text()) < 300,
    reason="the kernel caps the listen backlog below 300",
)
def test_the_listen_backlog_holds_a_burst_as_large_as_the_connection_cap(
    short_dir: Path,
) -> None:
    """Go connects without blocking: a burst beyond the backlog fails at once (EAGAIN),
    so the backlog is as large as --max-connections."""
    path = str(short_dir / "p.sock")
    server = PluginServer(FakeNetDriver(), socket_path=path, limits=Limits(max_connections=300))
    pending: list[socket.socket] = []
    try:  # not accepting yet: every connection waits in the backlog
        for i in range(300):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            pending.append(sock)
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError:
                pytest.fail(f"connection {i + 1} of a burst of 300 found the backlog full")
    finally:
        for sock in pending:
            sock.close()
        server.close()
