"""Concurrency: many threads hammering one ``FakeNetDriver`` over WSGI.

dockerd makes plugin calls concurrently (protocol.md §1.3), so the fake must serve them
one at a time without losing or doubling anything. Each thread uses its own
``werkzeug.test.Client``; the racy tests are re-run several times, as ``responses`` does
for its threading tests, and the interpreter's switch interval is shortened so that
threads really interleave.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.test import Client

from fakedriver import FakeNetDriver

THREADS = 8
RUNS = range(5)

SHARED_NET = "f" * 64
SHARED_SUBNET = "10.0.0.0/16"
SHARED_POOL = f"LocalDefault/{SHARED_SUBNET}"
GATEWAY_OPTIONS = {"RequestAddressType": "com.docker.network.gateway"}

Body = dict[str, Any]


@pytest.fixture(autouse=True)
def interleave() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, to shake out races."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


class Caller:
    """One thread's connection to the fake: its own client, and a count of its calls."""

    def __init__(self, fake: FakeNetDriver) -> None:
        self.client = Client(fake)
        self.calls = 0

    def post(self, method: str, body: Body | None = None) -> tuple[int, Body]:
        raw = b"" if body is None else json.dumps(body).encode() + b"\n"
        response = self.client.post(f"/{method}", data=raw)
        self.calls += 1
        answer = json.loads(response.get_data())
        assert isinstance(answer, dict), answer
        return response.status_code, answer

    def ok(self, method: str, body: Body | None = None) -> Body:
        status, answer = self.post(method, body)
        assert status == 200 and not answer.get(_key(method)), (method, body, answer)
        return answer

    def refused(self, method: str, body: Body, status: int = 200) -> str:
        got, answer = self.post(method, body)
        assert got == status and set(answer) == {_key(method)}, (method, body, answer)
        return str(answer[_key(method)])


def _key(method: str) -> str:
    return "Error" if method.startswith("IpamDriver.") else "Err"


def setup_shared(fake: FakeNetDriver) -> Caller:
    """Activate, and create the shared network on the shared IPAM pool, as docker would."""
    caller = Caller(fake)
    caller.ok("Plugin.Activate")
    pool = caller.ok("IpamDriver.RequestPool", {
        "AddressSpace": "LocalDefault", "Pool": SHARED_SUBNET, "SubPool": "", "Options": {},
        "V6": False,
    })
    assert pool["PoolID"] == SHARED_POOL
    gateway = caller.ok("IpamDriver.RequestAddress", {
        "PoolID": SHARED_POOL, "Address": "", "Options": GATEWAY_OPTIONS})["Address"]
    caller.ok("NetworkDriver.CreateNetwork", network_body(SHARED_NET, SHARED_SUBNET, gateway))
    return caller


def network_body(nid: str, subnet: str, gateway: str) -> Body:
    return {"NetworkID": nid, "Options": {"com.docker.network.generic": {}}, "IPv6Data": [],
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": subnet, "Gateway": gateway}]}


def hammer(threads: int, work: Callable[[int, threading.Barrier], Any]) -> list[Any]:
    """Run ``work(index, barrier)`` on ``threads`` threads; re-raise the first failure."""
    barrier = threading.Barrier(threads)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(work, index, barrier) for index in range(threads)]
        return [future.result(timeout=60) for future in futures]


def check_journal(fake: FakeNetDriver, calls: int) -> None:
    """Exactly one journal entry per call made, numbered in the order they were served."""
    assert len(fake.calls) == calls
    assert [call.index for call in fake.calls] == list(range(calls))


def replay_leases(fake: FakeNetDriver, pool_id: str) -> set[str]:
    """Walk the journal in the order the fake served it: an address is never handed out
    while it is held. Returns the addresses (bare IPs) held at the end."""
    held: set[str] = set()
    for call in fake.calls:
        if not call.ok or call.request is None or call.request.get("PoolID") != pool_id:
            continue
        if call.method == "IpamDriver.RequestAddress":
            ip = call.response["Address"].split("/")[0]
            assert ip not in held, f"call #{call.index} handed out {ip}, which is still held"
            held.add(ip)
        elif call.method == "IpamDriver.ReleaseAddress":
            held.remove(call.request["Address"])
    return held


