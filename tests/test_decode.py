"""What the fake could not keep is refused at decode (issue 17): a string that is not
Unicode text (an unpaired surrogate), a number beyond a 64-bit float, nesting deeper than
``MAX_DEPTH``, a body that is not UTF-8. Each is a 400 in the protocol's dialect that
changes nothing, in every transport and in the control API; and what the fake writes (its
answers, the state, the journal, JSON log lines) is JSON that Go's decoder reads."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support.rawhttp import Response, connect, eventually, read_one
from support.rawhttp import request as raw_request
from support.serve_env import Launcher, Served
from support.transports import TRANSPORTS, Transport, param
from support.wire import NET, Wire

from fakedriver import FakeNetDriver
from fakedriver.core.errors import BadRequest
from fakedriver.core.faults import Rule
from fakedriver.core.http import encode
from fakedriver.core.journal import Call
from fakedriver.core.wire import MAX_DEPTH, decode, integer, strict_json
from fakedriver.persist.store import StateFileError, Store, peek_state
from fakedriver.server.control import control
from fakedriver.server.server import json_line


def go_json(text: str | bytes) -> Any:
    """Parse as Go's decoder would: no ``NaN``/``Infinity``, nothing Python reads as such."""
    return strict_json(text)


def nested(depth: int) -> Any:
    """A value that nests exactly ``depth`` objects and arrays deep (an array innermost)."""
    value: Any = []
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def create(nid: str = NET, options: Any = None, pool: str = "10.1.0.0/24") -> bytes:
    body = {"NetworkID": nid, "Options": options or {}, "IPv4Data": [{"Pool": pool}]}
    return json.dumps(body).encode()


def with_options(raw: bytes) -> bytes:
    """A CreateNetwork whose Options are the JSON text ``raw``, as sent."""
    return b'{"NetworkID":"' + NET.encode() + b'","Options":' + raw + b',"IPv4Data":[]}'


#: name -> (body, what the refusal says)
UNUSABLE: dict[str, tuple[bytes, str]] = {
    "lone surrogate in an id": (b'{"NetworkID":"sur\\ud800"}', "not Unicode text"),
    "low surrogate alone": (b'{"NetworkID":"sur\\uDFFF","EndpointID":"x"}', "not Unicode text"),
    "surrogate in a key": (with_options(b'{"\\udc00":"x"}'), "not Unicode text"),
    "surrogates reversed": (b'{"NetworkID":"\\ude00\\ud83d"}', "not Unicode text"),
    "surrogate as UTF-8 bytes": (b'{"NetworkID":"sur\xed\xa0\x80"}', "not UTF-8"),
    "surrogate in UTF-16": (
        json.dumps({"NetworkID": "sur\ud800"}).encode("utf-16", "surrogatepass"),
        "not UTF-8",
    ),
    "1e400": (with_options(b'{"x":1e400}'), "number 1e400 is out of range"),
    "-1e400": (with_options(b'{"x":-1e400}'), "number -1e400 is out of range"),
    "a float of 400 digits": (with_options(b'{"x":' + b"9" * 400 + b".5}"), "out of range"),
    "an integer beyond a float": (with_options(b'{"x":' + b"9" * 309 + b"}"), "out of range"),
    f"nested {MAX_DEPTH + 1} deep": (
        with_options(json.dumps(nested(MAX_DEPTH)).encode()),  # in the body: one more
        f"nests deeper than {MAX_DEPTH}",
    ),
    "nested 500 deep": (with_options(b"[" * 499 + b"]" * 499), f"nests deeper than {MAX_DEPTH}"),
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, f"nests deeper than {MAX_DEPTH}"),
}

