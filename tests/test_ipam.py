"""IpamDriver calls: address spaces, pools, addresses, their refusals and the personas."""

from __future__ import annotations

from typing import Any

import pytest
from support.wire import Wire

from fakedriver import FakeNetDriver

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


def pool(
    wire: Wire, pool: str = "", sub: str = "", v6: bool = False, space: str = "LocalDefault"
) -> dict[str, Any]:
    return wire.ok(
        "IpamDriver.RequestPool",
        {
            "AddressSpace": space,
            "Pool": pool,
            "SubPool": sub,
            "Options": {},
            "V6": v6,
        },
    )


def address(wire: Wire, pool_id: str, ip: str = "", options: Any = None) -> str:
    answer = wire.ok(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": ip, "Options": options}
    )
    assert answer["Data"] == {}
    return str(answer["Address"])


def test_capabilities_and_address_spaces(wire: Wire) -> None:
    assert wire.ok("IpamDriver.GetCapabilities") == {
        "RequiresMACAddress": False,
        "RequiresRequestReplay": False,
    }
    assert wire.ok("IpamDriver.GetDefaultAddressSpaces") == {
        "LocalDefaultAddressSpace": "LocalDefault",
        "GlobalDefaultAddressSpace": "GlobalDefault",
    }


def test_address_spaces_follow_the_persona() -> None:
    wire = Wire(FakeNetDriver(local_address_space="RecLocal", requires_mac_address=True))
    assert wire.ok("IpamDriver.GetDefaultAddressSpaces")["LocalDefaultAddressSpace"] == "RecLocal"
    assert wire.ok("IpamDriver.GetCapabilities")["RequiresMACAddress"] is True
    pool(wire, space="RecLocal")


def test_pools_are_carved_from_the_defaults_without_overlap(wire: Wire) -> None:
    first, second = pool(wire), pool(wire)
    assert first == {"PoolID": "LocalDefault/10.200.0.0/24", "Pool": "10.200.0.0/24", "Data": {}}
    assert second["Pool"] == "10.200.1.0/24"
    assert pool(wire, v6=True)["Pool"] == "fd00:fa4e::/64"
    assert pool(wire, space="GlobalDefault")["Pool"] == "10.200.0.0/24"  # another space


def test_requested_pool_and_sub_pool(wire: Wire, fake: FakeNetDriver) -> None:
    answer = pool(wire, "10.93.0.0/24", "10.93.0.128/25")
    assert answer["PoolID"] == "LocalDefault/10.93.0.0/24/10.93.0.128/25"
    pid = answer["PoolID"]
    assert address(wire, pid, "10.93.0.1", GATEWAY) == "10.93.0.1/24"  # by name: anywhere
    assert address(wire, pid) == "10.93.0.128/24"  # dynamic: inside the sub-pool only
    assert fake.state.pools[pid].leases[int(fake.state.pools[pid].network[1])].kind == "gateway"
    assert fake.state.addresses == {pid: ["10.93.0.1/24", "10.93.0.128/24"]}


def test_ipv6_pool_and_addresses(wire: Wire) -> None:
    pid = pool(wire, "fd00:94::/64", v6=True)["PoolID"]
    assert address(wire, pid, options=GATEWAY) == "fd00:94::1/64"
    assert address(wire, pid, "fd00:94::50") == "fd00:94::50/64"
    assert address(wire, pid) == "fd00:94::2/64"