def check_consistent(fake: FakeNetDriver) -> None:
    """Every endpoint is indexed in its network, and nothing points at what is gone."""
    state = fake.state
    for eid, endpoint in state.endpoints.items():
        network = state.networks[endpoint.network_id]
        assert network.endpoints[eid] is endpoint
        if endpoint.address is not None:
            assert network.addresses[endpoint.address.ip] == eid
        if endpoint.mac:
            assert network.macs[endpoint.mac] == eid
    for nid, network in state.networks.items():
        for eid, endpoint in network.endpoints.items():
            assert state.endpoints[eid] is endpoint and endpoint.network_id == nid
        assert set(network.addresses.values()) <= set(network.endpoints)
        assert set(network.macs.values()) <= set(network.endpoints)
    assert set(state.joins) <= set(state.endpoints)
    assert fake.violations == []


# -- IPAM: one pool, many requesters ----------------------------------------------------
DYNAMIC_PER_THREAD = 40
CONTESTED = [f"10.0.200.{host}" for host in range(1, 11)]


@pytest.mark.parametrize("execution_number", RUNS)
def test_request_address_never_hands_out_an_address_twice(execution_number: int) -> None:
    fake = FakeNetDriver()
    setup = setup_shared(fake)

    def work(index: int, barrier: threading.Barrier) -> tuple[Caller, list[str], list[str]]:
        caller, dynamic, won = Caller(fake), [], []
        barrier.wait()
        for round_ in range(DYNAMIC_PER_THREAD):
            body = {"PoolID": SHARED_POOL, "Address": "", "Options": None}
            dynamic.append(caller.ok("IpamDriver.RequestAddress", body)["Address"])
            if round_ < len(CONTESTED):  # every thread asks for the same addresses by name
                contested = CONTESTED[(round_ + index) % len(CONTESTED)]
                status, answer = caller.post("IpamDriver.RequestAddress", {
                    "PoolID": SHARED_POOL, "Address": contested, "Options": {}})
                assert status == 200, answer
                if "Error" in answer:
                    assert "already allocated" in answer["Error"], answer
                else:
                    assert answer["Address"] == f"{contested}/16"
                    won.append(contested)
        return caller, dynamic, won

    results = hammer(THREADS, work)

    dynamic = [address for _, got, _ in results for address in got]
    assert len(dynamic) == len(set(dynamic)) == THREADS * DYNAMIC_PER_THREAD
    won = sorted(address for _, _, got in results for address in got)
    assert won == sorted(CONTESTED), "each address asked for by name goes to exactly one thread"
    gateway = "10.0.0.1/16"
    leased = {gateway, *dynamic, *(f"{ip}/16" for ip in won)}
    assert len(leased) == 1 + len(dynamic) + len(won)
    assert set(fake.state.addresses[SHARED_POOL]) == leased
    check_journal(fake, setup.calls + sum(caller.calls for caller, _, _ in results))
    assert replay_leases(fake, SHARED_POOL) == {a.split("/")[0] for a in leased}


# -- the whole lifecycle, everywhere at once ----------------------------------------------
ROUNDS = 20


@dataclass
class Survivors:
    """What a thread leaves behind on purpose, to check the final state against."""

    endpoints: dict[str, tuple[str, str]] = field(default_factory=dict)  # eid -> (nid, ip)
    joins: dict[str, str] = field(default_factory=dict)  # eid -> sandbox key
    networks: set[str] = field(default_factory=set)