#: Bodies that look close and are kept: name -> (body, the NetworkID or option read)
KEPT: dict[str, tuple[bytes, Any]] = {
    "a surrogate pair": (b'{"NetworkID":"emoji\\ud83d\\ude00"}', "emoji\U0001f600"),
    "an escaped backslash before u": (b'{"NetworkID":"x\\\\ud800"}', "x\\ud800"),
    "brackets in a string": (b'{"NetworkID":"' + b"[{" * 100 + b'"}', "[{" * 100),
    "1.7e308": (b'{"NetworkID":"n","Options":{"x":1.7e308}}', 1.7e308),
    "1e-400 (reads as 0)": (b'{"NetworkID":"n","Options":{"x":1e-400}}', 0.0),
    "10**308": (b'{"NetworkID":"n","Options":{"x":1' + b"0" * 308 + b"}}", 10**308),
}


# -- the decoder ------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b for b, _ in UNUSABLE.values()], ids=list(UNUSABLE))
def test_the_decoder_refuses_what_could_not_be_kept(body: bytes) -> None:
    with pytest.raises(BadRequest, match="invalid request: "):
        decode(body, no_arguments=False)


@pytest.mark.parametrize(("body", "read"), list(KEPT.values()), ids=list(KEPT))
def test_the_decoder_keeps_what_only_looks_close(body: bytes, read: Any) -> None:
    value = decode(body, no_arguments=False)
    assert read in (value["NetworkID"], value.get("Options", {}).get("x"))


def test_nesting_up_to_the_limit_is_read_and_one_more_is_refused() -> None:
    deepest = {"NetworkID": "n", "Options": nested(MAX_DEPTH - 1)}
    assert decode(json.dumps(deepest).encode(), no_arguments=False) == deepest
    too_deep = {"NetworkID": "n", "Options": nested(MAX_DEPTH)}
    with pytest.raises(BadRequest, match=f"body nests deeper than {MAX_DEPTH}"):
        decode(json.dumps(too_deep).encode(), no_arguments=False)
    wide = {"NetworkID": "n", "Options": [[[]] for _ in range(MAX_DEPTH * 4)]}
    assert decode(json.dumps(wide).encode(), no_arguments=False) == wide  # many, not deep


def test_a_boolean_is_not_an_integer() -> None:
    for value in (True, False):
        with pytest.raises(BadRequest, match="DiscoveryType must be an integer, got boolean"):
            integer({"DiscoveryType": value}, "DiscoveryType")
    assert integer({"DiscoveryType": 1}, "DiscoveryType") == 1


def test_discover_new_with_a_boolean_type_is_refused_and_discovers_nothing() -> None:
    wire = Wire(FakeNetDriver())
    data = {"Address": "10.0.0.9", "Self": False}
    message = wire.refused(
        "NetworkDriver.DiscoverNew", {"DiscoveryType": True, "DiscoveryData": data}, status=400
    )
    assert message == "invalid request: DiscoveryType must be an integer, got boolean"
    assert wire.fake.state.nodes == {}
    wire.ok("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": data})
    assert list(wire.fake.state.nodes) == ["10.0.0.9"]


# -- every transport --------------------------------------------------------------------------
@pytest.mark.parametrize("transport", [param(t) for t in TRANSPORTS])
def test_each_transport_answers_400_in_the_dialect_and_changes_nothing(
    transport: Transport,
) -> None:
    fake = transport.fake()
    cases = [
        (method, key, name)
        for name in UNUSABLE
        for method, key in (
            ("NetworkDriver.CreateNetwork", "Err"),
            ("IpamDriver.RequestPool", "Error"),
        )
    ]
    before = json.dumps(fake.state.snapshot(), sort_keys=True)
    with transport.serving(fake) as where:
        for method, key, name in cases:
            body, why = UNUSABLE[name]
            status, raw = transport.send(fake, where, method, body, 10)
            answer = go_json(raw)
            assert status == 400 and list(answer) == [key], (name, method, answer)
            assert answer[key].startswith("invalid request: ") and why in answer[key], name
            assert fake.calls[-1].status == 400 and fake.calls[-1].request is None
        assert json.dumps(fake.state.snapshot(), sort_keys=True) == before
        status, raw = transport.send(fake, where, "NetworkDriver.CreateNetwork", create(), 10)
        assert (status, raw) == (200, b"{}\n")  # and a good call still is served
    assert len(fake.calls) == len(cases) + 1
    json.dumps([c.request for c in fake.calls], allow_nan=False).encode()  # all of it JSON


