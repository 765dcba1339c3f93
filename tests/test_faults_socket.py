"""Faults on a real unix socket, served by ``fakedriver serve``, and the control API.

The socket-level kinds are read off the raw socket, byte for byte, the way dockerd's Go
client would meet them: ``drop`` closes before any answer byte, ``drop_mid_body`` sends
the headers and part of the body, ``truncated`` sends a whole response with a cut body,
``hang`` sends nothing until the client leaves or the test releases it, ``latency``
really waits (``serve`` runs on the real clock). Faults are added over the control API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.serve_env import (
    Conn,
    Launcher,
    Served,
    create_network,
    dockerd_request,
    read_response,
    temporary_short_dir,
)

pytestmark = pytest.mark.socket  # the socket tier: faults on a real socket

NET = "n" * 64


# -- talking to the server ----------------------------------------------------------------------
def control(
    path: str, verb: str, target: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    """One control API request on its own connection: the status and the JSON answer."""
    payload = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    head = (
        f"{verb} {target} HTTP/1.1\r\nHost: \r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    with Conn(path) as conn:
        conn.sock.sendall(head.encode() + payload)
        response = read_response(conn.stream)
    return response.status, json.loads(response.body)


def ok(path: str, verb: str, target: str, body: Any = None) -> Any:
    status, answer = control(path, verb, target, body)
    assert status == 200, (verb, target, answer)
    return answer


def exchange(path: str, method: str, body: Any = None, wait: float = 2.0) -> tuple[bytes, bool]:
    """Send one plugin call; every byte received until EOF (True) or ``wait`` s of silence."""
    with Conn(path, timeout=wait) as conn:
        conn.sock.sendall(dockerd_request(method, body))
        received = b""
        try:
            while chunk := conn.sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        return received, True


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body bytes of a raw HTTP response."""
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def calls(api: str, since: int = 0) -> list[dict[str, Any]]:
    return list(ok(api, "GET", f"/fakedriver/calls?since={since}")["calls"])


def add(api: str, *rules: dict[str, Any]) -> None:
    body = rules[0] if len(rules) == 1 else {"faults": list(rules)}
    ok(api, "POST", "/fakedriver/faults", body)


def plain_call(path: str, method: str, body: Any = None) -> tuple[int, bytes]:
    """One plugin call on its own connection, answered normally: status and body."""
    with Conn(path) as conn:
        response = conn.send(method, body)
    return response.status, response.body


def networks(api: str) -> list[str]:
    return list(ok(api, "GET", "/fakedriver/state")["networks"])