def lifecycle(
    fake: FakeNetDriver, index: int, barrier: threading.Barrier
) -> tuple[Caller, Survivors]:
    """One thread: containers coming and going on the shared network, and a network of its
    own created and removed every few rounds, all in docker's call order (protocol.md §5)."""
    caller, left = Caller(fake), Survivors()
    barrier.wait()
    for round_ in range(ROUNDS):
        eid = f"{index:02x}{round_:02x}".ljust(64, "e")
        sandbox = f"/var/run/docker/netns/{eid[:12]}"
        ids = {"NetworkID": SHARED_NET, "EndpointID": eid}
        address = caller.ok("IpamDriver.RequestAddress", {
            "PoolID": SHARED_POOL, "Address": "", "Options": None})["Address"]
        caller.ok("NetworkDriver.CreateEndpoint", {
            **ids, "Options": {},
            "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}})
        caller.ok("NetworkDriver.Join", {**ids, "SandboxKey": sandbox, "Options": {}})
        caller.ok("NetworkDriver.ProgramExternalConnectivity", {**ids, "Options": {}})
        caller.ok("NetworkDriver.EndpointOperInfo", ids)
        # A malformed call and an out-of-order one, refused without side effects.
        caller.refused("NetworkDriver.CreateEndpoint", {
            **ids, "Interface": {"Address": address.split("/")[0]}}, status=400)
        caller.refused("NetworkDriver.Join", {**ids, "SandboxKey": sandbox, "Options": {}})
        if round_ == ROUNDS - 1:  # the last container keeps running
            left.endpoints[eid] = (SHARED_NET, address)
            left.joins[eid] = sandbox
            break
        caller.ok("NetworkDriver.RevokeExternalConnectivity", ids)
        caller.ok("NetworkDriver.Leave", ids)
        if round_ == ROUNDS - 2:  # a stopped container that was never removed
            left.endpoints[eid] = (SHARED_NET, address)
            continue
        caller.ok("NetworkDriver.DeleteEndpoint", ids)
        caller.ok("IpamDriver.ReleaseAddress", {
            "PoolID": SHARED_POOL, "Address": address.split("/")[0]})
        if round_ % 4 == 0:
            own(caller, index, round_, left, keep=round_ == 12)
    return caller, left


def own(caller: Caller, index: int, round_: int, left: Survivors, keep: bool) -> None:
    """Create a network of this thread's own with one endpoint; remove it unless ``keep``."""
    nid = f"{index:02x}{round_:02x}".ljust(64, "a")
    eid = f"{index:02x}{round_:02x}".ljust(64, "b")
    subnet = ipaddress.ip_network(f"10.{100 + index}.{round_}.0/24")
    pool = caller.ok("IpamDriver.RequestPool", {
        "AddressSpace": "LocalDefault", "Pool": str(subnet), "SubPool": "", "Options": {},
        "V6": False})["PoolID"]
    gateway = caller.ok("IpamDriver.RequestAddress", {
        "PoolID": pool, "Address": "", "Options": GATEWAY_OPTIONS})["Address"]
    caller.ok("NetworkDriver.CreateNetwork", network_body(nid, str(subnet), gateway))
    address = caller.ok("IpamDriver.RequestAddress", {
        "PoolID": pool, "Address": "", "Options": None})["Address"]
    ids = {"NetworkID": nid, "EndpointID": eid}
    caller.ok("NetworkDriver.CreateEndpoint", {
        **ids, "Options": {}, "Interface": {"Address": address, "AddressIPv6": "",
                                            "MacAddress": ""}})
    if keep:
        left.networks.add(nid)
        left.endpoints[eid] = (nid, address)
        return
    caller.ok("NetworkDriver.DeleteEndpoint", ids)
    for ip in (address, gateway):
        caller.ok("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": ip.split("/")[0]})
    caller.ok("IpamDriver.ReleasePool", {"PoolID": pool})
    caller.ok("NetworkDriver.DeleteNetwork", {"NetworkID": nid})


@pytest.mark.parametrize("execution_number", RUNS)
def test_concurrent_lifecycles(execution_number: int) -> None:
    fake = FakeNetDriver()
    setup = setup_shared(fake)

    results = hammer(THREADS, lambda index, barrier: lifecycle(fake, index, barrier))

    callers = [caller for caller, _ in results]
    check_journal(fake, setup.calls + sum(caller.calls for caller in callers))
    check_consistent(fake)
    state = fake.state
    survivors: dict[str, tuple[str, str]] = {}
    joins: dict[str, str] = {}
    networks = {SHARED_NET}
    for _, left in results:
        survivors.update(left.endpoints)
        joins.update(left.joins)
        networks |= left.networks
    assert set(state.networks) == networks
    assert {eid: (ep.network_id, str(ep.address)) for eid, ep in state.endpoints.items()} == (
        survivors)
    assert {eid: join.sandbox_key for eid, join in state.joins.items()} == joins
    assert {eid for eid, ep in state.endpoints.items() if ep.connectivity is not None} == set(joins)
    # No orphans across the two subsystems: the shared pool holds the gateway and exactly
    # the addresses of the endpoints still on the shared network.
    on_shared = {ip for nid, ip in survivors.values() if nid == SHARED_NET}
    assert set(state.addresses[SHARED_POOL]) == {"10.0.0.1/16", *on_shared}
    assert replay_leases(fake, SHARED_POOL) == {ip.split("/")[0] for ip in
                                                state.addresses[SHARED_POOL]}
    kept_pools = {pid for pid in state.pools if pid != SHARED_POOL}
    assert len(kept_pools) == len(networks) - 1
