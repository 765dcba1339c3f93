"""NetworkDriver calls: every success path, and every lifecycle refusal with its text."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from support.wire import EP, NET, Wire, ids

from fakedriver import FakeNetDriver, Persona
from fakedriver.conformance.rules import dockerd_rejects


def test_capabilities_default_to_a_local_driver(wire: Wire) -> None:
    assert wire.ok("NetworkDriver.GetCapabilities") == {"Scope": "local", "ConnectivityScope": ""}


def test_capabilities_follow_the_persona() -> None:
    fake = FakeNetDriver(scope="global", connectivity_scope="global", gw_alloc_checker=True)
    assert Wire(fake).ok("NetworkDriver.GetCapabilities") == {
        "Scope": "global",
        "ConnectivityScope": "global",
        "GwAllocChecker": True,
    }


def test_create_network_remembers_options_and_ipam_data(wire: Wire, fake: FakeNetDriver) -> None:
    wire.network(v6=("fd00:1::/64", "fd00:1::1/64"), **{"com.docker.network.internal": True})
    network = fake.state.networks[NET]
    assert network.internal
    assert [str(d.pool) for d in network.ipv4_data] == ["10.0.0.0/24"]
    assert str(network.ipv6_data[0].gateway) == "fd00:1::1/64"
    assert network.call == 0


def test_create_network_accepts_aux_addresses_and_no_gateway(
    wire: Wire, fake: FakeNetDriver
) -> None:
    wire.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {},
            "IPv4Data": [
                {
                    "AddressSpace": "",
                    "Pool": "10.9.0.0/16",
                    "AuxAddresses": {"host1": "10.9.0.10/16", "odd": "<nil>"},
                }
            ],
            "IPv6Data": [],
        },
    )
    data = fake.state.networks[NET].ipv4_data[0]
    assert data.gateway is None
    assert str(data.aux_addresses["host1"]) == "10.9.0.10/16"
    assert data.aux_addresses["odd"] is None


def test_duplicate_network_is_refused(wire: Wire) -> None:
    wire.network()
    assert wire.refused("NetworkDriver.CreateNetwork", {"NetworkID": NET}) == (
        f"network {NET} already exists"
    )


def test_delete_network(wire: Wire, fake: FakeNetDriver) -> None:
    wire.network()
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert fake.state.networks == {}


def test_unknown_network_is_refused_everywhere(wire: Wire) -> None:
    message = f"network {NET} not found"
    assert wire.refused("NetworkDriver.DeleteNetwork", {"NetworkID": NET}) == message
    assert wire.refused("NetworkDriver.CreateEndpoint", ids()) == message
    for method in (
        "Join",
        "Leave",
        "DeleteEndpoint",
        "EndpointOperInfo",
        "ProgramExternalConnectivity",
        "RevokeExternalConnectivity",
    ):
        body = {**ids(), "SandboxKey": "/k"}
        assert wire.refused(f"NetworkDriver.{method}", body) == message


def test_network_with_endpoints_cannot_be_deleted(wire: Wire) -> None:
    wire.network()
    wire.endpoint()
    assert wire.refused("NetworkDriver.DeleteNetwork", {"NetworkID": NET}) == (
        f"network {NET} has active endpoints: {EP}"
    )


def test_create_endpoint_assigns_a_mac_when_none_is_given(wire: Wire, fake: FakeNetDriver) -> None:
    wire.network()
    answer = wire.endpoint(v6="")
    mac = answer["Interface"]["MacAddress"]
    assert mac.startswith("02:") and len(mac) == 17
    endpoint = fake.state.endpoints[EP]
    assert (str(endpoint.address), endpoint.mac, endpoint.mac_assigned) == (
        "10.0.0.2/24",
        mac,
        True,
    )
    assert fake.state.networks[NET].endpoints == {EP: endpoint}


def test_create_endpoint_keeps_a_given_mac_and_answers_nothing(
    wire: Wire, fake: FakeNetDriver
) -> None:
    wire.network()
    assert wire.endpoint(mac="02:42:AC:11:00:02") == {}
    assert fake.state.endpoints[EP].mac == "02:42:ac:11:00:02"


def test_mac_is_not_assigned_when_the_persona_says_so() -> None:
    wire = Wire(FakeNetDriver(assign_mac=False))
    wire.network()
    assert wire.endpoint() == {}


def test_endpoint_refusals(wire: Wire) -> None:
    wire.network(v6=("fd00:1::/64", "fd00:1::1/64"))
    wire.endpoint(mac="02:00:00:00:00:01")
    body = {"NetworkID": NET, "EndpointID": "other", "Interface": {"Address": "10.0.0.3/24"}}

    def create(**interface: str) -> str:
        return wire.refused("NetworkDriver.CreateEndpoint", {**body, "Interface": interface})

    assert wire.refused("NetworkDriver.CreateEndpoint", {**body, "EndpointID": EP}) == (
        f"endpoint {EP} already exists"
    )
    assert create(Address="10.1.0.3/24") == (
        f"address 10.1.0.3/24 is outside every pool of network {NET} (10.0.0.0/24)"
    )
    assert create(Address="10.0.0.2/24") == f"address 10.0.0.2 is in use by endpoint {EP}"
    assert create(Address="10.0.0.1/24") == "address 10.0.0.1 is the network's gateway"
    assert create(AddressIPv6="fd00:2::5/64").startswith("address fd00:2::5/64 is outside")
    assert create(MacAddress="02:00:00:00:00:01") == (
        f"MAC address 02:00:00:00:00:01 is in use by endpoint {EP}"
    )


def test_aux_addresses_are_reserved(wire: Wire) -> None:
    wire.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "IPv4Data": [
                {"AddressSpace": "", "Pool": "10.9.0.0/16", "AuxAddresses": {"db": "10.9.0.10/16"}}
            ],
        },
    )
    assert (
        wire.refused(
            "NetworkDriver.CreateEndpoint", {**ids(), "Interface": {"Address": "10.9.0.10/16"}}
        )
        == "address 10.9.0.10 is the network's aux address db"
    )


def test_delete_endpoint_frees_its_address_and_mac(wire: Wire, fake: FakeNetDriver) -> None:
    wire.network()
    wire.endpoint(mac="02:00:00:00:00:01")
    wire.ok("NetworkDriver.DeleteEndpoint", ids())
    assert fake.state.endpoints == {} and fake.state.networks[NET].endpoints == {}
    wire.endpoint(eid="again", mac="02:00:00:00:00:01")  # same address and MAC: free again


def test_unknown_endpoint_is_refused(wire: Wire) -> None:
    wire.network()
    for method in (
        "Join",
        "Leave",
        "DeleteEndpoint",
        "EndpointOperInfo",
        "ProgramExternalConnectivity",
    ):
        assert wire.refused(f"NetworkDriver.{method}", {**ids(), "SandboxKey": "/k"}) == (
            f"endpoint {EP} not found in network {NET}"
        )


def test_join_answers_gateways_and_records_the_sandbox(wire: Wire, fake: FakeNetDriver) -> None:
    wire.network(v6=("fd00:1::/64", "fd00:1::1/64"))
    wire.endpoint(v6="fd00:1::2/64")
    answer = wire.join(key="/var/run/docker/netns/5364ee04234e")
    assert answer == {
        "InterfaceName": {"SrcName": "", "DstPrefix": "eth"},
        "Gateway": "10.0.0.1",
        "GatewayIPv6": "fd00:1::1",
    }
    join = fake.state.joins[EP]
    assert (join.sandbox_key, join.answer, join.src_name) == (
        "/var/run/docker/netns/5364ee04234e",
        answer,
        "",
    )


def test_join_has_no_ipv6_gateway_for_an_ipv4_only_endpoint(wire: Wire) -> None:
    wire.network(v6=("fd00:1::/64", "fd00:1::1/64"))
    wire.endpoint()
    assert "GatewayIPv6" not in wire.join()


def test_join_on_an_internal_network_answers_no_gateway(wire: Wire) -> None:
    """dockerd's bridge driver gives an --internal network's containers no gateway, so no
    default route: CreateNetwork said ``com.docker.network.internal: true``."""
    wire.network(v6=("fd00:1::/64", "fd00:1::1/64"), **{"com.docker.network.internal": True})
    wire.endpoint(v6="fd00:1::2/64")
    assert wire.join() == {"InterfaceName": {"SrcName": "", "DstPrefix": "eth"}}
    wire.network("m" * 64, **{"com.docker.network.internal": False})  # only `true` is internal
    wire.endpoint("f" * 64, nid="m" * 64)
    assert wire.join("f" * 64, "m" * 64)["Gateway"] == "10.0.0.1"


def test_join_answer_follows_the_persona() -> None:
    route = {"Destination": "192.168.0.0/16", "RouteType": 0, "NextHop": "10.0.0.254"}
    persona = Persona(
        interface_prefix="veth",
        join_gateway=False,
        static_routes=(route,),
        disable_gateway_service=True,
    )
    wire = Wire(FakeNetDriver(persona))
    wire.network()
    wire.endpoint()
    assert wire.join() == {
        "InterfaceName": {"SrcName": "", "DstPrefix": "veth"},
        "StaticRoutes": [route],
        "DisableGatewayService": True,
    }


def test_join_refusals(wire: Wire) -> None:
    wire.network()
    wire.endpoint()
    assert wire.refused("NetworkDriver.Join", ids(), status=400) == (
        "invalid request: SandboxKey is required"
    )
    assert (
        wire.refused("NetworkDriver.Leave", ids()) == f"endpoint {EP} is not joined to any sandbox"
    )
    assert wire.refused("NetworkDriver.ProgramExternalConnectivity", ids()) == (
        f"endpoint {EP} is not joined to any sandbox"
    )
    wire.join(key="/k1")
    assert wire.refused("NetworkDriver.Join", {**ids(), "SandboxKey": "/k2"}) == (
        f"endpoint {EP} is already joined to sandbox /k1"
    )


def test_external_connectivity_is_programmed_and_revoked(wire: Wire, fake: FakeNetDriver) -> None:
    wire.network()
    wire.endpoint()
    wire.ok("NetworkDriver.RevokeExternalConnectivity", ids())  # never programmed: legal
    wire.join()
    options = {"com.docker.network.portmap": []}
    wire.ok("NetworkDriver.ProgramExternalConnectivity", {**ids(), "Options": options})
    assert fake.state.endpoints[EP].connectivity == options
    info = wire.ok("NetworkDriver.EndpointOperInfo", ids())["Value"]
    assert info["ExternalConnectivity"] is True
    wire.ok("NetworkDriver.RevokeExternalConnectivity", ids())
    assert fake.state.endpoints[EP].connectivity is None


def test_leave_ends_the_join_and_its_connectivity(wire: Wire, fake: FakeNetDriver) -> None:
    wire.network()
    wire.endpoint()
    wire.join()
    wire.ok("NetworkDriver.ProgramExternalConnectivity", ids())
    wire.ok("NetworkDriver.Leave", ids())
    endpoint = fake.state.endpoints[EP]
    assert endpoint.join is None and endpoint.connectivity is None
    wire.ok("NetworkDriver.DeleteEndpoint", ids())
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})


def test_endpoint_oper_info_describes_the_endpoint(wire: Wire) -> None:
    wire.network()
    mac = wire.endpoint()["Interface"]["MacAddress"]
    assert wire.ok("NetworkDriver.EndpointOperInfo", ids()) == {
        "Value": {
            "Address": "10.0.0.2/24",
            "AddressIPv6": "",
            "MacAddress": mac,
            "SandboxKey": "",
            "ExternalConnectivity": False,
            "Proxy6To4": False,
        }
    }


def test_allocate_and_free_network_on_a_global_driver() -> None:
    fake = FakeNetDriver(scope="global")
    wire = Wire(fake)
    body = {
        "NetworkID": NET,
        "Options": {"vni": "4097"},
        "IPv6Data": None,
        "IPv4Data": [{"AddressSpace": "", "Pool": "10.0.0.0/24", "Gateway": "10.0.0.1/24"}],
    }
    assert wire.ok("NetworkDriver.AllocateNetwork", body) == {"Options": {"vni": "4097"}}
    assert fake.state.allocations[NET].options == {"vni": "4097"}
    assert (
        wire.refused("NetworkDriver.AllocateNetwork", body) == f"network {NET} is already allocated"
    )
    wire.ok("NetworkDriver.FreeNetwork", {"NetworkID": NET})
    assert wire.refused("NetworkDriver.FreeNetwork", {"NetworkID": NET}) == (
        f"network {NET} is not allocated"
    )


def test_allocate_network_is_refused_by_a_local_driver(wire: Wire) -> None:
    assert wire.refused("NetworkDriver.AllocateNetwork", {"NetworkID": NET}) == (
        "AllocateNetwork is only for global-scope drivers; this one is local"
    )


def test_discovery_tracks_nodes(wire: Wire, fake: FakeNetDriver) -> None:
    node = {
        "DiscoveryType": 1,
        "DiscoveryData": {"Address": "10.0.0.5", "BindAddress": "", "Self": False},
    }
    wire.ok("NetworkDriver.DiscoverNew", node)
    assert fake.state.nodes["10.0.0.5"].self is False
    wire.ok("NetworkDriver.DiscoverNew", {"DiscoveryType": 3, "DiscoveryData": {"Key": "x"}})
    assert list(fake.state.nodes) == ["10.0.0.5"]  # other types never reach a driver: ignored
    wire.ok("NetworkDriver.DiscoverDelete", node)
    assert (
        wire.refused("NetworkDriver.DiscoverDelete", node) == "node 10.0.0.5 was never discovered"
    )


@pytest.mark.parametrize(
    ("sent", "same"),
    [("FD00::1", "fd00::1"), ("fd00:0::1", "FD00::0:1"), ("::FFFF:10.0.0.2", "::ffff:a00:2")],
)
def test_a_node_is_kept_and_keyed_by_its_canonical_address(
    wire: Wire, fake: FakeNetDriver, sent: str, same: str
) -> None:
    """Go compares parsed IPs: two spellings of one address are one node, held in the
    canonical text a state file holds (and the bind address too)."""
    canonical = str(ipaddress.ip_address(sent))
    data = {"Address": sent, "BindAddress": sent.swapcase(), "Self": True}
    wire.ok("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": data})
    assert list(fake.state.nodes) == [canonical]
    assert fake.state.nodes[canonical].bind_address == canonical
    gone = {"DiscoveryType": 1, "DiscoveryData": {"Address": same}}
    wire.ok("NetworkDriver.DiscoverDelete", gone)
    assert fake.state.nodes == {}


def test_gw_alloc_check_answers_the_persona_skips() -> None:
    wire = Wire(FakeNetDriver(gw_alloc_checker=True, skip_ipv4=True))
    assert wire.ok("NetworkDriver.GwAllocCheck", {"Options": {}}) == {
        "SkipIPv4": True,
        "SkipIPv6": False,
    }


def test_gw_alloc_check_without_the_capability_is_refused(wire: Wire) -> None:
    assert wire.refused("NetworkDriver.GwAllocCheck", {"Options": {}}) == (
        "GwAllocCheck called, but GwAllocChecker was not announced"
    )


@pytest.mark.parametrize(
    ("setup", "method", "body", "message"),
    [
        ([], "DeleteNetwork", {"NetworkID": NET}, f"network {NET} not found"),
        (["network"], "CreateNetwork", {"NetworkID": NET}, f"network {NET} already exists"),
        (
            ["network", "endpoint"],
            "DeleteNetwork",
            {"NetworkID": NET},
            f"network {NET} has active endpoints: {EP}",
        ),
        (["network", "endpoint"], "Leave", ids(), f"endpoint {EP} is not joined to any sandbox"),
        (
            ["network", "endpoint", "join"],
            "Join",
            {**ids(), "SandboxKey": "/k"},
            f"endpoint {EP} is already joined to sandbox /var/run/docker/netns/abc",
        ),
    ],
)
def test_lenient_mode_records_what_strict_mode_refuses(
    lenient: Wire, setup: list[str], method: str, body: dict[str, str], message: str
) -> None:
    for step in setup:
        getattr(lenient, step)()
    lenient.ok(f"NetworkDriver.{method}", body)
    [violation] = lenient.fake.violations
    assert (violation.method, violation.message) == (f"NetworkDriver.{method}", message)
    assert violation.call == len(lenient.fake.calls) - 1
    assert lenient.fake.calls[-1].violations == (message,)


def test_lenient_mode_tolerates_as_a_forgiving_driver_would(lenient: Wire) -> None:
    fake = lenient.fake
    lenient.network()
    lenient.endpoint()
    lenient.join()
    lenient.ok("NetworkDriver.Join", {**ids(), "SandboxKey": "/second"})
    assert fake.state.joins[EP].sandbox_key == "/second"  # the new join replaces the old
    lenient.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert fake.state.networks == {} and fake.state.endpoints == {}  # endpoints go with it
    lenient.ok("NetworkDriver.Leave", ids())  # unknown everything: nothing to do
    assert len(fake.violations) == 3


def test_malformed_input_is_refused_even_in_lenient_mode(lenient: Wire) -> None:
    message = lenient.refused("NetworkDriver.CreateNetwork", {"NetworkID": 5}, status=400)
    assert message == "invalid request: NetworkID must be a string, got number"
    assert lenient.fake.violations == []


# -- dockerd's rollbacks: DeleteEndpoint of a joined endpoint is an implicit Leave --------------
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_delete_endpoint_of_a_joined_endpoint_is_an_implicit_leave(strict: bool) -> None:
    """dockerd sends DeleteEndpoint with no Leave after a Join it saw fail though the driver
    served it, and after a failed Leave (README: dockerd's rollbacks). The driver leaves
    first, in both modes, and the journal says so."""
    fake = FakeNetDriver(strict=strict)
    wire = Wire(fake)
    wire.network()
    wire.endpoint()
    wire.join(key="/var/run/docker/netns/abc")
    wire.ok("NetworkDriver.ProgramExternalConnectivity", ids())
    wire.ok("NetworkDriver.DeleteEndpoint", ids())
    assert fake.state.endpoints == {} and fake.state.joins == {}
    assert fake.state.networks[NET].addresses == {} and fake.state.networks[NET].macs == {}
    [call] = fake.calls.of("DeleteEndpoint")
    assert call.notes == (
        f"implicit Leave: endpoint {EP} was still joined to sandbox /var/run/docker/netns/abc",
    )
    assert call.violations == () and fake.violations == []
    assert "(note: implicit Leave: endpoint" in fake.calls.format()
    assert "(note: implicit Leave: endpoint" in str(call)  # the server's text log line
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    fake.assert_clean()


def test_a_plain_delete_endpoint_has_no_note(wire: Wire, fake: FakeNetDriver) -> None:
    wire.network()
    wire.endpoint()
    wire.ok("NetworkDriver.DeleteEndpoint", ids())
    assert fake.calls[-1].notes == ()


JOIN = {**ids(), "SandboxKey": "/var/run/docker/netns/abc", "Options": {}}


@pytest.mark.parametrize("kind", ["lost_reply", "truncated", "drop_mid_body", "invalid_json"])
def test_after_a_lost_join_answer_dockerds_rollback_leaves_the_network_usable(kind: str) -> None:
    """The Join is served (or, for invalid_json, not) but dockerd cannot read the answer:
    it deletes the endpoint without Leave and hands the same address to the next container.
    The fake must take that endpoint, address and all, and the network must come out clean."""
    fake = FakeNetDriver()
    wire = Wire(fake)
    wire.network()
    wire.endpoint(address="10.0.0.2/24")
    fake.fail("Join", kind=kind, times=1)
    reply = fake.respond("/NetworkDriver.Join", json.dumps(JOIN).encode())
    received = reply.body[: len(reply.body) // 2] if reply.drop == "mid_body" else reply.body
    assert dockerd_rejects("NetworkDriver.Join", JOIN, reply.status, received) is not None
    assert (EP in fake.state.joins) == (kind != "invalid_json")  # served, answer unusable
    wire.ok("NetworkDriver.DeleteEndpoint", ids())  # dockerd's rollback: no Leave
    wire.endpoint("f" * 64, address="10.0.0.2/24")  # the same address, again
    wire.join("f" * 64)
    wire.ok("NetworkDriver.Leave", ids(eid="f" * 64))
    wire.ok("NetworkDriver.DeleteEndpoint", ids(eid="f" * 64))
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    fake.assert_clean()


def held_state(fake: FakeNetDriver) -> dict[str, Any]:
    """The whole state but the violations found so far."""
    return {k: v for k, v in fake.state.snapshot().items() if k != "violations"}


# -- lenient mode keeps its indexes true ----------------------------------------------------------
@pytest.mark.parametrize("shared", ["address", "mac"])
def test_lenient_delete_of_the_first_owner_hands_the_index_to_the_next(
    lenient: Wire, shared: str
) -> None:
    """Lenient mode: endpoints A and B share an address (or a MAC), A first. Deleting A
    must leave the address indexed to B, which still holds it: a third endpoint C taking it
    is a violation that names B."""
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    addresses = {a: "10.0.0.2/24", b: "10.0.0.3/24", c: "10.0.0.4/24"}
    macs = {a: "02:00:00:00:00:0a", b: "02:00:00:00:00:0b", c: "02:00:00:00:00:0c"}
    if shared == "address":
        addresses = dict.fromkeys(addresses, "10.0.0.2/24")
        message = f"address 10.0.0.2 is in use by endpoint {b}"
    else:
        macs = dict.fromkeys(macs, "02:00:00:00:00:0a")
        message = f"MAC address 02:00:00:00:00:0a is in use by endpoint {b}"
    lenient.network()
    for eid in (a, b):
        lenient.endpoint(eid, address=addresses[eid], mac=macs[eid])
    assert len(lenient.fake.violations) == 1  # B's duplicate of A's
    lenient.ok("NetworkDriver.DeleteEndpoint", ids(eid=a))
    assert lenient.fake.calls[-1].violations == ()
    lenient.endpoint(c, address=addresses[c], mac=macs[c])
    assert lenient.fake.calls[-1].violations == (message,)


def test_lenient_duplicate_create_network_keeps_the_network_held(lenient: Wire) -> None:
    """A second CreateNetwork of a held id is recorded, and the network stays as it was:
    its options, its pools, its endpoints and their address and MAC indexes."""
    fake = lenient.fake
    lenient.network(**{"com.docker.network.internal": True})
    lenient.endpoint(mac="02:00:00:00:00:01")
    held = fake.state.networks[NET]
    before = held_state(fake)
    lenient.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {"other": "options"},
            "IPv4Data": [{"AddressSpace": "", "Pool": "10.5.0.0/16", "Gateway": "10.5.0.1/16"}],
        },
    )
    assert fake.calls[-1].violations == (f"network {NET} already exists",)
    assert fake.state.networks[NET] is held
    assert held_state(fake) == before
    lenient.endpoint("f" * 64, address="10.0.0.2/24", mac="02:00:00:00:00:01")
    assert fake.calls[-1].violations == (
        f"address 10.0.0.2 is in use by endpoint {EP}",
        f"MAC address 02:00:00:00:00:01 is in use by endpoint {EP}",
    )


# -- Join's gateway --------------------------------------------------------------------------------
def test_join_answers_the_first_pools_gateway_for_an_address_in_no_pool_with_one(
    wire: Wire,
) -> None:
    """The endpoint's address lies in a pool with no gateway: Join answers the gateway of
    the first pool that has one (not the last)."""
    wire.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "IPv4Data": [
                {"AddressSpace": "", "Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24"},
                {"AddressSpace": "", "Pool": "10.2.0.0/24", "Gateway": "10.2.0.1/24"},
                {"AddressSpace": "", "Pool": "10.3.0.0/24"},
            ],
        },
    )
    wire.endpoint(address="10.3.0.5/24")
    assert wire.join()["Gateway"] == "10.1.0.1"
    wire.endpoint("f" * 64, address="10.2.0.5/24")  # in a pool with a gateway: that one
    assert wire.join("f" * 64)["Gateway"] == "10.2.0.1"