def test_pool_refusals(wire: Wire) -> None:
    pool(wire, "10.0.0.0/16")

    def request(status: int = 200, **body: Any) -> str:
        full = {"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "V6": False, **body}
        return wire.refused("IpamDriver.RequestPool", full, status)

    assert request(Pool="10.0.5.0/24") == (
        "pool 10.0.5.0/24 overlaps pool 10.0.0.0/16 (LocalDefault/10.0.0.0/16)"
    )
    assert request(AddressSpace="Nope") == (
        "unknown address space 'Nope'; known: LocalDefault, GlobalDefault"
    )
    assert request(400, Pool="10.1.0.0/16", SubPool="10.2.0.0/24") == (
        "invalid request: SubPool 10.2.0.0/24 is not inside Pool 10.1.0.0/16"
    )
    assert (
        request(400, Pool="10.1.0.1/16")
        == "invalid request: Pool: invalid CIDR network '10.1.0.1/16'"
    )
    assert request(400, Pool="10.1.0.0") == "invalid request: Pool: invalid CIDR network '10.1.0.0'"
    assert request(400, Pool="fd00::/64") == "invalid request: Pool: fd00::/64 is not an IPv4 value"
    assert request(400, AddressSpace="") == "invalid request: AddressSpace is required"


def test_release_pool(wire: Wire, fake: FakeNetDriver) -> None:
    pid = pool(wire)["PoolID"]
    address(wire, pid)
    wire.ok("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.200.0.1"})
    wire.ok("IpamDriver.ReleasePool", {"PoolID": pid})
    assert fake.state.pools == {}
    assert wire.refused("IpamDriver.ReleasePool", {"PoolID": pid}) == f"pool {pid} not found"
    assert pool(wire)["PoolID"] == pid  # the same pool can be had again


def test_a_pool_with_leased_addresses_is_not_released(wire: Wire) -> None:
    """dockerd releases the gateway and every address before the pool; a ReleasePool that
    comes first (swarm's ``network rm`` racing a task's release, seen under dockerd 20.10)
    leaves an address nobody will release. Refused, so the pool stays and the audit says so
    (dockerd only logs a ReleasePool error)."""
    pid = pool(wire, "10.0.0.0/24")["PoolID"]
    for _ in range(5):
        address(wire, pid)
    assert wire.refused("IpamDriver.ReleasePool", {"PoolID": pid}) == (
        f"pool {pid} still has leased addresses (10.0.0.1, 10.0.0.2, 10.0.0.3 and 2 more): "
        "dockerd releases every address of a pool before the pool"
    )
    assert list(wire.fake.state.pools) == [pid]
    assert any(pid in leak for leak in wire.fake.leaks())


def test_addresses_are_the_lowest_free_ones(wire: Wire) -> None:
    pid = pool(wire, "10.0.0.0/24")["PoolID"]
    assert [address(wire, pid) for _ in range(3)] == ["10.0.0.1/24", "10.0.0.2/24", "10.0.0.3/24"]
    wire.ok("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.0.0.2"})
    assert address(wire, pid, "10.0.0.9") == "10.0.0.9/24"
    assert address(wire, pid) == "10.0.0.2/24"
    assert address(wire, pid) == "10.0.0.4/24"


def test_address_refusals(wire: Wire) -> None:
    pid = pool(wire, "10.0.0.0/30")["PoolID"]
    address(wire, pid, "10.0.0.1")

    def request(ip: str, status: int = 200, pool_id: str = pid) -> str:
        return wire.refused("IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": ip}, status)

    assert request("10.0.0.1") == f"address 10.0.0.1 is already allocated in pool {pid}"
    assert request("10.0.1.1") == f"address 10.0.1.1 is outside pool 10.0.0.0/30 ({pid})"
    assert request("10.0.0.0") == "address 10.0.0.0 is reserved in pool 10.0.0.0/30"
    assert request("10.0.0.3") == "address 10.0.0.3 is reserved in pool 10.0.0.0/30"
    assert (
        request("10.0.0.2/30", 400) == "invalid request: Address: invalid IP address '10.0.0.2/30'"
    )
    assert request("fd00::1", 400) == "invalid request: Address: fd00::1 is not an IPv4 value"
    assert request("", pool_id="nope") == "pool nope not found"
    address(wire, pid)
    assert request("") == f"no available addresses in pool {pid}"


def test_release_address_refusals(wire: Wire) -> None:
    pid = pool(wire)["PoolID"]
    assert wire.refused("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.200.0.7"}) == (
        f"address 10.200.0.7 is not allocated in pool {pid}"
    )
    assert wire.refused("IpamDriver.ReleaseAddress", {"PoolID": "x", "Address": "10.0.0.7"}) == (
        "pool x not found"
    )
    assert (
        wire.refused("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.200.0.7/24"}, 400)
        == "invalid request: Address: invalid IP address '10.200.0.7/24'"
    )


