"""The plugin socket under attack, at the HTTP layer (issue 9): framing a smuggler would
try, floods, slow clients, too many connections, running out of file descriptors.

Each test talks raw bytes to a served fake (unix socket or loopback TCP, every socket with
a timeout, every wait bounded) and checks three things: a real HTTP/1.1 status line with a
JSON body in the protocol's dialect, a server still serving, and a state (and journal)
that the attack did not change.
"""

from __future__ import annotations

import io
import json
import os
import resource
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.rawhttp import (
    Served,
    call,
    connect,
    eventually,
    exchange,
    parse,
    read_one,
    readable,
    request,
    until_eof,
)
from support.serve_env import running

from fakedriver import FakeNetDriver
from fakedriver.server.connection import Limits
from fakedriver.server.control import control
from fakedriver.server.log import LineWriter
from fakedriver.server.server import PluginServer

pytestmark = pytest.mark.socket  # the socket tier: the socket server's limits

NET = "a" * 64
CREATE = json.dumps({"NetworkID": NET, "Options": {}, "IPv4Data": [], "IPv6Data": []}).encode()
LIMITS = Limits(
    max_body=4096, max_header=4096, read_timeout=0.5, idle_timeout=1.5, max_connections=8
)


@dataclass
class Site:
    fake: FakeNetDriver
    path: str
    log: io.StringIO
    server: PluginServer

    def snapshot(self) -> tuple[dict[str, Any], list[str]]:
        return self.fake.snapshot(), list(self.fake.calls.methods)

    def assert_serving(self) -> None:
        """A fresh connection still gets a plugin call answered."""
        with connect(self.path) as sock:
            sock.sendall(call("Plugin.Activate"))
            answer = read_one(sock)
        assert answer.status == 200 and answer.json == {
            "Implements": ["NetworkDriver", "IpamDriver"]
        }


@pytest.fixture
def site(short_dir: Path) -> Iterator[Site]:
    fake, log = FakeNetDriver(), io.StringIO()
    path = str(short_dir / "p.sock")
    server = PluginServer(
        fake, socket_path=path, control=lambda *a: control(fake, *a), limits=LIMITS, log=log
    )
    with running(server):
        try:
            yield Site(fake, path, log, server)
        finally:
            fake.release_rules()


def refused(raw: bytes, status: int, key: str = "Err") -> str:
    """``raw`` is one whole response with ``status``, a JSON body ``{key: message}`` in the
    protocol's dialect, and ``Connection: close``; returns the message."""
    answer = parse(raw)
    assert answer.status == status, raw
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "application/vnd.docker.plugins.v1.2+json"
    assert list(answer.json) == [key], answer.json
    assert raw.endswith(answer.body), "bytes after the refusal"
    return str(answer.json[key])


def post(target: str, headers: str, body: bytes = CREATE) -> bytes:
    return request("POST", target, body, headers)


