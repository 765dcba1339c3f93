"""The transport contract: every fault kind and a whole lifecycle, through every way a
client reaches a fake (WSGI, requests, httpx sync and async, aiohttp, a real socket).
Each row asserts what that client's own code sees; a transport that renders a reply its
own way, or a fault kind one transport forgets, fails here."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from support.transports import TRANSPORTS, Transport, param
from support.wire import EP, NET

from fakedriver import FakeNetDriver

METHOD = "NetworkDriver.CreateNetwork"
CREATE = json.dumps(
    {"NetworkID": NET, "Options": {}, "IPv4Data": [{"Pool": "10.1.0.0/24"}], "IPv6Data": []}
).encode()
TIMEOUT = 0.5

#: kind -> (rule fields, what the client gets: (status, body) or "dropped"/"cut"/"timeout",
#: whether the driver served the call)
CASES: dict[str, tuple[dict[str, Any], object, bool]] = {
    "error": ({"message": "boom"}, (200, {"Err": "boom"}), False),
    "status": ({"status": 503, "message": "boom"}, (503, {"Err": "boom"}), False),
    "not_found": ({}, (404, b"404 page not found\n"), False),
    "empty_body": ({}, (200, b""), False),
    "invalid_json": ({}, (200, b'{"Err": this is not JSON'), False),
    "wrong_key": ({"message": "boom"}, (200, {"Error": "boom"}), False),
    "answer": ({"answer": {"Extra": 1}}, (200, {"Extra": 1}), True),
    "lost_reply": ({"message": "boom"}, (200, {"Err": "boom"}), True),
    "truncated": ({}, (200, b"{"), True),
    "drop": ({}, "dropped", False),
    "drop_mid_body": ({}, "cut", True),
    "latency": ({"seconds": 0.05}, (200, {}), True),
    "latency-past-timeout": ({"seconds": 1.0}, "timeout", True),
    "hang": ({}, "timeout", False),
}


def _expect(transport: Transport, outcome: object) -> type[BaseException] | None:
    if outcome == "dropped":
        return transport.dropped
    if outcome == "cut":
        return transport.cut
    if outcome == "timeout":
        return transport.timeout
    return None


def _journaled(fake: FakeNetDriver) -> threading.Event:
    """Set once the fake journals a call: on a real socket a call that is not served (a
    hung one, once the client goes) is journaled after the client has its answer, and a
    served one's changes are made before it is journaled."""
    seen = threading.Event()
    fake.listeners.append(lambda call: seen.set())
    return seen


#: Every transport with every case; a client with no timeout (WSGI's test client) has no
#: timeout row: its hang is the hold test.
ROWS = [
    param(transport, case, id=f"{transport.name}-{case}")
    for transport in TRANSPORTS
    for case, (_, outcome, _) in CASES.items()
    if outcome != "timeout" or transport.timeout is not None
]


@pytest.mark.parametrize(("transport", "case"), ROWS)
def test_each_fault_kind_reaches_each_client_as_itself(transport: Transport, case: str) -> None:
    fields, outcome, served = CASES[case]
    kind = case.removesuffix("-past-timeout")
    fake = transport.fake()
    rule = fake.faults.add(method=METHOD, kind=kind, **fields)
    journaled = _journaled(fake)
    with transport.serving(fake) as where:
        error = _expect(transport, outcome)
        if error is not None:
            with pytest.raises(error):
                transport.send(fake, where, METHOD, CREATE, TIMEOUT)
        else:
            status, body = transport.send(fake, where, METHOD, CREATE, TIMEOUT)
            want_status, want_body = outcome  # type: ignore[misc]
            assert status == want_status
            assert (
                body == want_body if isinstance(want_body, bytes) else json.loads(body) == want_body
            )
        assert journaled.wait(timeout=5), "the call was never journaled"
        assert (NET in fake.state.networks) is served
        assert rule.fired == 1
        assert fake.calls[-1].fault == f"{kind} on {METHOD}"