def test_huge_pools_are_cheap(wire: Wire, fake: FakeNetDriver) -> None:
    v4 = pool(wire, "10.0.0.0/8")["PoolID"]
    v6 = pool(wire, "fd00:1::/64", v6=True)["PoolID"]
    assert fake.state.pools[v4].capacity == 2**24 - 2
    assert fake.state.pools[v6].capacity == 2**64 - 1
    assert address(wire, v6, "fd00:1::ffff:ffff:ffff:ffff") == "fd00:1::ffff:ffff:ffff:ffff/64"
    assert address(wire, v4) == "10.0.0.1/8"


def test_requires_mac_address_wants_the_mac_option() -> None:
    wire = Wire(FakeNetDriver(requires_mac_address=True))
    pid = pool(wire)["PoolID"]
    address(wire, pid, options=GATEWAY)  # the gateway has no MAC
    mac = {"com.docker.network.endpoint.macaddress": "02:42:0A:00:00:02"}
    address(wire, pid, options=mac)
    assert wire.fake.state.pools[pid].leases[int(wire.fake.state.pools[pid].network[2])].mac == (
        "02:42:0a:00:00:02"
    )
    assert wire.refused("IpamDriver.RequestAddress", {"PoolID": pid, "Address": ""}) == (
        "RequiresMACAddress is announced, but no com.docker.network.endpoint.macaddress option came"
    )


def test_request_replay_after_a_daemon_restart() -> None:
    wire = Wire(FakeNetDriver(requires_request_replay=True))
    wire.ok("Plugin.Activate")
    pid = pool(wire, "10.97.0.0/24")["PoolID"]
    address(wire, pid, "10.97.0.1", GATEWAY)
    address(wire, pid, "10.97.0.2")
    # the same daemon asking again is a conflict...
    assert wire.refused(
        "IpamDriver.RequestPool", {"AddressSpace": "LocalDefault", "Pool": "10.97.0.0/24"}
    ).startswith("pool")
    # ...but after a restart (a new activation) it replays what it held, once
    wire.ok("Plugin.Activate")
    assert pool(wire, "10.97.0.0/24")["PoolID"] == pid
    assert address(wire, pid, "10.97.0.1", GATEWAY) == "10.97.0.1/24"
    assert address(wire, pid, "10.97.0.2") == "10.97.0.2/24"
    assert wire.refused("IpamDriver.RequestAddress", {"PoolID": pid, "Address": "10.97.0.2"}) == (
        f"address 10.97.0.2 is already allocated in pool {pid}"
    )


def test_no_replay_without_the_capability(wire: Wire) -> None:
    wire.ok("Plugin.Activate")
    pid = pool(wire, "10.97.0.0/24")["PoolID"]
    address(wire, pid, "10.97.0.2")
    wire.ok("Plugin.Activate")
    assert wire.refused("IpamDriver.RequestAddress", {"PoolID": pid, "Address": "10.97.0.2"}) == (
        f"address 10.97.0.2 is already allocated in pool {pid}"
    )


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("ReleasePool", {"PoolID": "p"}, "pool p not found"),
        (
            "ReleaseAddress",
            {"PoolID": "LocalDefault/10.200.0.0/24", "Address": "10.200.0.9"},
            "address 10.200.0.9 is not allocated in pool LocalDefault/10.200.0.0/24",
        ),
        (
            "RequestPool",
            {"AddressSpace": "LocalDefault", "Pool": "10.200.0.0/16"},
            "pool 10.200.0.0/16 overlaps pool 10.200.0.0/24 (LocalDefault/10.200.0.0/24)",
        ),
    ],
)
def test_lenient_mode_records_ipam_violations(
    lenient: Wire, method: str, body: dict[str, Any], message: str
) -> None:
    pool(lenient)
    lenient.ok(f"IpamDriver.{method}", body)
    assert [v.message for v in lenient.fake.violations] == [message]