def eventually(check: Any, timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


# -- servers ------------------------------------------------------------------------------------
class Sockets:
    def __init__(self, plugin: str, api: str, served: Served) -> None:
        self.plugin, self.api, self.served = plugin, api, served


@pytest.fixture(scope="module")
def server() -> Iterator[Sockets]:
    """One ``fakedriver serve`` with the control API on its own socket, for the module."""
    with temporary_short_dir() as folder:
        plugin, api = str(folder / "p.sock"), str(folder / "c.sock")
        served = Served(folder, "--socket", plugin, "--control-socket", api).wait_ready()
        yield Sockets(plugin, api, served)
        served.kill()


@pytest.fixture
def sockets(server: Sockets) -> Iterator[Sockets]:
    """The module's server, with no rules, calls or state at the start of each test."""
    ok(server.api, "DELETE", "/fakedriver/faults")  # releases anything still held
    ok(server.api, "POST", "/fakedriver/reset")
    yield server
    ok(server.api, "DELETE", "/fakedriver/faults")


@pytest.fixture
def launch() -> Iterator[tuple[Launcher, Path]]:
    """For tests that need ``fakedriver serve`` with other options."""
    with temporary_short_dir() as folder:
        launcher = Launcher(folder)
        yield launcher, folder
        launcher.kill_all()


# -- the socket-level kinds ---------------------------------------------------------------------
def test_drop_closes_the_connection_before_any_answer_byte(sockets: Sockets) -> None:
    add(sockets.api, {"method": "CreateNetwork", "kind": "drop"})

    received, eof = exchange(sockets.plugin, "NetworkDriver.CreateNetwork", create_network(NET))

    assert (received, eof) == (b"", True)
    assert networks(sockets.api) == []  # not served
    [call] = calls(sockets.api)
    assert (call["method"], call["status"], call["error"]) == (
        "NetworkDriver.CreateNetwork",
        0,
        "drop",
    )
    assert call["fault"] == "drop on NetworkDriver.CreateNetwork"


def test_drop_mid_body_sends_the_headers_and_part_of_the_body(sockets: Sockets) -> None:
    add(sockets.api, {"method": "CreateEndpoint", "kind": "drop_mid_body"})
    assert plain_call(sockets.plugin, "NetworkDriver.CreateNetwork", create_network(NET)) == (
        200,
        b"{}\n",
    )
    endpoint = {"NetworkID": NET, "EndpointID": "e" * 64, "Interface": {"Address": "10.0.0.2/24"}}

    received, eof = exchange(sockets.plugin, "NetworkDriver.CreateEndpoint", endpoint)

    assert eof
    status, headers, body = split(received)
    assert status == 200
    assert 0 < len(body) < int(headers["content-length"])
    whole = json.dumps(calls(sockets.api)[-1]["response"], separators=(",", ":")).encode()
    assert (whole + b"\n").startswith(body)  # the first part of the real answer
    assert "e" * 64 in ok(sockets.api, "GET", "/fakedriver/state")["endpoints"]  # served


def test_truncated_sends_a_whole_response_with_a_cut_body(sockets: Sockets) -> None:
    add(sockets.api, {"method": "NetworkDriver.GetCapabilities", "kind": "truncated", "times": 1})

    with Conn(sockets.plugin) as conn:
        response = conn.send("NetworkDriver.GetCapabilities")
        again = conn.send("NetworkDriver.GetCapabilities")  # the connection lives on

    assert response.status == 200
    assert int(response.headers["content-length"]) == len(response.body)
    whole = b'{"Scope":"local","ConnectivityScope":""}\n'
    assert response.body == whole[: len(whole) // 2]
    with pytest.raises(ValueError):
        json.loads(response.body)
    assert again.json == {"Scope": "local", "ConnectivityScope": ""}


def test_truncated_still_serves_the_call(sockets: Sockets) -> None:
    add(sockets.api, {"method": "CreateNetwork", "kind": "truncated"})

    with Conn(sockets.plugin) as conn:
        response = conn.send("NetworkDriver.CreateNetwork", create_network(NET))

    assert response.body == b"{"  # half of b"{}\n"
    assert networks(sockets.api) == [NET]


def test_hang_answers_nothing_until_the_client_goes_away(sockets: Sockets) -> None:
    add(sockets.api, {"method": "CreateNetwork", "kind": "hang"})

    received, eof = exchange(
        sockets.plugin, "NetworkDriver.CreateNetwork", create_network(NET), wait=0.4
    )

    assert (received, eof) == (b"", False)  # silence, and the connection still open
    # the client has now closed its end: the server notices and journals it
    ended = eventually(lambda: calls(sockets.api))
    assert ended, "the hung call was never journaled after the client left"
    assert (ended[0]["status"], ended[0]["error"]) == (0, "no answer: client went away")
    assert networks(sockets.api) == []


def test_hang_answers_normally_once_released(sockets: Sockets) -> None:
    add(sockets.api, {"method": "CreateNetwork", "kind": "hang"})

    with Conn(sockets.plugin, timeout=0.3) as conn:
        conn.sock.sendall(dockerd_request("NetworkDriver.CreateNetwork", create_network(NET)))
        with pytest.raises(TimeoutError):
            conn.sock.recv(1)
        assert calls(sockets.api) == []  # still held, not served
        ok(sockets.api, "POST", "/fakedriver/faults/release")
        conn.sock.settimeout(5.0)
        response = read_response(conn.stream)

    assert (response.status, response.json) == (200, {})
    assert networks(sockets.api) == [NET]
    assert calls(sockets.api)[0]["fault"] == "hang on NetworkDriver.CreateNetwork"


def test_latency_really_delays_the_answer(sockets: Sockets) -> None:
    add(sockets.api, {"method": "NetworkDriver.GetCapabilities", "kind": "latency", "seconds": 0.3})

    with Conn(sockets.plugin) as conn:
        start = time.monotonic()
        response = conn.send("NetworkDriver.GetCapabilities")
        took = time.monotonic() - start

    assert response.json["Scope"] == "local"
    assert 0.3 <= took < 3.0


def test_an_error_fault_is_in_the_protocol_on_the_socket(sockets: Sockets) -> None:
    add(
        sockets.api,
        {"method": "CreateNetwork", "message": "no bridge"},
        {"method": "RequestPool", "kind": "not_found"},
    )

    start = len(sockets.served.text())  # the module's server logs every test's calls

    with Conn(sockets.plugin) as conn:
        network = conn.send("NetworkDriver.CreateNetwork", create_network(NET))
        pool = conn.send("IpamDriver.RequestPool", {"AddressSpace": "LocalDefault", "Pool": ""})

    assert (network.status, network.body) == (200, b'{"Err":"no bridge"}\n')
    assert (pool.status, pool.body) == (404, b"404 page not found\n")
    # the log: a thread writes the line after the answer, so wait for it
    logged = eventually(
        lambda: "[fault: error on NetworkDriver.CreateNetwork]" in sockets.served.text()[start:],
        timeout=10.0,
    )
    assert logged, sockets.served.text()[start:]


# -- the control API ----------------------------------------------------------------------------
def test_faults_are_listed_added_and_removed(sockets: Sockets) -> None:
    assert ok(sockets.api, "POST", "/fakedriver/faults", {"method": "Join"}) == {"added": [0]}
    many = {"faults": [{"kind": "latency", "seconds": 0.01}, {"kind": "drop", "nth": 5}]}
    assert ok(sockets.api, "POST", "/fakedriver/faults", many) == {"added": [1, 2]}
    with Conn(sockets.plugin) as conn:
        conn.send("Plugin.Activate")

    listed = ok(sockets.api, "GET", "/fakedriver/faults")

    assert (listed["phase"], listed["seed"]) == (None, 0)
    summary = [(r["method"], r["kind"], r["seen"], r["fired"]) for r in listed["faults"]]
    assert summary == [
        ("NetworkDriver.Join", "error", 0, 0),
        ("*", "latency", 1, 1),
        ("*", "drop", 1, 0),
    ]
    assert ok(sockets.api, "DELETE", "/fakedriver/faults") == {}
    assert ok(sockets.api, "GET", "/fakedriver/faults")["faults"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "explode"},
        {"kind": "error", "nth": 0},
        {"kind": "error", "probability": 2},
        {"kind": "status", "status": 42},
        {"status": 100},
        {"status": 204},
        {"status": 304},
        {"method": "Jion"},
        {"kind": "error", "colour": "red"},
        ["not", "an", "object"],
        {"faults": [{"kind": "error"}, {"kind": "explode"}]},  # all or nothing
    ],
    ids=[
        "kind",
        "nth",
        "probability",
        "status",
        "status-100",
        "status-204",
        "status-304",
        "method",
        "field",
        "not-an-object",
        "one-bad-in-a-list",
    ],
)
def test_a_bad_rule_is_a_400_and_adds_nothing(sockets: Sockets, body: Any) -> None:
    status, answer = control(sockets.api, "POST", "/fakedriver/faults", body)

    assert status == 400
    assert answer["Err"].startswith("bad control request: ")
    assert ok(sockets.api, "GET", "/fakedriver/faults")["faults"] == []