@pytest.mark.parametrize("transport", [param(t) for t in TRANSPORTS])
def test_a_held_call_is_answered_once_released(transport: Transport) -> None:
    fake = transport.fake()
    rule = fake.hold(METHOD)
    got: list[tuple[int, bytes]] = []
    with transport.serving(fake) as where:
        caller = threading.Thread(
            target=lambda: got.append(transport.send(fake, where, METHOD, CREATE, 10)),
            daemon=True,
        )
        caller.start()
        assert rule.wait_held(timeout=5)
        time.sleep(0.05)
        assert got == [] and NET not in fake.state.networks
        rule.release()
        caller.join(timeout=10)
    assert got == [(200, b"{}\n")]
    assert NET in fake.state.networks


@pytest.mark.parametrize("transport", [param(t) for t in TRANSPORTS if t.timeout is not None])
def test_a_held_call_ends_at_the_clients_timeout(transport: Transport) -> None:
    fake = transport.fake()
    rule = fake.hold(METHOD)
    got: list[BaseException | tuple[int, bytes]] = []

    def send(where: str) -> None:
        try:
            got.append(transport.send(fake, where, METHOD, CREATE, TIMEOUT))
        except BaseException as exc:  # the client's own error, checked below
            got.append(exc)

    with transport.serving(fake) as where:
        caller = threading.Thread(target=send, args=(where,), daemon=True)
        caller.start()
        caller.join(timeout=10)  # a held call that ignores the timeout fails here, not hangs
        deadline = time.monotonic() + 3  # a real socket journals the call once it sees
        while not fake.calls and time.monotonic() < deadline:  # the client go
            time.sleep(0.02)
        alive = caller.is_alive()
        rule.release()  # frees a call that hung, whatever the outcome
        caller.join(timeout=10)
        assert not alive, "the held call outlived the client's timeout"
    assert len(got) == 1 and isinstance(got[0], transport.timeout), got
    # a real socket cannot know the client's timeout: it sees the client hang up
    why = "client went away" if transport.real_time else f"client gave up after {TIMEOUT} s (held)"
    assert [(c.status, c.error, c.fault) for c in fake.calls] == [
        (0, f"no answer: {why}", f"hold on {METHOD}")
    ]
    assert NET not in fake.state.networks


@pytest.mark.parametrize(
    "transport",
    [t for t in TRANSPORTS if t.name in ("httpx-async", "aiohttp")],
    ids=lambda t: t.name,
)
def test_a_held_call_does_not_block_the_event_loop(transport: Transport) -> None:
    fake = transport.fake()
    rule = fake.hold(METHOD)
    watchdog = threading.Timer(5, rule.release)  # frees a blocked loop, failing the test
    watchdog.start()

    async def release_from_the_loop() -> str:
        await asyncio.to_thread(rule.wait_held, 1, 5)
        rule.release()
        return "released by the loop"

    async def both(where: str) -> list[Any]:
        from support.transports import _send_async

        return await asyncio.gather(
            _send_async(transport.name, f"{where}/{METHOD}", CREATE, 10), release_from_the_loop()
        )

    with transport.serving(fake) as where:
        answer, who = asyncio.run(both(where))
    alive = watchdog.is_alive()
    watchdog.cancel()
    assert alive, "the held call blocked the event loop until the watchdog released it"
    assert answer == (200, b"{}\n") and who == "released by the loop"


