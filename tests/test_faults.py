"""Fault injection, seen from the client's side: ``requests`` calls routed in-process.

Each fault kind is checked for what the client gets (status, body bytes, or which
exception ``requests`` raises), whether the call was served (the driver's state), and
what the journal says. Then the schedules (match, nth, times, every, probability, phase),
how rules compose, rule validation, and TOML scenarios (directly and through the pytest
marker). The socket-level behaviour of the same kinds is in ``test_faults_socket.py``.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

import fakedriver
from fakedriver import FakeNetDriver
from fakedriver.core.faults import rule_from_dict

pytest_plugins = ["pytester"]

PLUGIN = "http://plugin"
NET = "n" * 64
EP = "e" * 64
EP2 = "f" * 64
CAPS = "NetworkDriver.GetCapabilities"  # a call that changes nothing: handy for schedules


@pytest.fixture
def fake() -> Iterator[FakeNetDriver]:
    """A fake with ``requests`` calls to ``PLUGIN`` routed to it."""
    with fakedriver.routed(url=PLUGIN) as routed:
        yield routed


@pytest.fixture
def pool(fake: FakeNetDriver) -> Iterator[ThreadPoolExecutor]:
    """Threads for calls that a fault holds; futures keep their exceptions for the test.
    Held calls are released at the end, so a failed test does not block its teardown."""
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor
        for rule in fake.faults.rules:
            rule.release()


def post(method: str, body: dict[str, Any] | None = None, **kwargs: Any) -> requests.Response:
    return requests.post(f"{PLUGIN}/{method}", json=body, **kwargs)


def create_network(nid: str = NET) -> dict[str, Any]:
    return {
        "NetworkID": nid,
        "Options": {"com.docker.network.generic": {}},
        "IPv4Data": [
            {"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24", "Gateway": "10.0.0.1/24"}
        ],
        "IPv6Data": [],
    }


def create_endpoint(eid: str = EP, address: str = "10.0.0.2/24") -> dict[str, Any]:
    return {
        "NetworkID": NET,
        "EndpointID": eid,
        "Options": {},
        "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""},
    }


def join(eid: str = EP) -> dict[str, Any]:
    return {"NetworkID": NET, "EndpointID": eid, "SandboxKey": "/var/run/netns/c1", "Options": {}}


def request_pool() -> dict[str, Any]:
    return {"AddressSpace": "LocalDefault", "Pool": "10.1.0.0/16", "Options": {}, "V6": False}


def with_endpoint(*eids: str) -> None:
    """A network with endpoints (``EP`` by default), made through the fake with no faults."""
    assert post("NetworkDriver.CreateNetwork", create_network()).json() == {}
    for n, eid in enumerate(eids or (EP,), start=2):
        assert post("NetworkDriver.CreateEndpoint", create_endpoint(eid, f"10.0.0.{n}/24")).ok


def errors(responses: list[requests.Response]) -> list[str | None]:
    """The error text of each answer (``None`` for a success)."""
    return [r.json().get("Err") for r in responses]


def not_json(response: requests.Response) -> bool:
    try:
        json.loads(response.content)
    except ValueError:
        return True
    return False


# -- what the client gets, kind by kind --------------------------------------------------------
def test_error_answers_200_with_the_subsystems_error_key(fake: FakeNetDriver) -> None:
    fake.fail("CreateNetwork", "no bridge")
    fake.fail("RequestPool", "no space")

    network = post("NetworkDriver.CreateNetwork", create_network())
    ipam = post("IpamDriver.RequestPool", request_pool())

    assert (network.status_code, network.content) == (200, b'{"Err":"no bridge"}\n')
    assert (ipam.status_code, ipam.content) == (200, b'{"Error":"no space"}\n')
    assert fake.state.networks == {} and fake.state.pools == {}  # neither was served
    first, second = fake.calls
    assert (first.error, first.fault) == ("no bridge", "error on NetworkDriver.CreateNetwork")
    assert (second.error, second.fault) == ("no space", "error on IpamDriver.RequestPool")


def test_wrong_key_puts_the_error_under_the_other_subsystems_key(fake: FakeNetDriver) -> None:
    """Docker reads those answers as successes (protocol.md §1.4.3)."""
    fake.fail("CreateNetwork", "lost", kind="wrong_key")
    fake.fail("RequestPool", "lost", kind="wrong_key")

    assert post("NetworkDriver.CreateNetwork", create_network()).json() == {"Error": "lost"}
    assert post("IpamDriver.RequestPool", request_pool()).json() == {"Err": "lost"}
    assert fake.state.networks == {} and fake.state.pools == {}
    assert [call.status for call in fake.calls] == [200, 200]


def test_status_answers_that_status_with_err_or_the_raw_body(fake: FakeNetDriver) -> None:
    fake.fail("CreateNetwork", "busy", status=503, times=1)
    fake.fail("RequestPool", "busy", status=500, times=1)
    fake.fail("Join", body="upstream died\n", status=502, times=1)

    network = post("NetworkDriver.CreateNetwork", create_network())
    # go-plugins-helpers style: {"Err": ...} on a non-200, for IPAM as well
    ipam = post("IpamDriver.RequestPool", request_pool())
    raw = post("NetworkDriver.Join", join())

    assert (network.status_code, network.content) == (503, b'{"Err":"busy"}\n')
    assert (ipam.status_code, ipam.content) == (500, b'{"Err":"busy"}\n')
    assert (raw.status_code, raw.content) == (502, b"upstream died\n")
    assert fake.state.networks == {} and fake.state.pools == {}
    assert [call.status for call in fake.calls] == [503, 500, 502]


def test_not_found_is_gos_default_404(fake: FakeNetDriver) -> None:
    fake.fail("ProgramExternalConnectivity", kind="not_found")

    response = post("NetworkDriver.ProgramExternalConnectivity", {**join(), "Options": {}})

    assert response.status_code == 404
    assert response.content == b"404 page not found\n"
    assert (fake.calls[0].status, fake.calls[0].error) == (404, "not_found")


def test_empty_body_is_a_200_with_no_bytes(fake: FakeNetDriver) -> None:
    fake.fail("CreateNetwork", kind="empty_body")

    response = post("NetworkDriver.CreateNetwork", create_network())

    assert (response.status_code, response.content) == (200, b"")
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    assert fake.state.networks == {}  # not served: Docker sees EOF, a failure
    assert fake.calls[0].error == "empty_body"


def test_invalid_json_is_a_200_with_a_body_that_is_not_json(fake: FakeNetDriver) -> None:
    fake.fail("CreateNetwork", kind="invalid_json")

    response = post("NetworkDriver.CreateNetwork", create_network())

    assert response.status_code == 200 and response.content
    assert not_json(response)
    assert fake.state.networks == {}
    assert fake.calls[0].error == "invalid_json"


def test_truncated_serves_the_call_and_cuts_its_answer(fake: FakeNetDriver) -> None:
    with_endpoint()
    fake.fail("CreateEndpoint", kind="truncated")

    response = post("NetworkDriver.CreateEndpoint", create_endpoint(EP2, "10.0.0.3/24"))

    full = json.dumps(fake.calls[-1].response, separators=(",", ":")).encode() + b"\n"
    assert fake.calls[-1].response["Interface"]["MacAddress"]  # the answer had content
    assert response.status_code == 200
    assert response.content == full[: len(full) // 2]
    assert not_json(response)
    assert EP2 in fake.state.endpoints  # the state changed all the same
    assert fake.calls[-1].ok and fake.calls[-1].fault == "truncated on NetworkDriver.CreateEndpoint"


def test_answer_is_merged_into_the_real_answer(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, kind="answer", answer={"Scope": "fake"})

    response = post(CAPS)

    assert response.json() == {"Scope": "fake", "ConnectivityScope": ""}
    assert fake.calls[0].response == {"Scope": "fake", "ConnectivityScope": ""}


def test_answer_can_return_an_address_docker_already_set(fake: FakeNetDriver) -> None:
    """Docker must reject this: "driver modified interface" (protocol.md §8.14)."""
    with_endpoint()
    fake.fail("CreateEndpoint", kind="answer", answer={"Interface": {"Address": "10.0.0.9/24"}})

    response = post("NetworkDriver.CreateEndpoint", create_endpoint(EP2, "10.0.0.3/24"))

    assert response.status_code == 200
    assert response.json()["Interface"]["Address"] == "10.0.0.9/24"
    assert str(fake.state.endpoints[EP2].address) == "10.0.0.3/24"  # served as asked
    assert fake.calls[-1].response == response.json()  # the journal shows what was sent


def test_answer_keeps_the_fields_it_does_not_name(fake: FakeNetDriver) -> None:
    """The fake assigns a MAC (persona ``assign_mac``) and answers it under ``Interface``;
    an injected ``Interface.Address`` should not make that MAC disappear from the answer,
    or the client never learns the MAC the fake recorded for the endpoint."""
    with_endpoint()
    fake.fail("CreateEndpoint", kind="answer", answer={"Interface": {"Address": "10.0.0.9/24"}})

    response = post("NetworkDriver.CreateEndpoint", create_endpoint(EP2, "10.0.0.3/24"))

    assigned = fake.state.endpoints[EP2].mac
    assert response.json() == {"Interface": {"MacAddress": assigned, "Address": "10.0.0.9/24"}}


def test_lost_reply_serves_the_call_but_answers_an_error(fake: FakeNetDriver) -> None:
    fake.fail("CreateNetwork", "timeout talking to the kernel", kind="lost_reply", times=1)

    first = post("NetworkDriver.CreateNetwork", create_network())
    retry = post("NetworkDriver.CreateNetwork", create_network())

    assert (first.status_code, first.json()) == (200, {"Err": "timeout talking to the kernel"})
    assert NET in fake.state.networks  # it happened all the same
    assert retry.json() == {"Err": f"network {NET} already exists"}  # so the retry is refused
    lost, refused = fake.calls
    assert (lost.error, lost.fault) == (
        "timeout talking to the kernel",
        "lost_reply on NetworkDriver.CreateNetwork",
    )
    assert refused.fault is None


def test_lost_reply_speaks_the_ipam_dialect(fake: FakeNetDriver) -> None:
    fake.fail("RequestPool", "gone", kind="lost_reply")

    assert post("IpamDriver.RequestPool", request_pool()).json() == {"Error": "gone"}
    assert list(fake.state.pools) == ["LocalDefault/10.1.0.0/16"]


def test_latency_passes_on_the_virtual_clock_without_waiting(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, kind="latency", seconds=45.0)
    start = time.monotonic()

    response = post(CAPS)

    assert time.monotonic() - start < 1.0
    assert fake.clock.now() == 45.0
    assert response.json() == {"Scope": "local", "ConnectivityScope": ""}
    assert fake.calls[0].ok and fake.calls[0].fault == f"latency on {CAPS}"


def test_latency_longer_than_the_clients_timeout_times_out(fake: FakeNetDriver) -> None:
    """A server 10 s slow makes a client with a 1 s read timeout give up, though the
    call is still served (the server did not know)."""
    fake.fail("CreateNetwork", kind="latency", seconds=10.0)

    with pytest.raises(requests.ReadTimeout):
        post("NetworkDriver.CreateNetwork", create_network(), timeout=1.0)

    assert fake.clock.now() == 1.0  # the client waited its timeout, not the latency
    assert NET in fake.state.networks
    call = fake.calls[0]
    assert call.error is not None
    assert call.error.startswith("no answer: client gave up after 1.0 s")


def test_a_call_the_client_gave_up_on_is_journaled_with_no_status(fake: FakeNetDriver) -> None:
    """``Call.status`` is "the HTTP status sent back": none was, whether the call hung
    (status 0 today) or was served too late for the client."""
    fake.fail(CAPS, kind="hang", nth=1)
    fake.fail(CAPS, kind="latency", seconds=10.0, nth=2)

    for _ in range(2):
        with pytest.raises(requests.ReadTimeout):
            post(CAPS, timeout=1.0)

    assert [call.status for call in fake.calls] == [0, 0]


def test_latency_within_the_clients_timeout_is_answered(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, kind="latency", seconds=0.5)

    assert post(CAPS, timeout=1.0).json()["Scope"] == "local"
    assert fake.clock.now() == 0.5


def test_hang_with_a_client_timeout_is_a_read_timeout(fake: FakeNetDriver) -> None:
    with_endpoint()
    fake.fail("Join", kind="hang")
    start = time.monotonic()

    with pytest.raises(requests.ReadTimeout):
        post("NetworkDriver.Join", join(), timeout=(3.0, 30.0))  # the read part counts

    assert time.monotonic() - start < 1.0
    assert fake.clock.now() == 30.0
    assert fake.state.endpoints[EP].join is None
    hung = fake.calls[-1]
    assert (hung.status, hung.error) == (0, "no answer: client gave up after 30.0 s")
    assert hung.fault == "hang on NetworkDriver.Join"


def test_hang_without_a_client_timeout_fails_at_once(fake: FakeNetDriver) -> None:
    """A client with no timeout would wait for ever on a hang (and the test with it):
    the call fails at once instead, journaled as not answered."""
    fake.fail(CAPS, kind="hang")
    start = time.monotonic()

    with pytest.raises(fakedriver.NeverAnswered, match="the client set no timeout"):
        post(CAPS)

    assert time.monotonic() - start < 1.0
    hung = fake.calls[0]
    assert hung.status == 0
    assert hung.error == "no answer: this call would never be answered: the client set no timeout"


def test_respond_says_a_hung_call_would_never_be_answered(fake: FakeNetDriver) -> None:
    """A transport of one's own gets the outcome on the reply, and the error the others
    raise for it; the call is journaled as not answered."""
    fake.fail(CAPS, kind="hang")

    reply = fake.respond(CAPS, b"")

    assert reply.outcome is fakedriver.Outcome.NEVER_ANSWERED
    assert (reply.status, reply.body, reply.drop, reply.timed_out) == (0, b"", "before", False)
    assert str(reply.never_answered()) == (
        f"{CAPS}: this call would never be answered: the client set no timeout "
        f"(and the 'hang on {CAPS}' rule holds it)"
    )
    assert reply.call is fake.calls[0] and reply.call.status == 0


def test_hang_on_a_wsgi_client_fails_at_once(fake: FakeNetDriver) -> None:
    from werkzeug.test import Client

    fake.fail(CAPS, kind="hang")

    with pytest.raises(fakedriver.NeverAnswered, match=f"{CAPS}: this call would never"):
        Client(fake).post(f"/{CAPS}")


def test_a_released_hang_answers_a_client_with_no_timeout(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, kind="hang").release()

    assert post(CAPS).json()["Scope"] == "local"
    assert fake.calls[0].ok


def test_hold_without_a_timeout_still_waits_until_released(
    fake: FakeNetDriver, pool: ThreadPoolExecutor
) -> None:
    gate = fake.hold(CAPS)

    pending = pool.submit(post, CAPS)
    assert gate.wait_held()
    time.sleep(0.05)
    assert not pending.done() and len(fake.calls) == 0
    gate.release()

    assert pending.result(timeout=5).json()["Scope"] == "local"
    assert fake.calls[0].ok


def test_a_hold_after_latency_waits_only_what_the_timeout_has_left(
    fake: FakeNetDriver, pool: ThreadPoolExecutor
) -> None:
    """The client waits its timeout in all: 100 s of latency (on the virtual clock), then
    what is left, in real time, for the release."""
    fake.fail(CAPS, kind="latency", seconds=100.0)
    fake.hold(CAPS)

    pending = pool.submit(post, CAPS, timeout=100.2)
    with pytest.raises(requests.ReadTimeout):
        pending.result(timeout=10)  # a hold of the whole 100.2 s fails here

    assert fake.calls[0].error == "no answer: client gave up after 100.2 s (held)"
    assert fake.clock.now() == 100.0


def test_drop_is_a_connection_error_and_the_call_is_not_served(fake: FakeNetDriver) -> None:
    fake.fail("CreateNetwork", kind="drop", times=1)

    with pytest.raises(requests.ConnectionError) as raised:
        post("NetworkDriver.CreateNetwork", create_network())

    assert not isinstance(raised.value, requests.Timeout)
    assert fake.state.networks == {}
    dropped = fake.calls[0]
    assert (dropped.status, dropped.error) == (0, "drop")
    assert dropped.fault == "drop on NetworkDriver.CreateNetwork"
    # Docker retries a dropped connection; the retry is served
    assert post("NetworkDriver.CreateNetwork", create_network()).json() == {}
    assert NET in fake.state.networks


def test_drop_mid_body_serves_the_call_then_breaks_the_answer(fake: FakeNetDriver) -> None:
    fake.fail("CreateNetwork", kind="drop_mid_body", times=1)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post("NetworkDriver.CreateNetwork", create_network())

    assert NET in fake.state.networks
    assert fake.calls[0].ok
    retry = post("NetworkDriver.CreateNetwork", create_network())
    assert retry.json() == {"Err": f"network {NET} already exists"}


# -- hold: forcing interleavings -----------------------------------------------------------------
def test_a_leave_can_overtake_a_held_join(fake: FakeNetDriver, pool: ThreadPoolExecutor) -> None:
    with_endpoint()
    rule = fake.hold("Join", EndpointID=EP)

    joining = pool.submit(post, "NetworkDriver.Join", join())
    assert rule.wait_held()
    leave = post("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": EP})
    rule.release()

    assert leave.json() == {"Err": f"endpoint {EP} is not joined to any sandbox"}
    assert joining.result(timeout=5).json()["InterfaceName"]["DstPrefix"] == "eth"
    assert fake.state.endpoints[EP].join is not None  # the Join landed last
    fake.calls.assert_sequence("Leave", "Join", contiguous=True)
    assert fake.calls[-1].fault == "hold on NetworkDriver.Join"


def test_two_create_networks_at_once(fake: FakeNetDriver, pool: ThreadPoolExecutor) -> None:
    rule = fake.hold("CreateNetwork")

    both: list[Future[requests.Response]] = [
        pool.submit(post, "NetworkDriver.CreateNetwork", create_network()) for _ in range(2)
    ]
    assert rule.wait_held(2)
    assert len(fake.calls) == 0  # both arrived, neither was served yet
    rule.release()

    answers = sorted(json.dumps(f.result(timeout=5).json()) for f in both)
    assert answers == sorted(["{}", json.dumps({"Err": f"network {NET} already exists"})])
    assert list(fake.state.networks) == [NET]


def test_hold_only_holds_the_matching_calls(fake: FakeNetDriver, pool: ThreadPoolExecutor) -> None:
    with_endpoint(EP, EP2)
    rule = fake.hold("Join", EndpointID=EP)

    held = pool.submit(post, "NetworkDriver.Join", join(EP))
    assert rule.wait_held()
    assert post("NetworkDriver.Join", join(EP2)).ok  # not held
    rule.release()

    assert held.result(timeout=5).status_code == 200
    assert [call.fault for call in fake.calls.of("Join")] == [None, "hold on NetworkDriver.Join"]


# -- schedules --------------------------------------------------------------------------------
def test_match_picks_the_calls_by_request_fields(fake: FakeNetDriver) -> None:
    with_endpoint(EP, EP2)
    fake.fail("Join", "netns gone", match={"EndpointID": EP2})

    answers = [post("NetworkDriver.Join", join(EP)), post("NetworkDriver.Join", join(EP2))]

    assert errors(answers) == [None, "netns gone"]
    assert fake.state.endpoints[EP].join is not None
    assert fake.state.endpoints[EP2].join is None


def test_match_compares_nested_fields_as_a_subset(fake: FakeNetDriver) -> None:
    with_endpoint()
    fake.fail("CreateEndpoint", "taken", match={"Interface": {"Address": "10.0.0.7/24"}})

    answers = [
        post("NetworkDriver.CreateEndpoint", create_endpoint("a" * 64, "10.0.0.6/24")),
        post("NetworkDriver.CreateEndpoint", create_endpoint("b" * 64, "10.0.0.7/24")),
    ]
    assert [a.json().get("Err") for a in answers] == [None, "taken"]


def test_nth_fires_on_that_call_only(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "second", nth=2)

    assert errors([post(CAPS) for _ in range(4)]) == [None, "second", None, None]


def test_times_fails_the_first_calls_then_recovers(fake: FakeNetDriver) -> None:
    rule = fake.fail(CAPS, "warming up", times=2)

    assert errors([post(CAPS) for _ in range(4)]) == ["warming up", "warming up", None, None]
    assert (rule.seen, rule.fired) == (4, 2)


def test_after_lets_the_first_calls_through_then_fires(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "worn out", after=2)

    assert errors([post(CAPS) for _ in range(4)]) == [None, None, "worn out", "worn out"]


def test_after_and_times_make_a_window(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "blip", after=1, times=2)

    assert errors([post(CAPS) for _ in range(5)]) == [None, "blip", "blip", None, None]


def test_every_fires_on_every_kth_call(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "flaky", every=3)

    got = errors([post(CAPS) for _ in range(7)])
    assert [n for n, error in enumerate(got, start=1) if error] == [3, 6]


def failures(seed: int, calls: int = 24) -> list[int]:
    """Which calls (from 1) a probability-0.5 rule fails, on a fake seeded ``seed``."""
    with fakedriver.routed(url=PLUGIN, seed=seed) as fake:
        fake.fail(CAPS, "coin", probability=0.5)
        got = errors([post(CAPS) for _ in range(calls)])
    return [n for n, error in enumerate(got, start=1) if error]


def test_probability_is_deterministic_for_a_seed() -> None:
    first, again, other = failures(7), failures(7), failures(8)

    assert first == again
    assert other != first
    assert 0 < len(first) < 24 and 0 < len(other) < 24  # a mix, not all or nothing


def test_a_random_fault_names_its_seed_in_the_journal() -> None:
    with fakedriver.routed(url=PLUGIN, seed=7) as fake:
        fake.fail(CAPS, "coin", probability=1.0)
        post(CAPS)
    assert fake.calls[0].fault == f"error on {CAPS} (p=1.0, seed 7)"


def test_reset_reseeds_the_probabilities(fake: FakeNetDriver) -> None:
    def run() -> list[str | None]:
        fake.fail(CAPS, "coin", probability=0.5)
        return errors([post(CAPS) for _ in range(16)])

    first = run()
    fake.reset()
    assert run() == first


def test_probability_zero_and_one(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "never", probability=0.0)
    fake.fail(CAPS, "always", probability=1.0)

    assert errors([post(CAPS) for _ in range(5)]) == ["always"] * 5


def test_phase_rules_fire_only_during_their_phase(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "outage", phase="outage")

    before = post(CAPS)
    fake.faults.phase = "outage"
    during = post(CAPS)
    fake.faults.phase = "recovery"
    other = post(CAPS)
    fake.faults.phase = None
    after = post(CAPS)

    assert errors([before, during, other, after]) == [None, "outage", None, None]


# -- composition ------------------------------------------------------------------------------
def test_latency_and_an_error_both_apply(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, kind="latency", seconds=2.5)
    fake.fail(CAPS, "slow and wrong")

    assert post(CAPS).json() == {"Err": "slow and wrong"}
    assert fake.clock.now() == 2.5
    assert fake.calls[0].fault == f"latency on {CAPS} + error on {CAPS}"


def test_every_latency_rule_adds_its_delay(fake: FakeNetDriver) -> None:
    fake.fail("*", kind="latency", seconds=1.0, name="network")
    fake.fail(CAPS, kind="latency", seconds=0.5, name="disk")

    assert post(CAPS).ok
    assert fake.clock.now() == 1.5
    assert fake.calls[0].fault == "network + disk"  # a rule's name replaces the default one


def test_of_two_outcome_rules_the_first_wins(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "first")
    fake.fail(CAPS, kind="drop")

    assert post(CAPS).json() == {"Err": "first"}
    assert fake.calls[0].fault == f"error on {CAPS}"


def test_a_preempted_rule_is_not_used_up(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "first", times=1)
    fake.fail(CAPS, "second", times=1)

    assert errors([post(CAPS) for _ in range(3)]) == ["first", "second", None]


def test_nth_counts_calls_that_another_rule_decided(fake: FakeNetDriver) -> None:
    """Fail the 1st call with a, the 2nd with b: ``nth=2`` means the 2nd matching call,
    also when the 1st was answered by an earlier rule."""
    fake.fail(CAPS, "a", times=1)
    fake.fail(CAPS, "b", nth=2)

    assert errors([post(CAPS) for _ in range(3)]) == ["a", "b", None]


# -- rules: one vocabulary, one inference, errors that say what to fix ----------------------
def test_fail_takes_message_as_toml_and_the_control_api_do(fake: FakeNetDriver) -> None:
    fake.fail("Leave", message="x")
    fake.fail(CAPS, "positional")

    assert [rule.message for rule in fake.faults.rules] == ["x", "positional"]
    assert rule_from_dict({"method": "Leave", "message": "x"}) == fake.faults.rules[0]


def test_fail_err_is_a_deprecated_alias_of_message(fake: FakeNetDriver) -> None:
    with pytest.warns(DeprecationWarning, match=r"fail\(err=...\) is deprecated: say message="):
        rule = fake.fail(CAPS, err="old")

    assert rule.message == "old"
    assert errors([post(CAPS)]) == ["old"]
    with pytest.raises(TypeError, match="not both"):
        fake.fail(CAPS, message="new", err="old")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "error", "status": 500}, "status"),
        ({"kind": "drop", "status": 503}, "status"),
        ({"kind": "error", "body": "text"}, "body"),
        ({"kind": "hang", "seconds": 2.0}, "seconds"),
        ({"kind": "error", "answer": {"Extra": 1}}, "answer"),
    ],
)
def test_a_field_the_kind_would_ignore_is_refused(
    fake: FakeNetDriver, fields: dict[str, Any], field: str
) -> None:
    """``fail("Join", status=500, kind="error")`` once answered 200 and listed status 500."""
    with pytest.raises(ValueError, match=f"{field}= is for '.+' rules, not '{fields['kind']}'"):
        fake.fail("Join", **fields)
    with pytest.raises(ValueError, match=f"{field}= is for"):
        rule_from_dict({"method": "Join", **fields})
    assert fake.faults.rules == []


def test_the_kind_is_inferred_in_one_place(fake: FakeNetDriver) -> None:
    """``Rule``, ``fail()``, TOML and the control API all infer ``status`` from a status."""
    assert fakedriver.Rule("Join", status=503).kind == "status"
    assert fake.fail("Join", status=503).kind == "status"
    assert rule_from_dict({"method": "Join", "status": 503}).kind == "status"
    assert fakedriver.Rule("Join").kind == "error" and fakedriver.Rule("Join").status is None
    assert fakedriver.Rule("Join", kind="status").status == 500


def test_an_error_rule_lists_no_status(fake: FakeNetDriver) -> None:
    from fakedriver.server.control import control

    fake.fail("Join", "boom")

    status, listed = control(fake, "GET", "/fakedriver/faults", b"")
    assert status == 200 and "status" not in listed["faults"][0]
    assert listed["faults"][0]["kind"] == "error"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"status": "500"}, "status must be int or None, not str '500'"),
        ({"kind": "latency", "seconds": "2"}, "seconds must be int or float, not str '2'"),
        ({"times": "1"}, "times must be int or None, not str '1'"),
        ({"match": "EndpointID"}, "match must be dict, not str 'EndpointID'"),
        ({"message": 3}, "message must be str, not int 3"),
        ({"probability": True}, "probability must be int or float or None, not bool True"),
    ],
)
def test_a_wrong_type_names_the_field_and_the_type_it_takes(
    fake: FakeNetDriver, tmp_path: Path, fields: dict[str, Any], says: str
) -> None:
    from fakedriver.server.control import control

    with pytest.raises(TypeError, match=re.escape(says)):
        fake.fail("Join", **fields)

    toml = tmp_path / "typed.toml"
    line = "\n".join(f"{key} = {json.dumps(value)}" for key, value in fields.items())
    toml.write_text(f'[[fault]]\nmethod = "Join"\n{line}\n')
    with pytest.raises(ValueError, match=re.escape(f"fault scenario {toml}: {says}")):
        fake.faults.load(str(toml))

    body = json.dumps({"method": "Join", **fields}).encode()
    assert control(fake, "POST", "/fakedriver/faults", body) == (
        400,
        {"Err": f"bad control request: {says}"},
    )
    assert fake.faults.rules == []


def test_a_misspelt_method_gets_a_did_you_mean_everywhere(
    fake: FakeNetDriver, tmp_path: Path
) -> None:
    from fakedriver.server.control import control

    hint = "'Jion' is not a method of either protocol; did you mean 'Join'?"
    with pytest.raises(ValueError, match=re.escape(hint)):
        fake.fail("Jion")
    toml = tmp_path / "typo.toml"
    toml.write_text('[[fault]]\nmethod = "Jion"\n')
    with pytest.raises(ValueError, match=re.escape(f"fault scenario {toml}: {hint}")):
        fake.faults.load(str(toml))
    body = json.dumps({"method": "Jion"}).encode()
    assert control(fake, "POST", "/fakedriver/faults", body) == (
        400,
        {"Err": f"bad control request: {hint}"},
    )


def test_assert_all_fired_names_the_rules_no_call_met(fake: FakeNetDriver) -> None:
    fake.fail(CAPS, "met")
    fake.fail("Join", "never", name="join-refused")
    fake.fail(CAPS, "preempted")  # seen, but the rule before it decided every call
    post(CAPS)

    with pytest.raises(AssertionError) as raised:
        fake.faults.assert_all_fired()

    assert str(raised.value) == (
        "2 fault rule(s) never fired:"
        "\n  join-refused: 0 matching call(s), never fired; no call of NetworkDriver.Join at all"
        f"\n  error on {CAPS}: 1 matching call(s), never fired"
    )
    fake.faults.clear()
    fake.faults.assert_all_fired()  # no rules: nothing to miss


def test_assert_all_fired_shows_each_idle_rules_match_and_its_nearest_miss(
    fake: FakeNetDriver,
) -> None:
    with_endpoint(EP, EP2)
    fake.fail("Join", "netns gone", match={"EndpointID": EP2, "SandboxKey": "/other"})
    fake.fail("*", "never", match={"PoolID": "p9"})
    post("NetworkDriver.Join", join(EP))
    post("NetworkDriver.Join", join(EP2))  # one field off: the nearest

    with pytest.raises(AssertionError) as raised:
        fake.faults.assert_all_fired()

    assert str(raised.value) == (
        "2 fault rule(s) never fired:"
        "\n  error on NetworkDriver.Join: 0 matching call(s), never fired; match "
        f"{{'EndpointID': '{EP2}', 'SandboxKey': '/other'}}; nearest miss: "
        "#4 NetworkDriver.Join: SandboxKey is '/var/run/netns/c1', wanted '/other'"
        "\n  error on *: 0 matching call(s), never fired; match {'PoolID': 'p9'}; "
        "nearest miss: #0 NetworkDriver.CreateNetwork: PoolID is missing, wanted 'p9'"
    )
    fake.reset()  # a fresh journal: the rule's method was not called there
    fake.fail("Join", "netns gone", match={"EndpointID": EP2})
    with pytest.raises(AssertionError, match=f"{EP2}'}}; no call of NetworkDriver.Join at all"):
        fake.faults.assert_all_fired()


@pytest.mark.parametrize(
    ("method", "match", "message"),
    [
        (
            "Join",
            {"EndpointId": EP},
            "match names 'EndpointId', which is not a request field of NetworkDriver.Join; "
            "did you mean 'EndpointID'? (its fields: NetworkID, EndpointID, SandboxKey, Options)",
        ),
        (
            "RequestPool",
            {"PoolID": "p1"},
            "match names 'PoolID', which is not a request field of IpamDriver.RequestPool; "
            "did you mean 'Pool'? (its fields: AddressSpace, Pool, SubPool, Options, V6)",
        ),
        (
            "Plugin.Activate",
            {"Implements": []},
            "match names 'Implements', which is not a request field of Plugin.Activate (its "
            "fields: none: it takes no arguments)",
        ),
        ("*", {"EndpointId": EP}, "not a request field of any method; did you mean 'EndpointID'"),
    ],
)
def test_a_match_on_a_field_the_request_does_not_have_is_refused(
    fake: FakeNetDriver, method: str, match: dict[str, Any], message: str
) -> None:
    """Such a rule could never fire: refused when made, not reported idle at teardown."""
    with pytest.raises(ValueError) as raised:
        fake.fail(method, "boom", match=match)
    assert str(raised.value) == message if method != "*" else message in str(raised.value)
    with pytest.raises(ValueError, match="match names"):
        rule_from_dict({"method": method, "match": match})  # a scenario file, the control API
    with pytest.raises(ValueError, match="match names"):
        fake.hold(method, **match)
    assert fake.faults.rules == []


def test_a_match_on_any_methods_field_is_taken_for_every_method(fake: FakeNetDriver) -> None:
    with_endpoint()
    rule = fake.fail("*", "boom", match={"EndpointID": EP})
    assert post("NetworkDriver.Join", join(EP)).json() == {"Err": "boom"}
    assert rule.fired == 1


# -- rules: validation and reset --------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "explode"}, "unknown fault kind 'explode'"),
        ({"kind": "error", "nth": 0}, "nth must be a whole number from 1, not 0"),
        ({"kind": "error", "times": -1}, "times must be a whole number from 1"),
        ({"kind": "error", "every": 0}, "every must be a whole number from 1"),
        ({"kind": "error", "after": -1}, "after must be a whole number from 0, not -1"),
        ({"kind": "error", "probability": 2}, "probability must be between 0 and 1, not 2"),
        ({"kind": "status", "status": 99}, "status must be from 200 to 599, .* not 99"),
        ({"kind": "status", "status": 600}, "status must be from 200 to 599, .* not 600"),
        # a 1xx, 204 or 304 answer has no body: the fault's body broke the connection's framing
        ({"kind": "status", "status": 100}, "other than 204 and 304 .*, not 100"),
        ({"kind": "status", "status": 101}, "other than 204 and 304 .*, not 101"),
        ({"status": 199}, "other than 204 and 304 .*, not 199"),
        ({"status": 204}, "other than 204 and 304 .*, not 204"),
        ({"status": 304, "body": ""}, "other than 204 and 304 .*, not 304"),
        ({"method": "Jion"}, "'Jion' is not a method of either protocol; did you mean 'Join'"),
        ({"method": "GetCapabilities"}, "'GetCapabilities' is ambiguous"),
        ({"kind": "error", "colour": "red"}, r"unknown fault field\(s\) \['colour'\]"),
    ],
)
def test_a_bad_rule_is_refused_and_nothing_is_added(
    fake: FakeNetDriver, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fake.faults.add(rule_from_dict(fields))
    assert fake.faults.rules == []


@pytest.mark.parametrize("status", [200, 205, 299, 404, 599])
def test_a_status_rule_takes_every_status_whose_answer_has_a_body(
    fake: FakeNetDriver, status: int
) -> None:
    fake.fail("CreateNetwork", "busy", status=status, times=1)
    answer = post("NetworkDriver.CreateNetwork", {"NetworkID": "n1"})
    assert (answer.status_code, answer.json()) == (status, {"Err": "busy"})


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "latency", "seconds": -1.0},
        {"kind": "error", "match": "EndpointID"},
        {"kind": "answer", "answer": ["Scope", "fake"]},
    ],
    ids=["negative-latency", "match-not-an-object", "answer-not-an-object"],
)
def test_a_rule_that_would_break_every_call_is_refused_when_made(
    fake: FakeNetDriver, fields: dict[str, Any]
) -> None:
    """Refused when it is made, not later at every call it applies to (where, on the
    socket, the call's connection is dropped unjournaled and the server logs a traceback)."""
    with pytest.raises((ValueError, TypeError)):
        rule_from_dict(fields)


def test_the_kind_defaults_to_error_or_to_status_when_a_status_is_given(
    fake: FakeNetDriver,
) -> None:
    assert fake.fail(CAPS).kind == "error"
    rule = fake.fail(CAPS, status=503)
    assert (rule.kind, rule.status, rule.message) == ("status", 503, "injected fault")
    # the same in a scenario file or a control API body
    assert rule_from_dict({"method": "Join"}).kind == "error"
    assert rule_from_dict({"method": "Join", "status": 502}).kind == "status"
    with pytest.raises(ValueError, match="status= is for 'status' rules, not 'drop' ones"):
        rule_from_dict({"kind": "drop", "status": 502})  # a drop sends no status


def test_reset_clears_the_rules_and_the_phase(fake: FakeNetDriver) -> None:
    fake.fail("*", "everything fails")
    fake.faults.phase = "outage"
    assert post(CAPS).json() == {"Err": "everything fails"}

    fake.reset()

    assert fake.faults.rules == [] and fake.faults.phase is None
    assert post(CAPS).ok and post(CAPS).json()["Scope"] == "local"
    assert [call.fault for call in fake.calls] == [None, None]


def test_reset_releases_held_calls(fake: FakeNetDriver, pool: ThreadPoolExecutor) -> None:
    """Like ``faults.clear()`` (and DELETE /fakedriver/faults), reset forgets the rules
    and must let the calls they hold go on, or they stay blocked for ever."""
    rule = fake.hold(CAPS)
    held = pool.submit(post, CAPS)
    assert rule.wait_held()

    fake.reset()

    try:
        assert held.result(timeout=2).status_code == 200
    finally:
        rule.release()  # do not leave the thread blocked if the assertion failed


# -- TOML scenarios ---------------------------------------------------------------------------
SCENARIO = f"""\
seed = 3
phase = "boot"

[[fault]]
method = "Join"
kind = "status"
status = 503
message = "busy"
times = 1
match = {{ EndpointID = "{EP2}" }}

[[fault]]
method = "NetworkDriver.GetCapabilities"
kind = "answer"
answer = {{ Scope = "fake" }}
phase = "boot"
name = "bad scope at boot"
"""


def test_a_scenario_file_adds_its_rules_seed_and_phase(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO)
    fake = FakeNetDriver()

    rules = fake.faults.load(str(path))

    assert [rule.name for rule in rules] == ["status on NetworkDriver.Join", "bad scope at boot"]
    assert (fake.faults.seed, fake.faults.phase) == (3, "boot")
    assert rules[0].match == {"EndpointID": EP2} and rules[0].status == 503


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed = \n", "Invalid value"),
        ("[[fault]]\nkind = 'explode'\n", "unknown fault kind 'explode'"),
        ("[[fault]]\nkind = 'error'\nnth = 0\n", "nth must be a whole number"),
        ("[[fault]]\nkid = 'error'\n", r"unknown fault field\(s\) \['kid'\]"),
        ("seeds = 3\n", r"unknown key\(s\) \['seeds'\]"),
        ("fault = 'error'\n", "a fault must be an object, not str"),
    ],
)
def test_a_bad_scenario_file_is_refused_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    fake = FakeNetDriver()

    with pytest.raises(ValueError, match=message) as raised:
        fake.faults.load(str(path))

    assert str(raised.value).startswith(f"fault scenario {path}: ")
    assert fake.faults.rules == []