def test_lenient_mode_releases_a_pool_with_leases_and_records_it(lenient: Wire) -> None:
    pid = pool(lenient)["PoolID"]
    address(lenient, pid)
    lenient.ok("IpamDriver.ReleasePool", {"PoolID": pid})
    assert lenient.fake.state.pools == {}
    assert [v.message for v in lenient.fake.violations] == [
        f"pool {pid} still has leased addresses (10.200.0.1): dockerd releases every "
        "address of a pool before the pool"
    ]


def test_resource_errors_are_refused_even_in_lenient_mode(lenient: Wire) -> None:
    pid = pool(lenient, "10.0.0.0/30")["PoolID"]
    address(lenient, pid)
    address(lenient, pid)
    assert lenient.refused("IpamDriver.RequestAddress", {"PoolID": pid}) == (
        f"no available addresses in pool {pid}"
    )


def test_ipv4_point_to_point_pools_hand_out_every_address(wire: Wire) -> None:
    """A /31 has no network or broadcast address (RFC 3021): both its addresses are
    usable, and a /32 its only one, as in Docker's own IPAM (libnetwork's
    ``defaultipam.newPoolData`` reserves the first and last IPv4 address only in pools
    wider than a /31)."""
    p31 = pool(wire, "10.0.0.0/31")["PoolID"]
    assert wire.fake.state.pools[p31].capacity == 2
    assert [address(wire, p31) for _ in range(2)] == ["10.0.0.0/31", "10.0.0.1/31"]
    assert wire.refused("IpamDriver.RequestAddress", {"PoolID": p31}) == (
        f"no available addresses in pool {p31}"
    )
    wire.ok("IpamDriver.ReleaseAddress", {"PoolID": p31, "Address": "10.0.0.1"})
    assert address(wire, p31, "10.0.0.1") == "10.0.0.1/31"  # by name too
    p32 = pool(wire, "10.0.1.5/32")["PoolID"]
    assert address(wire, p32) == "10.0.1.5/32"
    wire.ok("IpamDriver.ReleaseAddress", {"PoolID": p32, "Address": "10.0.1.5"})
    assert address(wire, p32, "10.0.1.5") == "10.0.1.5/32"


def test_lenient_repeated_request_pool_keeps_the_pool_held(lenient: Wire) -> None:
    """A RequestPool of a pool already held (no replay) is recorded, and answers the held
    pool, its leases kept: nothing is replaced."""
    fake = lenient.fake
    pid = pool(lenient, "10.0.0.0/24")["PoolID"]
    address(lenient, pid, options=GATEWAY)
    address(lenient, pid)
    held = fake.state.pools[pid]
    before = fake.state.snapshot()["pools"]
    assert pool(lenient, "10.0.0.0/24") == {"PoolID": pid, "Pool": "10.0.0.0/24", "Data": {}}
    assert fake.calls[-1].violations == (f"pool 10.0.0.0/24 overlaps pool 10.0.0.0/24 ({pid})",)
    assert fake.state.pools[pid] is held
    assert fake.state.snapshot()["pools"] == before
    assert address(lenient, pid) == "10.0.0.3/24"  # the leases still count


def test_lenient_overlapping_request_pool_leaves_the_held_pool_alone(lenient: Wire) -> None:
    """An overlapping RequestPool of another pool is recorded and served; the pool already
    held stays as it was, leases and all."""
    fake = lenient.fake
    pid = pool(lenient, "10.0.0.0/24")["PoolID"]
    address(lenient, pid)
    before = fake.state.pools[pid].snapshot()
    wider = pool(lenient, "10.0.0.0/16")["PoolID"]
    assert fake.calls[-1].violations == (f"pool 10.0.0.0/16 overlaps pool 10.0.0.0/24 ({pid})",)
    assert fake.state.pools[pid].snapshot() == before
    assert sorted(fake.state.pools) == sorted([pid, wider])
    assert address(lenient, pid) == "10.0.0.2/24"
