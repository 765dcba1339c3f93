"""``fake_netdriver_server``: one socket per session (per ``tcp`` flavour), a fresh fake
behind it per test, and nothing of one test reaching the next: no call, rule, held call or
journal entry, not even from a test that fails in the middle of a call or leaves one held.

The inner tests run in order in one pytest process and hand what they left behind (the
old fake, a held call's thread, a half-sent request) to the next through a module global.
"""

from __future__ import annotations

import socket
import threading

import pytest

import fakedriver
from fakedriver import FakeNetDriver
from fakedriver.server.server import PluginServer
from fakedriver.server.serving import ServedPool

pytestmark = pytest.mark.socket  # the socket tier: a server per session, on real sockets

pytest_plugins = ["pytester"]

INNER = """
import socket, threading
import httpx
import pytest

LEFT = {False: {}, True: {}}  # by flavour (tcp): what the last test left


def client(served, tcp):
    if tcp:
        return httpx.Client(base_url=served.tcp_url, timeout=10)
    transport = httpx.HTTPTransport(uds=served.socket_path)
    return httpx.Client(transport=transport, base_url="http://plugin", timeout=10)


def post(served, tcp):
    with client(served, tcp) as http:
        return http.post("/Plugin.Activate", content=b"{}")


def raw(served, tcp):
    if tcp:
        host, port = served.tcp_url.removeprefix("http://").rsplit(":", 1)
        return socket.create_connection((host, int(port)), timeout=10)
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(served.socket_path)
    return sock


def same_socket(served, tcp):
    left = LEFT[tcp]
    where = served.tcp_url if tcp else served.socket_path
    if "where" in left:
        assert left["where"] == where, "a socket per test, not one per session"
    left["where"] = where
    return left


def nothing_of_the_last_test(served, tcp, left):
    \"\"\"The fake is fresh: no rule, no call; a call reaches it, and it alone.\"\"\"
    fake, old = served.fake, left["fake"]
    assert fake is not old
    assert fake.faults.rules == [] and fake.calls.methods == []
    before = old.calls.methods
    answer = post(served, tcp)
    assert answer.status_code == 200, answer.text  # the last test's rules are not here
    assert fake.calls.methods == ["Plugin.Activate"]
    assert old.calls.methods == before


def leaves_a_rule_a_call_and_an_open_connection(served, tcp, left):
    served.fake.faults.add(method="Plugin.Activate", kind="error")
    kept = client(served, tcp)  # keep-alive: its connection stays open after the test
    assert kept.post("/Plugin.Activate", content=b"{}").json() == {"Err": "injected fault"}
    left.update(fake=served.fake, kept=kept)


def finds_none_of_them(served, tcp, left):
    nothing_of_the_last_test(served, tcp, left)
    kept = left.pop("kept")  # its connection was closed at teardown: it connects again
    assert kept.post("/Plugin.Activate", content=b"{}").status_code == 200
    kept.close()
    assert served.fake.calls.methods == ["Plugin.Activate"] * 2
    assert left["fake"].calls.methods == ["Plugin.Activate"]
    left["fake"] = served.fake


def leaves_a_held_call(served, tcp, left):
    rule = served.fake.hold("Plugin.Activate")
    answers = []
    thread = threading.Thread(target=lambda: answers.append(post(served, tcp)), daemon=True)
    thread.start()
    assert rule.wait_held(1, 10)
    left.update(fake=served.fake, thread=thread, answers=answers)


def gets_no_part_of_the_held_call(served, tcp, left):
    left.pop("thread").join(10)
    answers = left.pop("answers")
    assert [a.status_code for a in answers] == [200]  # released at teardown, on its fake
    assert left["fake"].calls.methods == ["Plugin.Activate"]
    nothing_of_the_last_test(served, tcp, left)
    left["fake"] = served.fake


def fails_in_the_middle_of_a_call(served, tcp, left):
    served.fake.faults.add(method="*", kind="error")
    rule = served.fake.hold("Plugin.Activate")
    thread = threading.Thread(target=lambda: post(served, tcp), daemon=True)
    thread.start()
    assert rule.wait_held(1, 10)
    sock = raw(served, tcp)  # a request half sent: the rest comes in the next test
    sock.sendall(b"POST /Plugin.Activate HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\n\\r\\n{")
    left.update(fake=served.fake, thread=thread, sock=sock)
    raise AssertionError("fails on purpose, a call held and one half sent")


def gets_no_part_of_the_failed_tests_calls(served, tcp, left):
    left.pop("thread").join(10)
    sock = left.pop("sock")
    try:
        sock.sendall(b"}")
        rest = sock.recv(65536)
    except OSError:
        rest = b""
    finally:
        sock.close()
    # closed, or refused as cut short when its test ended (by the server: no fake's call)
    status = rest.split(b"\\r\\n", 1)[0]
    assert status in (b"", b"HTTP/1.1 400 Bad Request"), rest
    assert left["fake"].calls.methods == ["Plugin.Activate"]  # the held one, on its fake
    nothing_of_the_last_test(served, tcp, left)


SEQUENCE = [
    leaves_a_rule_a_call_and_an_open_connection,
    finds_none_of_them,
    leaves_a_held_call,
    gets_no_part_of_the_held_call,
    fails_in_the_middle_of_a_call,
    gets_no_part_of_the_failed_tests_calls,
]
FLAVOURS = [False, pytest.param(True, marks=pytest.mark.fake_netdriver(tcp=True))]


@pytest.mark.parametrize("tcp", FLAVOURS, ids=["unix", "tcp"])
@pytest.mark.parametrize("step", SEQUENCE, ids=[s.__name__ for s in SEQUENCE])
def test_step(fake_netdriver_server, tcp, step):
    step(fake_netdriver_server, tcp, same_socket(fake_netdriver_server, tcp))
"""


def test_no_call_rule_held_call_or_journal_entry_reaches_the_next_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", timeout=120)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 10 and outcomes.get("failed") == 2, result.stdout.str()
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert all("fails_in_the_middle_of_a_call" in line for line in failed), failed


def _call(path: str) -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data.split(b"\r\n\r\n", 1)[1]


def test_a_pool_serves_each_fake_in_turn_on_one_socket() -> None:
    pool = ServedPool()
    try:
        with pool.serving() as first:
            assert _call(first.socket_path)[0] == 200
        with pool.serving() as second, pool.serving() as third:
            assert second.socket_path == first.socket_path  # the free one, again
            assert third.socket_path != second.socket_path  # served at once: another
            assert _call(third.socket_path)[0] == 200
        assert first.fake.calls.methods == third.fake.calls.methods == ["Plugin.Activate"]
        assert second.fake.calls.methods == []
        assert first.fake.socket_path == second.fake.socket_path == first.socket_path
    finally:
        pool.close()


def test_a_server_swapped_to_no_fake_answers_503(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("swap")
    with fakedriver.serving() as served:
        assert _call(served.socket_path)[0] == 200
    server = PluginServer(FakeNetDriver(), socket_path=str(folder / "p.sock"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        server.swap(None)
        status, body = _call(str(folder / "p.sock"))
        assert status == 503 and b"no fake is served on this socket now" in body
    finally:
        server.close()
        thread.join(10)