def test_a_body_that_is_not_json_is_a_400(sockets: Sockets) -> None:
    status, answer = control(sockets.api, "POST", "/fakedriver/faults", raw=b"{kind: drop")
    assert status == 400 and "bad control request" in answer["Err"]


def test_a_rule_that_would_break_every_call_is_a_400(sockets: Sockets) -> None:
    """Accepted today: every plugin call after it is dropped, unjournaled, with a
    traceback in the server's log (``match`` must be an object)."""
    status, _ = control(sockets.api, "POST", "/fakedriver/faults", {"match": "EndpointID"})

    assert status == 400
    assert plain_call(sockets.plugin, "Plugin.Activate")[0] == 200


def test_the_phase_turns_phase_rules_on_and_off(sockets: Sockets) -> None:
    add(sockets.api, {"method": "NetworkDriver.GetCapabilities", "message": "down", "phase": "x"})

    def scope_error() -> str | None:
        with Conn(sockets.plugin) as conn:
            return conn.send("NetworkDriver.GetCapabilities").json.get("Err")

    before = scope_error()
    assert ok(sockets.api, "PUT", "/fakedriver/phase", {"phase": "x"}) == {"phase": "x"}
    during = scope_error()
    assert ok(sockets.api, "GET", "/fakedriver/faults")["phase"] == "x"
    assert ok(sockets.api, "PUT", "/fakedriver/phase", {"phase": None}) == {"phase": None}
    after = scope_error()

    assert [before, during, after] == [None, "down", None]


