"""dockerd 28's options, honoured: an IPv6-only network (``enable_ipv4: false``),
``no_proxy_6to4`` and GwAllocCheck's skip answers, in-process, with requests shaped as
the 28.3.3 capture's (``fakedriver/conformance/data/scenario-rec-d28.jsonl``: the same keys, values
changed where the option says). What 28.5.2 sends for them, seen live, is in
``test_dockerd_options.py``; docs/dockerd.md says what the fake does with each."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support.wire import Wire
from test_dockerd_replay import D28, _capture, _method, go_json, load_steps

from fakedriver import FakeNetDriver
from fakedriver.conformance.rules import dockerd_rejects

NID, EID, EID2 = "a" * 64, "b" * 64, "c" * 64
ENABLE_IPV4 = "com.docker.network.enable_ipv4"
NO_PROXY = "com.docker.network.driver.private.no_proxy_6to4"
V6 = {"AddressSpace": "LocalDefault", "Gateway": "fd00:94::1/64", "Pool": "fd00:94::/64"}
V4 = {"AddressSpace": "LocalDefault", "Gateway": "10.94.0.1/24", "Pool": "10.94.0.0/24"}


def captured(step: int, method: str) -> dict[str, Any]:
    """The body of the first ``method`` call of ``step`` in the 28.3.3 capture."""
    steps = load_steps(_capture(D28))
    (found,) = [s for s in steps if s.number == step]
    body = next(r["body"] for r in found.calls if _method(r) == f"NetworkDriver.{method}")
    return copy.deepcopy(body)


def network(**options: Any) -> dict[str, Any]:
    """CreateNetwork as 28.3.3 sent it for ``--ipv6 --ipam-driver`` (step 8), with our ids,
    pools and ``options``."""
    body = captured(8, "CreateNetwork")
    body.update(NetworkID=NID, IPv4Data=[V4], IPv6Data=[V6])
    body["Options"].update(options)
    return body


def endpoint(eid: str, address: str, address_v6: str, nid: str = NID) -> dict[str, Any]:
    """CreateEndpoint as 28.3.3 sent it for ``network connect --ip --ip6`` (step 20)."""
    body = captured(20, "CreateEndpoint")
    body.update(NetworkID=nid, EndpointID=eid)
    body["Interface"].update(Address=address, AddressIPv6=address_v6)
    return body


def join(eid: str, nid: str = NID) -> dict[str, Any]:
    body = captured(20, "Join")
    body.update(NetworkID=nid, EndpointID=eid)
    return body


def program(eid: str, no_proxy: Any, nid: str = NID) -> dict[str, Any]:
    body = captured(20, "ProgramExternalConnectivity")
    body.update(NetworkID=nid, EndpointID=eid)
    body["Options"][NO_PROXY] = no_proxy
    return body


def accepted(wire: Wire, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """Call ``method`` with ``body`` as dockerd encodes it; the answer, which dockerd takes."""
    status, answer = wire.raw(f"NetworkDriver.{method}", go_json(body))
    assert status == 200 and not answer.get("Err"), answer
    assert dockerd_rejects(f"NetworkDriver.{method}", body, status, answer, "28") is None, answer
    return answer


def proxies(wire: Wire, eid: str, nid: str = NID) -> bool:
    info = accepted(wire, "EndpointOperInfo", {"NetworkID": nid, "EndpointID": eid})
    return bool(info["Value"]["Proxy6To4"])


# -- enable_ipv4: false ---------------------------------------------------------------------


def test_an_ipv6_only_network_gets_no_ipv4_and_no_ipv4_gateway() -> None:
    """What 28 sends for ``--ipv4=false --ipv6``: no IPv4Data, endpoints without an IPv4
    address; Join answers the IPv6 gateway only."""
    fake = FakeNetDriver()
    wire = Wire(fake)
    accepted(wire, "CreateNetwork", {**network(**{ENABLE_IPV4: False}), "IPv4Data": []})
    accepted(wire, "CreateEndpoint", endpoint(EID, "", "fd00:94::2/64"))
    answer = accepted(wire, "Join", join(EID))
    assert answer["GatewayIPv6"] == "fd00:94::1" and "Gateway" not in answer
    held = fake.state.endpoints[EID]
    assert held.address is None and str(held.address_v6) == "fd00:94::2/64"
    accepted(wire, "ProgramExternalConnectivity", program(EID, False))
    assert not proxies(wire, EID)  # nothing IPv4 to proxy to


def test_ipv4_disabled_contradicted_is_refused_and_changes_nothing() -> None:
    wire = Wire(FakeNetDriver())
    text = wire.refused("NetworkDriver.CreateNetwork", network(**{ENABLE_IPV4: False}), 400)
    assert "IPv4Data must be empty" in text and ENABLE_IPV4 in text
    text = wire.refused("NetworkDriver.CreateNetwork", network(**{ENABLE_IPV4: "false"}), 400)
    assert f"Options[{ENABLE_IPV4}] must be a boolean" in text
    accepted(wire, "CreateNetwork", {**network(**{ENABLE_IPV4: False}), "IPv4Data": []})
    text = wire.refused("NetworkDriver.CreateEndpoint", endpoint(EID, "10.94.0.2/24", ""))
    assert "IPv4 disabled" in text


@pytest.mark.parametrize("sent", [True, None], ids=["28", "before-28"])
def test_ipv4_enabled_or_not_said_is_a_dual_stack_network(sent: bool | None) -> None:
    """``true`` (28) and no key at all (20.10, 26.1) are the same network."""
    wire = Wire(FakeNetDriver())
    body = network()
    if sent is None:
        del body["Options"][ENABLE_IPV4]
    accepted(wire, "CreateNetwork", body)
    accepted(wire, "CreateEndpoint", endpoint(EID, "10.94.0.2/24", "fd00:94::2/64"))
    answer = accepted(wire, "Join", join(EID))
    assert (answer["Gateway"], answer["GatewayIPv6"]) == ("10.94.0.1", "fd00:94::1")


# -- no_proxy_6to4 -------------------------------------------------------------------------


def test_no_proxy_6to4_decides_whether_an_ipv4_only_endpoint_is_proxied() -> None:
    """An IPv4-only gateway endpoint is proxied from the host's IPv6 ports until 28 says
    another endpoint is the IPv6 gateway (it revokes and programs it again with
    ``no_proxy_6to4: true``); a dual-stack one never is."""
    wire = Wire(FakeNetDriver())
    accepted(wire, "CreateNetwork", network(**{ENABLE_IPV4: True}))
    accepted(wire, "CreateEndpoint", endpoint(EID, "10.94.0.2/24", ""))
    accepted(wire, "Join", join(EID))
    assert not proxies(wire, EID)  # not programmed yet
    accepted(wire, "ProgramExternalConnectivity", program(EID, False))
    assert proxies(wire, EID)
    accepted(wire, "RevokeExternalConnectivity", {"NetworkID": NID, "EndpointID": EID})
    accepted(wire, "ProgramExternalConnectivity", program(EID, True))
    assert not proxies(wire, EID)
    accepted(wire, "CreateEndpoint", endpoint(EID2, "10.94.0.3/24", "fd00:94::3/64"))
    accepted(wire, "Join", join(EID2))
    accepted(wire, "ProgramExternalConnectivity", program(EID2, False))
    assert not proxies(wire, EID2)


@pytest.mark.parametrize("value", ["true", 1, {}])
def test_no_proxy_6to4_must_be_a_boolean(value: Any) -> None:
    wire = Wire(FakeNetDriver())
    accepted(wire, "CreateNetwork", network())
    accepted(wire, "CreateEndpoint", endpoint(EID, "10.94.0.2/24", ""))
    accepted(wire, "Join", join(EID))
    text = wire.refused("NetworkDriver.ProgramExternalConnectivity", program(EID, value), 400)
    assert f"Options[{NO_PROXY}] must be a boolean" in text


# -- GwAllocCheck --------------------------------------------------------------------------


def gw_alloc_check(**options: Any) -> dict[str, Any]:
    """GwAllocCheck as 28 sends it: the Options CreateNetwork will carry."""
    return {"Options": network(**options)["Options"]}


@pytest.mark.parametrize(
    ("persona", "options", "skips"),
    [
        pytest.param({}, {}, (False, False), id="both-gateways"),
        pytest.param({"skip_ipv4": True}, {}, (True, False), id="persona-skip-ipv4"),
        pytest.param({"skip_ipv6": True}, {}, (False, True), id="persona-skip-ipv6"),
        pytest.param(
            {}, {"com.docker.network.internal": True}, (True, True), id="internal-network"
        ),
        pytest.param({"join_gateway": False}, {}, (True, True), id="no-join-gateway"),
    ],
)
def test_gw_alloc_check_skips_what_the_fake_would_never_answer(
    persona: dict[str, Any], options: dict[str, Any], skips: tuple[bool, bool]
) -> None:
    wire = Wire(FakeNetDriver(gw_alloc_checker=True, **persona))
    answer = accepted(wire, "GwAllocCheck", gw_alloc_check(**options))
    assert (answer["SkipIPv4"], answer["SkipIPv6"]) == skips


def test_a_skipped_gateway_is_not_answered_by_join() -> None:
    """After ``SkipIPv4``, 28 sends IPv4Data without a Gateway (seen live): Join answers
    the IPv6 gateway only, and the pool's first address may be an endpoint's."""
    wire = Wire(FakeNetDriver(gw_alloc_checker=True, skip_ipv4=True))
    accepted(wire, "GwAllocCheck", gw_alloc_check())
    body = network()
    body["IPv4Data"] = [{k: v for k, v in V4.items() if k != "Gateway"}]
    accepted(wire, "CreateNetwork", body)
    accepted(wire, "CreateEndpoint", endpoint(EID, "10.94.0.1/24", "fd00:94::2/64"))
    answer = accepted(wire, "Join", join(EID))
    assert "Gateway" not in answer and answer["GatewayIPv6"] == "fd00:94::1"


def test_gw_alloc_check_options_are_checked_as_create_networks() -> None:
    wire = Wire(FakeNetDriver(gw_alloc_checker=True))
    text = wire.refused("NetworkDriver.GwAllocCheck", gw_alloc_check(**{ENABLE_IPV4: 1}), 400)
    assert f"Options[{ENABLE_IPV4}] must be a boolean" in text
    body = gw_alloc_check(**{"com.docker.network.generic": "mtu=1400"})
    assert "must be an object" in wire.refused("NetworkDriver.GwAllocCheck", body, 400)