def _lifecycle(transport: Transport, fake: FakeNetDriver, where: str) -> None:
    def call(method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, raw = transport.send(fake, where, method, json.dumps(body or {}).encode(), 5)
        answer: dict[str, Any] = json.loads(raw)
        assert status == 200 and not {"Err", "Error"} & set(answer), (method, answer)
        return answer

    ids = {"NetworkID": NET, "EndpointID": EP}
    call("Plugin.Activate")
    pool = call("IpamDriver.RequestPool", {"AddressSpace": "LocalDefault", "Pool": ""})
    pid = pool["PoolID"]
    gateway = call("IpamDriver.RequestAddress", {"PoolID": pid, "Options": {}})["Address"]
    data = [{"AddressSpace": "LocalDefault", "Pool": pool["Pool"], "Gateway": gateway}]
    call(METHOD, {"NetworkID": NET, "Options": {}, "IPv4Data": data, "IPv6Data": []})
    address = call("IpamDriver.RequestAddress", {"PoolID": pid, "Options": {}})["Address"]
    call("NetworkDriver.CreateEndpoint", {**ids, "Interface": {"Address": address}})
    call("NetworkDriver.Join", {**ids, "SandboxKey": "/var/run/docker/netns/x"})
    call("NetworkDriver.ProgramExternalConnectivity", ids)
    call("NetworkDriver.RevokeExternalConnectivity", ids)
    call("NetworkDriver.Leave", ids)
    call("NetworkDriver.DeleteEndpoint", ids)
    for ip in (address, gateway):
        call("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": ip.split("/")[0]})
    call("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    call("IpamDriver.ReleasePool", {"PoolID": pid})


@pytest.mark.parametrize("transport", [param(t) for t in TRANSPORTS])
def test_a_whole_lifecycle_through_each_transport(transport: Transport) -> None:
    fake = transport.fake()
    with transport.serving(fake) as where:
        _lifecycle(transport, fake, where)
    assert len(fake.calls) == 15 and all(call.ok for call in fake.calls)
    fake.assert_clean()


@pytest.mark.socket  # a real connect, refused
def test_plain_httpx_calls_elsewhere_pass_through_while_routed(
    fake_netdriver: FakeNetDriver,
) -> None:
    # nothing listens on this loopback port: the real transport is what refuses
    with pytest.raises(httpx.ConnectError):
        httpx.post("http://127.0.0.1:9/Plugin.Activate", timeout=2)
    assert httpx.post(f"{fake_netdriver.url}/Plugin.Activate").status_code == 200
    assert fake_netdriver.calls.methods == ["Plugin.Activate"]


# -- the request body is decoded once per call, whatever serves it ----------------------------
#: rule fields (none: no rule) -> a call that meets them: no rule, a rule that looks at the
#: request and does not fire, one that answers instead of the driver, one that changes the
#: driver's answer, one that only delays it.
DECODE_CASES: dict[str, dict[str, Any] | None] = {
    "no-rule": None,
    "rule-not-firing": {"match": {"NetworkID": "another"}},
    "error": {"kind": "error", "match": {"NetworkID": NET}},
    "answer": {"kind": "answer", "answer": {"Extra": 1}},
    "latency": {"kind": "latency", "seconds": 0.01},
}


@pytest.mark.parametrize("case", DECODE_CASES)
@pytest.mark.parametrize("transport", [param(t) for t in TRANSPORTS])
def test_the_request_body_is_decoded_once_per_call(
    transport: Transport, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every JSON decode of the request body anywhere (``json.loads`` and any decoder go
    through ``JSONDecoder.decode``) is counted: fault matching, the protocol model and the
    journal read one decoded request."""
    decodes: list[str] = []
    real = json.JSONDecoder.decode

    def counted(self: json.JSONDecoder, text: str, *args: Any, **kwargs: Any) -> Any:
        if text == CREATE.decode():
            decodes.append(text)
        return real(self, text, *args, **kwargs)

    fake = transport.fake()
    fields = DECODE_CASES[case]
    if fields is not None:
        fake.fail(METHOD, **fields)
    with transport.serving(fake) as where:
        monkeypatch.setattr(json.JSONDecoder, "decode", counted)
        transport.send(fake, where, METHOD, CREATE, 5)
        monkeypatch.undo()
    assert len(fake.calls) == 1 and fake.calls[0].request == json.loads(CREATE)
    assert len(decodes) == 1, f"the body was decoded {len(decodes)} times"


def test_every_transport_renders_every_outcome() -> None:
    """Each transport maps outcomes to what its library does through one table: a new
    outcome without its row in every table fails here, not in a user's test."""
    from fakedriver import Outcome
    from fakedriver.server import server
    from fakedriver.transports import for_aiohttp, for_httpx, for_requests, wsgi

    for module in (wsgi, for_requests, for_httpx, for_aiohttp, server):
        assert set(module.RENDER) == set(Outcome), module.__name__