@pytest.mark.parametrize("body", [{"phase": 3}, ["x"], "x"], ids=["number", "list", "string"])
def test_a_bad_phase_is_a_400(sockets: Sockets, body: Any) -> None:
    assert control(sockets.api, "PUT", "/fakedriver/phase", body)[0] == 400
    assert ok(sockets.api, "GET", "/fakedriver/faults")["phase"] is None


def test_calls_since_n_and_state_and_leaks(sockets: Sockets) -> None:
    with Conn(sockets.plugin) as conn:
        conn.send("Plugin.Activate")
        conn.send("NetworkDriver.CreateNetwork", create_network(NET))
        conn.send("NetworkDriver.GetCapabilities")

    assert [c["index"] for c in calls(sockets.api)] == [0, 1, 2]
    later = calls(sockets.api, since=1)
    assert [(c["index"], c["method"]) for c in later] == [
        (1, "NetworkDriver.CreateNetwork"),
        (2, "NetworkDriver.GetCapabilities"),
    ]
    assert later[0]["request"]["NetworkID"] == NET
    assert calls(sockets.api, since=3) == []
    assert control(sockets.api, "GET", "/fakedriver/calls?since=many")[0] == 400
    assert networks(sockets.api) == [NET]
    [leak] = ok(sockets.api, "GET", "/fakedriver/leaks")["leaks"]
    assert NET in leak and "NetworkDriver.CreateNetwork" in leak


def test_reset_forgets_state_calls_and_rules(sockets: Sockets) -> None:
    add(sockets.api, {"method": "Join", "message": "x"})
    ok(sockets.api, "PUT", "/fakedriver/phase", {"phase": "p"})
    with Conn(sockets.plugin) as conn:
        conn.send("NetworkDriver.CreateNetwork", create_network(NET))

    assert ok(sockets.api, "POST", "/fakedriver/reset") == {}

    assert calls(sockets.api) == [] and networks(sockets.api) == []
    assert ok(sockets.api, "GET", "/fakedriver/leaks") == {"leaks": []}
    assert ok(sockets.api, "GET", "/fakedriver/faults") == {"faults": [], "phase": None, "seed": 0}


@pytest.mark.parametrize(
    ("verb", "target"),
    [
        ("GET", "/fakedriver/nothing"),
        ("POST", "/fakedriver/calls"),  # a known path with the wrong verb
        ("DELETE", "/fakedriver/state"),
    ],
)
def test_an_unknown_control_endpoint_is_a_404(sockets: Sockets, verb: str, target: str) -> None:
    status, answer = control(sockets.api, verb, target)
    assert status == 404
    assert answer == {"Err": f"no control endpoint {verb} {target}"}