CREATE_PATH = "/NetworkDriver.CreateNetwork"
SMUGGLED = call("NetworkDriver.CreateNetwork", json.loads(CREATE))
FRAMING = {
    # Content-Length that is not a decimal number of bytes
    "length abc": (post(CREATE_PATH, "Content-Length: abc\r\n"), 400),
    "length 0x10": (post(CREATE_PATH, "Content-Length: 0x10\r\n"), 400),
    "length -100": (post(CREATE_PATH, "Content-Length: -100\r\n"), 400),
    "length -1": (post(CREATE_PATH, "Content-Length: -1\r\n"), 400),
    "length 1_6": (post(CREATE_PATH, "Content-Length: 1_6\r\n"), 400),
    "length +16": (post(CREATE_PATH, "Content-Length: +16\r\n"), 400),
    "two lengths": (
        post(CREATE_PATH, f"Content-Length: 5\r\nContent-Length: {len(CREATE)}\r\n"),
        400,
    ),
    # a Transfer-Encoding h11 cannot decode, hiding a second request
    "gzip, chunked": (
        post(CREATE_PATH, "Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n" + SMUGGLED),
        501,
    ),
    # a chunk whose CRLF is two other bytes, hiding a second request (CVE-2025-43859:
    # h11 before 0.16 took any two bytes there; a proxy that reads on to the next CRLF
    # would see one request where the server served two)
    "chunk without its CRLF": (
        post(
            "/NetworkDriver.GetCapabilities",
            "Transfer-Encoding: chunked\r\n",
            b"2\r\n{}XX0\r\n\r\n" + SMUGGLED,
        ),
        400,
    ),
    "TE and CL": (
        post(CREATE_PATH, "Transfer-Encoding: identity\r\nContent-Length: 5\r\n", SMUGGLED),
        501,
    ),
    # request lines and versions
    "garbage line": (b"GARBAGE\r\n\r\n", 400),
    "HTTP/0.9": (b"POST /NetworkDriver.CreateNetwork\r\n\r\n", 400),
    "HTTP/2.0": (request("POST", CREATE_PATH, CREATE, version="2.0"), 400),
    "HTTP/1.1 trailing": (b"POST / HTTP/1.1 x\r\nHost: \r\n\r\n", 400),
    "no Host": (b"POST /Plugin.Activate HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400),
    "header line without colon": (post(CREATE_PATH, "Content-Length 5\r\n"), 400),
    # floods
    "header flood": (post(CREATE_PATH, "".join(f"X-{i}: {'y' * 64}\r\n" for i in range(200))), 431),
    "body over the limit": (post(CREATE_PATH, "Content-Length: 100000000\r\n", b"{" * 8192), 413),
    "chunked over the limit": (
        post(
            CREATE_PATH,
            "Transfer-Encoding: chunked\r\n",
            b"1000\r\n" + b" " * 4096 + b"\r\n1000\r\n" + b" " * 4096 + b"\r\n0\r\n\r\n",
        ),
        413,
    ),
}


@pytest.mark.parametrize(("data", "status"), FRAMING.values(), ids=FRAMING.keys())
def test_bad_framing_is_refused_with_a_status_line(site: Site, data: bytes, status: int) -> None:
    before = site.snapshot()
    refused(exchange(site.path, data), status)
    assert site.snapshot() == before  # nothing served: not the body, not a smuggled request
    site.assert_serving()
    assert "fakedriver: refused a request" in eventually(site.log.getvalue)


def test_a_length_beyond_any_number_is_refused(site: Site) -> None:
    """10^20 bytes: a 400 from h11 (too many digits) or a 413 from the limit."""
    raw = exchange(site.path, post(CREATE_PATH, f"Content-Length: {10**20}\r\n"))
    assert parse(raw).status in (400, 413)
    refused(raw, parse(raw).status)
    assert site.fake.calls == []


def test_a_refusal_on_an_ipam_path_speaks_ipam(site: Site) -> None:
    raw = exchange(site.path, post("/IpamDriver.RequestPool", "Content-Length: abc\r\n"))
    assert "Content-Length" in refused(raw, 400, key="Error")


def test_a_chunked_body_is_decoded_and_served(site: Site) -> None:
    chunks = (
        b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (CREATE[:10], CREATE[10:])) + b"0\r\n\r\n"
    )
    with connect(site.path) as sock:
        sock.sendall(post(CREATE_PATH, "Transfer-Encoding: chunked\r\n", chunks))
        assert read_one(sock).json == {}
        sock.sendall(call("Plugin.Activate"))  # the same connection, in step
        assert read_one(sock).status == 200
    assert list(site.fake.state.networks) == [NET]
    assert site.fake.calls.methods == ["NetworkDriver.CreateNetwork", "Plugin.Activate"]


def test_a_body_at_the_limit_is_served(site: Site) -> None:
    body = json.dumps({"NetworkID": NET, "Options": {"pad": "x" * 3900}}).encode()
    assert len(body) <= LIMITS.max_body
    with connect(site.path) as sock:
        sock.sendall(request("POST", CREATE_PATH, body))
        assert read_one(sock).status == 200
    assert list(site.fake.state.networks) == [NET]


def test_a_huge_body_is_refused_before_it_is_read(site: Site) -> None:
    """The 413 comes back while the client is still sending: the server does not read
    (or buffer) 100 MB to refuse them."""
    with connect(site.path) as sock:
        sock.sendall(post(CREATE_PATH, "Content-Length: 100000000\r\n", b"{"))
        assert eventually(lambda: readable(sock), 2.0)
        refused(until_eof(sock), 413)


# -- slow clients -------------------------------------------------------------------------------
def test_a_request_that_stops_halfway_gets_408(site: Site) -> None:
    started = time.monotonic()
    raw = exchange(site.path, b"POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: \r\n")
    assert "not received within 0.5 s" in refused(raw, 408)
    assert time.monotonic() - started < LIMITS.read_timeout + 1.5
    site.assert_serving()


def test_a_drip_fed_request_times_out_as_a_whole(site: Site) -> None:
    """A byte every 0.1 s never lets a read time out, yet the request must be whole within
    the read timeout from its first byte."""
    data = call("NetworkDriver.CreateNetwork", json.loads(CREATE))
    started = time.monotonic()
    with connect(site.path) as sock:
        for byte in data:
            if readable(sock):
                break
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
        raw = until_eof(sock)
    refused(raw, 408)
    assert time.monotonic() - started < LIMITS.read_timeout + 1.5
    assert site.fake.calls == []


def test_an_idle_keep_alive_connection_outlives_the_read_timeout_then_closes(site: Site) -> None:
    with connect(site.path) as sock:
        sock.sendall(call("Plugin.Activate"))
        assert read_one(sock).status == 200
        time.sleep(LIMITS.read_timeout + 0.3)  # idle, not slow: still open
        sock.sendall(call("Plugin.Activate"))
        assert read_one(sock).status == 200
        started = time.monotonic()
        assert until_eof(sock, wait=LIMITS.idle_timeout + 2) == b""  # a quiet close
        assert time.monotonic() - started >= LIMITS.idle_timeout - 0.2


def test_by_default_dockerd_closes_an_idle_connection_first() -> None:
    assert Limits().idle_timeout > 90  # Go's http.Transport IdleConnTimeout
    assert Limits().read_timeout <= 60 and Limits().max_body == 1 << 20


