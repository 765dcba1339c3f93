"""The socket server's event loop: the calls that cannot wait are served on the loop's
own thread, one connection after the other; a connection whose call may wait, or whose
client does not read its answer, goes on in a thread of its own while the loop serves
the others (see ``fakedriver/server/loop.py``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import pytest
from support.rawhttp import call, connect, eventually, read_one, request, until_eof
from support.serve_env import running

from fakedriver import FakeNetDriver
from fakedriver.server.connection import Limits
from fakedriver.server.control import control
from fakedriver.server.server import PluginServer

pytestmark = pytest.mark.socket  # the socket tier: a real unix socket

WAIT = 5.0
ACTIVATE = call("Plugin.Activate")


@dataclass
class Site:
    fake: FakeNetDriver
    server: PluginServer
    path: str
    loop: threading.Thread


@pytest.fixture
def site(short_dir: Path) -> Iterator[Site]:
    yield from _site(short_dir, Limits())


def _site(folder: Path, limits: Limits) -> Iterator[Site]:
    fake = FakeNetDriver()
    path = str(folder / "l.sock")
    server = PluginServer(fake, socket_path=path, limits=limits, control=partial(control, fake))
    with running(server, WAIT) as loop:
        try:
            yield Site(fake, server, path, loop)
        finally:
            fake.release_rules()


def _serving_threads(fake: FakeNetDriver) -> list[threading.Thread]:
    """Records the thread that serves each call (a listener runs inside the call)."""
    seen: list[threading.Thread] = []
    fake.listeners.append(lambda entry: seen.append(threading.current_thread()))
    return seen


def test_calls_that_cannot_wait_are_served_on_the_loops_thread_whatever_the_connection(
    site: Site,
) -> None:
    seen = _serving_threads(site.fake)
    threads = threading.active_count()
    with ExitStack() as stack:
        socks = [stack.enter_context(connect(site.path, WAIT)) for _ in range(10)]
        for _ in range(3):
            for sock in socks:
                sock.sendall(ACTIVATE)
            assert all(read_one(sock).status == 200 for sock in socks)
        assert threading.active_count() == threads  # no thread per connection
    assert seen == [site.loop] * 30


def test_a_call_a_rule_may_hold_is_served_in_a_thread_while_the_loop_serves_the_others(
    site: Site,
) -> None:
    seen = _serving_threads(site.fake)
    threads = threading.active_count()
    rule = site.fake.faults.add(method="Plugin.Activate", kind="hold", times=1)
    with connect(site.path, WAIT) as held, connect(site.path, WAIT) as other:
        held.sendall(ACTIVATE)
        assert rule.wait_held(1, WAIT)
        other.sendall(call("NetworkDriver.GetCapabilities"))  # served while the other waits
        assert read_one(other).status == 200
        rule.release()
        assert read_one(held).status == 200
        # the rule is spent: the held connection's next call is the loop's again
        held.sendall(call("NetworkDriver.GetCapabilities"))
        assert read_one(held).status == 200
        assert eventually(lambda: threading.active_count() == threads, WAIT)
    assert [m.method for m in site.fake.calls] == [
        "NetworkDriver.GetCapabilities",
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
    ]
    assert seen[0] is site.loop and seen[1] is not site.loop and seen[2] is site.loop


def test_a_client_that_does_not_read_its_answer_holds_up_no_other(site: Site) -> None:
    for _ in range(2000):  # a journal whose JSON is larger than a socket's buffers
        site.fake.respond("/Plugin.Activate", b"")
    with connect(site.path, WAIT) as slow, connect(site.path, WAIT) as other:
        slow.sendall(request("GET", "/fakedriver/calls"))
        time.sleep(0.2)  # the loop writes what the socket takes, then a thread waits
        other.sendall(ACTIVATE)
        assert read_one(other).status == 200
        answer = read_one(slow)
        assert answer.status == 200 and len(json.loads(answer.body)["calls"]) == 2000


def test_a_request_that_comes_in_pieces_is_served_whole(site: Site) -> None:
    body = json.dumps({"NetworkID": "n" * 64}).encode()
    whole = request("POST", "/NetworkDriver.DeleteNetwork", body)
    with connect(site.path, WAIT) as sock:
        for piece in (whole[:10], whole[10:-5], whole[-5:]):
            sock.sendall(piece)
            time.sleep(0.05)
        answer = read_one(sock)
    assert answer.status == 200  # DeleteNetwork of an unknown network: answered as dockerd wants
    assert site.fake.calls[-1].request == {"NetworkID": "n" * 64}


def test_a_client_waiting_for_100_continue_gets_it_then_its_answer(site: Site) -> None:
    body = b"{}"
    head = f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"
    with connect(site.path, WAIT) as sock:
        sock.sendall(request("POST", "/Plugin.Activate", headers=head))
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert read_one(sock).status == 200


def test_pipelined_requests_are_answered_in_order(site: Site) -> None:
    with connect(site.path, WAIT) as sock:
        sock.sendall(ACTIVATE + call("NetworkDriver.GetCapabilities") + ACTIVATE)
        bodies = _answers(sock.makefile("rb"), 3)
    assert "Scope" in json.loads(bodies[1]) and "Implements" in json.loads(bodies[2])
    assert [c.method for c in site.fake.calls] == [
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "Plugin.Activate",
    ]


def _answers(stream: BinaryIO, count: int) -> list[bytes]:
    """The bodies of ``count`` answers of status 200, read off one stream in order."""
    bodies = []
    for _ in range(count):
        assert stream.readline().startswith(b"HTTP/1.1 200 ")
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            length = int(value) if name.lower() == b"content-length" else length
        bodies.append(stream.read(length))
    return bodies


def test_the_loop_closes_an_idle_connection_and_answers_a_slow_request_408(
    short_dir: Path,
) -> None:
    limits = Limits(read_timeout=0.3, idle_timeout=0.6)
    for site in _site(short_dir, limits):
        with connect(site.path, WAIT) as idle, connect(site.path, WAIT) as slow:
            started = time.monotonic()
            slow.sendall(ACTIVATE[:10])  # and never the rest
            assert b" 408 " in until_eof(slow, WAIT).partition(b"\r\n")[0]
            assert until_eof(idle, WAIT) == b""
            assert time.monotonic() - started >= limits.idle_timeout - 0.1
        assert eventually(lambda site=site: site.server.connections == 0, WAIT)


def test_close_ends_the_loops_connections_and_serves_nothing_after(site: Site) -> None:
    with connect(site.path, WAIT) as sock:
        sock.sendall(ACTIVATE)
        assert read_one(sock).status == 200
        site.server.close()
        assert until_eof(sock, WAIT) == b""
    assert len(site.fake.calls) == 1 and site.server.connections == 0


def test_respond_now_leaves_a_call_a_timed_rule_may_hold_untouched() -> None:
    fake = FakeNetDriver()
    rule = fake.faults.add(method="Plugin.Activate", kind="latency", seconds=5.0)
    assert fake.respond_now("/Plugin.Activate", b"") is None
    assert len(fake.calls) == 0 and rule.seen == 0
    reply = fake.respond_now("/NetworkDriver.GetCapabilities", b"")  # no rule on it
    assert reply is not None and reply.status == 200 and len(fake.calls) == 1
    fake.faults.clear()
    fake.faults.add(method="Plugin.Activate", kind="error", times=1)
    reply = fake.respond_now("/Plugin.Activate", b"")
    assert reply is not None and b"injected fault" in reply.body and len(fake.calls) == 2
    reply = fake.respond_now("/Plugin.Activate", b"")
    assert reply is not None and b"Err" not in reply.body


def test_a_rule_added_from_another_thread_while_the_loop_serves_is_honoured(site: Site) -> None:
    """The check that a call cannot wait and the call itself are one step: a hold added
    between two calls holds the second, in a thread, never the loop."""
    with connect(site.path, WAIT) as sock, connect(site.path, WAIT) as other:
        sock.sendall(ACTIVATE)
        assert read_one(sock).status == 200
        rule = site.fake.faults.add(method="Plugin.Activate", kind="hold", times=1)
        sock.sendall(ACTIVATE)
        assert rule.wait_held(1, WAIT)
        other.sendall(ACTIVATE)
        assert read_one(other).status == 200  # the loop is not the one held
        rule.release()
        assert read_one(sock).status == 200


def test_a_timed_rule_on_one_method_leaves_the_others_on_the_loop(site: Site) -> None:
    seen = _serving_threads(site.fake)
    site.fake.faults.add(method="NetworkDriver.Join", kind="latency", seconds=0.05)
    join = {"NetworkID": "n" * 64, "EndpointID": "e" * 64, "SandboxKey": "/x", "Options": {}}
    with connect(site.path, WAIT) as sock:
        sock.sendall(ACTIVATE)
        assert read_one(sock).status == 200
        sock.sendall(call("NetworkDriver.Join", join))  # refused (no such endpoint), late
        assert read_one(sock).status != 0
        sock.sendall(ACTIVATE)
        assert read_one(sock).status == 200
    assert seen[0] is site.loop and seen[1] is not site.loop and seen[2] is site.loop