# -- where the control API is served --------------------------------------------------------------
def test_with_a_control_socket_the_plugin_socket_has_no_control_api(sockets: Sockets) -> None:
    for verb in ("GET", "POST", "DELETE"):
        status, answer = control(sockets.plugin, verb, "/fakedriver/faults")
        assert status == 404, verb
        assert answer == {"Err": "the control API is not served on this socket"}
    assert plain_call(sockets.plugin, "Plugin.Activate")[0] == 200
    status, _ = control(sockets.api, "POST", "/Plugin.Activate")  # and no protocol there
    assert status == 404
    assert [c["method"] for c in calls(sockets.api)] == ["Plugin.Activate"]


def test_without_a_control_socket_the_plugin_socket_serves_both(
    launch: tuple[Launcher, Path],
) -> None:
    serve, folder = launch
    plugin = str(folder / "p.sock")
    serve("--socket", plugin).wait_ready()

    assert ok(plugin, "POST", "/fakedriver/faults", {"method": "CreateNetwork", "kind": "drop"})
    assert exchange(plugin, "NetworkDriver.CreateNetwork", create_network(NET)) == (b"", True)
    assert [c["error"] for c in calls(plugin)] == ["drop"]


def test_no_control_serves_no_control_api(launch: tuple[Launcher, Path]) -> None:
    serve, folder = launch
    plugin = str(folder / "p.sock")
    serve("--socket", plugin, "--no-control").wait_ready()

    status, answer = control(plugin, "GET", "/fakedriver/calls")
    assert status == 404 and answer == {"Err": "the control API is not served on this socket"}
    assert plain_call(plugin, "Plugin.Activate")[0] == 200


# -- --faults FILE ------------------------------------------------------------------------------
def test_serve_loads_a_scenario_file_at_start(launch: tuple[Launcher, Path]) -> None:
    serve, folder = launch
    scenario = folder / "s.toml"
    scenario.write_text(
        'seed = 9\nphase = "boot"\n\n'
        '[[fault]]\nmethod = "CreateNetwork"\nkind = "drop"\nphase = "boot"\n\n'
        '[[fault]]\nmethod = "Join"\nstatus = 503\n'
    )
    plugin, api = str(folder / "p.sock"), str(folder / "c.sock")
    serve("--socket", plugin, "--control-socket", api, "--faults", str(scenario)).wait_ready()

    listed = ok(api, "GET", "/fakedriver/faults")
    assert (listed["seed"], listed["phase"]) == (9, "boot")
    assert [(r["method"], r["kind"]) for r in listed["faults"]] == [
        ("NetworkDriver.CreateNetwork", "drop"),
        ("NetworkDriver.Join", "status"),
    ]
    assert exchange(plugin, "NetworkDriver.CreateNetwork", create_network(NET)) == (b"", True)
    ok(api, "PUT", "/fakedriver/phase", {"phase": None})
    assert plain_call(plugin, "NetworkDriver.CreateNetwork", create_network(NET)) == (200, b"{}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "No such file"),
        ("[[fault]\n", "Expected ']]'"),
        ("[[fault]]\nkind = 'explode'\n", "unknown fault kind 'explode'"),
        ("[[fault]]\nnth = 0\n", "nth must be a whole number from 1"),
        ("speed = 3\n", r"unknown key(s) ['speed']"),
    ],
    ids=["missing", "toml", "kind", "nth", "key"],
)
def test_a_bad_scenario_file_makes_serve_exit_2_naming_it(
    launch: tuple[Launcher, Path], text: str | None, message: str
) -> None:
    serve, folder = launch
    scenario = folder / "bad.toml"
    if text is not None:
        scenario.write_text(text)
    plugin = folder / "p.sock"

    served = serve("--socket", str(plugin), "--faults", str(scenario))

    assert served.wait() == 2
    assert f"fakedriver: fault scenario {scenario}: " in served.text()
    assert message in served.text()
    assert not plugin.exists()