# -- the control API's bodies, and what the fake encodes ---------------------------------------
CONTROL_BODIES = {
    "1e400 in an answer": b'{"method": "Join", "kind": "answer", "answer": {"x": 1e400}}',
    "a surrogate in a match": b'{"method": "Join", "match": {"SandboxKey": "\\ud800"}}',
    "500 deep in a match": b'{"method": "Join", "match": {"x": ' + b"[" * 499 + b"]" * 499 + b"}}",
}


@pytest.mark.parametrize("body", CONTROL_BODIES.values(), ids=CONTROL_BODIES.keys())
def test_a_control_body_that_could_not_be_kept_is_400(body: bytes) -> None:
    fake = FakeNetDriver()
    status, answer = control(fake, "POST", "/fakedriver/faults", body)
    assert status == 400 and answer["Err"].startswith("bad control request: "), answer
    assert fake.faults.rules == []
    status, answer = control(fake, "GET", "/fakedriver/faults", b"")
    go_json(encode(answer))


def test_a_fault_answer_must_be_json() -> None:
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError, match="answer must be JSON"):
            Rule(method="Join", kind="answer", answer={"x": bad})


def test_a_scenario_file_with_an_infinite_answer_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "inf.toml"
    scenario.write_text('[[fault]]\nmethod = "Join"\nkind = "answer"\nanswer = {x = inf}\n')
    with pytest.raises(ValueError, match="answer must be JSON"):
        FakeNetDriver().faults.load(str(scenario))


def test_the_encoder_never_writes_what_is_not_json() -> None:
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError):
            encode({"x": bad})


# -- JSON log lines ------------------------------------------------------------------------------
def _call(request: Any) -> Call:
    return Call(7, "NetworkDriver.CreateNetwork", request, {}, 200, timestamp=1.5)


@pytest.mark.parametrize(
    "request_",
    [{"x": math.nan}, {"x": math.inf}, nested(5000), {"x": object()}],
    ids=["nan", "infinity", "5000 deep", "an object"],
)
def test_a_json_log_line_is_json_whatever_the_entry_holds(request_: Any) -> None:
    line = json_line(_call(request_))
    entry = go_json(line)
    assert (entry["index"], entry["method"], entry["status"]) == (
        7,
        "NetworkDriver.CreateNetwork",
        200,
    )


def test_a_json_log_line_holds_the_whole_entry() -> None:
    request = {"NetworkID": NET, "Options": {"x": [1, 2.5, None, True]}}
    entry = go_json(json_line(_call(request)))
    assert entry == {
        "index": 7,
        "method": "NetworkDriver.CreateNetwork",
        "request": request,
        "response": {},
        "status": 200,
        "error": None,
        "violations": [],
        "fault": None,
        "timestamp": 1.5,
        "notes": [],
    }


# -- the state's loaders ---------------------------------------------------------------------------
@pytest.mark.parametrize("options", ['{"x":NaN}', '{"x":1e400}', '{"x":"\\ud800"}'])
def test_a_state_database_holding_what_decode_refuses_is_refused(
    tmp_path: Path, options: str
) -> None:
    fake = FakeNetDriver()
    Wire(fake).network()
    path = tmp_path / "state.db"
    store = Store.open(str(path))
    store.replace(fake.state)
    store.close()
    db = sqlite3.connect(str(path))
    db.execute("UPDATE networks SET options = ?", (options,))
    db.commit()
    db.close()
    with pytest.raises(StateFileError, match="is not JSON"):
        peek_state(str(path))