def test_a_missing_scenario_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ValueError, match=f"^fault scenario {path}: .*No such file"):
        FakeNetDriver().faults.load(str(path))


def test_the_marker_loads_a_scenario_next_to_the_test(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", scenario=SCENARIO, broken="[[fault]]\nkind = 'explode'\n")
    pytester.makepyfile(
        textwrap.dedent(
            f"""
            import pytest, requests

            NET, EP, EP2 = {NET!r}, {EP!r}, {EP2!r}

            def call(fake, method, body=None):
                return requests.post(f"{{fake.url}}/{{method}}", json=body)

            @pytest.mark.fake_netdriver(faults="scenario.toml")
            def test_scenario(fake_netdriver):
                fake = fake_netdriver
                assert (fake.faults.seed, fake.faults.phase) == (3, "boot")
                caps = "NetworkDriver.GetCapabilities"
                assert call(fake, caps).json()["Scope"] == "fake"
                fake.faults.phase = None
                assert call(fake, caps).json()["Scope"] == "local"

                net = {{"NetworkID": NET, "Options": {{}},
                        "IPv4Data": [{{"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24"}}]}}
                assert call(fake, "NetworkDriver.CreateNetwork", net).json() == {{}}
                for n, eid in enumerate((EP, EP2), start=2):
                    body = {{"NetworkID": NET, "EndpointID": eid,
                             "Interface": {{"Address": f"10.0.0.{{n}}/24"}}}}
                    assert call(fake, "NetworkDriver.CreateEndpoint", body).ok
                def join(eid):
                    body = {{"NetworkID": NET, "EndpointID": eid, "SandboxKey": "/k"}}
                    return call(fake, "NetworkDriver.Join", body)
                assert join(EP).status_code == 200
                assert (join(EP2).status_code, join(EP2).status_code) == (503, 200)

            @pytest.mark.fake_netdriver(faults="scenario.toml")
            def test_only_the_first_fake_gets_the_scenario(fake_netdriver, fake_netdriver_factory):
                assert len(fake_netdriver.faults.rules) == 2
                second = fake_netdriver_factory()
                assert second.faults.rules == [] and second.faults.phase is None
                caps = "NetworkDriver.GetCapabilities"
                assert call(second, caps).json()["Scope"] == "local"

            @pytest.mark.fake_netdriver(faults="broken.toml")
            def test_broken(fake_netdriver):
                pass

            @pytest.mark.fake_netdriver(faults="missing.toml")
            def test_missing(fake_netdriver):
                pass
            """
        )
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_broken*",
            f"E * fault scenario {pytester.path}/broken.toml: unknown fault kind 'explode'*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_missing*",
            f"E * fault scenario {pytester.path}/missing.toml: *No such file*",
        ]
    )