# -- too many connections ----------------------------------------------------------------------
def test_slow_connections_beyond_the_cap_are_turned_away_then_evicted(site: Site) -> None:
    slow = [
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(LIMITS.max_connections)
    ]
    try:
        for sock in slow:
            sock.settimeout(5)
            sock.connect(site.path)
            sock.sendall(b"POST /Plugin.Activate HTTP/1.1\r\n")  # and nothing more
        cap = LIMITS.max_connections
        assert eventually(lambda: site.server.connections == cap, 3.0)
        raw = exchange(site.path, call("Plugin.Activate"))
        assert "too many connections" in refused(raw, 503)
        assert "connections open (the cap)" in eventually(site.log.getvalue)
        for sock in slow:  # each slow one is answered 408 and closed
            refused(until_eof(sock, wait=LIMITS.read_timeout + 2), 408)
    finally:
        for sock in slow:
            sock.close()
    assert eventually(lambda: _activates(site.path), 3.0)


def _activates(path: str) -> bool:
    raw = exchange(path, request("POST", "/Plugin.Activate", headers="Connection: close\r\n"))
    return parse(raw).status == 200


def test_a_held_call_blocks_no_other_call(site: Site) -> None:
    site.fake.fail("Plugin.Activate", kind="hold")
    with connect(site.path) as held:
        held.sendall(call("Plugin.Activate"))
        with connect(site.path) as other:
            other.sendall(call("NetworkDriver.GetCapabilities"))
            assert read_one(other).status == 200
        assert not readable(held)
        site.fake.release_rules()
        assert read_one(held).status == 200


def test_a_hold_on_a_descriptor_above_1024_notices_the_client_leave(site: Site) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        site.fake.fail("Plugin.Activate", kind="hold")
        with connect(site.path) as sock:
            sock.sendall(call("Plugin.Activate"))
            assert eventually(lambda: site.fake.faults.rules[0].fired, 3.0)
        ended = eventually(lambda: list(site.fake.calls), 5.0)
        assert ended and ended[0].error == "no answer: client went away"
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    site.fake.clear_rules()
    site.assert_serving()


# -- a server out of file descriptors, a stuck stderr (in a process of their own) ----------
def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_out_of_file_descriptors_the_server_backs_off_and_recovers(short_dir: Path) -> None:
    path = str(short_dir / "p.sock")

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    served = Served(short_dir, "--socket", path, "--no-control", preexec_fn=few_files)
    clients: list[socket.socket] = []
    try:
        served.wait_ready()
        for _ in range(80):  # more than the server can accept: the rest wait in the backlog
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(path)
            clients.append(sock)
        assert eventually(lambda: "backing off" in served.stderr(), 5.0), served.stderr()
        spent = _cpu_seconds(served.process.pid)
        time.sleep(1.0)
        spent = _cpu_seconds(served.process.pid) - spent
        assert spent < 0.3, f"the accept loop spun: {spent:.2f} s of CPU in 1 s"
        for sock in clients:
            sock.close()
        clients = []
        assert eventually(lambda: _activates(path), 10.0)
    finally:
        for sock in clients:
            sock.close()
        served.stop()


def test_a_stuck_stderr_delays_no_call(short_dir: Path) -> None:
    """The per-call log goes to a pipe nobody reads (64 KiB fill up after ~1,400 lines):
    every call is still answered at once."""
    path = str(short_dir / "p.sock")
    read_end, write_end = os.pipe()
    served = Served(short_dir, "--socket", path, stderr=write_end)
    os.close(write_end)
    try:
        ready = time.monotonic() + 20
        while not os.path.exists(path) and time.monotonic() < ready:
            time.sleep(0.05)
        with connect(path, timeout=5) as sock:
            for _ in range(3000):
                sock.sendall(call("NetworkDriver.GetCapabilities"))
                assert read_one(sock).status == 200
    finally:
        served.stop()
        os.close(read_end)


def test_the_log_queue_is_bounded_in_size_and_counts_what_it_drops() -> None:
    """One huge line blocks the writer on a full pipe; what follows is queued up to the
    capacity in characters (never blocking the caller), the rest dropped and counted."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    writer = LineWriter(stream, capacity=300_000)
    received = b""
    try:
        writer.write("x" * 200_000)  # more than a pipe holds: the writer thread blocks
        assert eventually(lambda: writer._queued == 0, 3.0)
        started = time.monotonic()
        for _ in range(20):
            writer.write("y" * 20_000)  # 15 fit in 300,000 characters
        assert time.monotonic() - started < 0.5
        assert writer.dropped == 5
        deadline = time.monotonic() + 5
        while received.count(b"y" * 20_000) < 15 and time.monotonic() < deadline:
            received += os.read(read_end, 1 << 20)
    finally:
        writer.close(timeout=1)
        stream.close()
        os.close(read_end)
    assert received.count(b"y" * 20_000) == 15
    assert b"fakedriver: 5 log line(s) dropped (the log stream was slow)" in received