def test_a_json_state_file_holding_1e400_is_refused(tmp_path: Path) -> None:
    from fakedriver.persist.jsonfile import load, save

    fake = FakeNetDriver()
    Wire(fake).network()
    path = tmp_path / "state.json"
    save(fake.state, str(path))
    text = path.read_text()
    path.write_text(text.replace('"options": {', '"options": {"x": 1e400, ', 1))
    assert "1e400" in path.read_text()
    with pytest.raises(StateFileError, match="out of range"):
        load(str(path))


# -- over a real `fakedriver serve` --------------------------------------------------------------
def _send(path: str, verb: str, target: str, body: bytes = b"") -> Response:
    headers = f"Content-Length: {len(body)}\r\n"
    if verb == "POST" and target.startswith("/fakedriver/"):
        headers += "Content-Type: application/json\r\n"
    with connect(path, 10) as sock:
        sock.sendall(raw_request(verb, target, body, headers))
        return read_one(sock)


def _serving(serve: Launcher, *args: str) -> tuple[Served, str]:
    path = str(serve.folder / "p.sock")
    return serve("--socket", path, "--max-body", "4000000", *args).wait_ready(), path


DEEP = create(options={"x": nested(500)})


@pytest.mark.socket
def test_a_body_nested_500_deep_leaves_the_journal_readable(serve: Launcher) -> None:
    """It was served and journaled, and from then on GET /fakedriver/calls was a 500."""
    served, path = _serving(serve)
    answer = _send(path, "POST", "/NetworkDriver.CreateNetwork", DEEP)
    assert answer.status == 400 and "nests deeper" in answer.json["Err"]
    calls = _send(path, "GET", "/fakedriver/calls")
    assert calls.status == 200 and go_json(calls.body)["next"] == 1
    assert _send(path, "POST", "/NetworkDriver.CreateNetwork", create()).status == 200
    assert served.stop() == 0


@pytest.mark.socket
def test_with_json_logs_a_deep_body_is_refused_and_a_retry_is_served(serve: Launcher) -> None:
    """The JSON log line of a committed call failed, and the call answered 500; a retry
    was then told the network already exists."""
    served, path = _serving(serve, "--log-format", "json")
    answer = _send(path, "POST", "/NetworkDriver.CreateNetwork", DEEP)
    assert answer.status == 400 and "nests deeper" in answer.json["Err"]
    answer = _send(path, "POST", "/NetworkDriver.CreateNetwork", create())
    assert (answer.status, answer.body) == (200, b"{}\n")
    assert eventually(lambda: len(served.lines()) >= 3), served.text()  # the banner, 2 calls
    assert served.stop() == 0
    entries = [go_json(line) for line in served.lines()]
    assert [e.get("status") for e in entries if "index" in e] == [400, 200]


@pytest.mark.socket
def test_1e400_is_400_and_the_state_and_log_stay_json(serve: Launcher) -> None:
    """It was read as infinity: GET /fakedriver/state and the log then carried Infinity."""
    served, path = _serving(serve, "--log-format", "json")
    answer = _send(path, "POST", "/NetworkDriver.CreateNetwork", with_options(b'{"x":1e400}'))
    assert answer.status == 400 and "out of range" in answer.json["Err"]
    big = create(options={"x": 1.5e300}, pool="10.2.0.0/24")
    assert _send(path, "POST", "/NetworkDriver.CreateNetwork", big).status == 200
    rule = b'{"method": "Join", "kind": "answer", "answer": {"x": 1e400}}'
    answer = _send(path, "POST", "/fakedriver/faults", rule)
    assert answer.status == 400 and "out of range" in answer.json["Err"]
    state = _send(path, "GET", "/fakedriver/state")
    assert state.status == 200 and list(go_json(state.body)["networks"]) == [NET]
    assert eventually(lambda: len(served.lines()) >= 3), served.text()
    assert served.stop() == 0
    for line in served.lines():
        go_json(line)
