"""What the fake remembers. Plain data: no HTTP, no rules (those are in ``netdriver`` and
``ipam``).

``FakeNetDriver.state`` is a [`State`][fakedriver.State]. Read it freely in tests; change it only
through driver calls. Every record keeps ``call``, the journal index of the call that
made it, and ``run``, the run of the state it was made in (`State.run`), so leaks
can be traced to their origin even after the state was saved and loaded back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .pool import Pool
from .wire import IPAddress, IPAMData, IPInterface


@dataclass
class Join:
    """A sandbox join of one endpoint, with the answer the driver gave."""

    sandbox_key: str
    options: dict[str, Any]
    answer: dict[str, Any]
    call: int
    run: int = 0

    @property
    def src_name(self) -> str:
        return str(self.answer.get("InterfaceName", {}).get("SrcName", ""))


@dataclass
class Endpoint:
    id: str
    network_id: str
    address: IPInterface | None
    address_v6: IPInterface | None
    mac: str
    options: dict[str, Any]
    call: int
    mac_assigned: bool = False
    join: Join | None = None
    #: Options of the last ProgramExternalConnectivity, ``None`` when not programmed.
    connectivity: dict[str, Any] | None = None
    run: int = 0

    def snapshot(self) -> dict[str, Any]:
        join = self.join
        return {
            "network_id": self.network_id,
            "address": str(self.address or ""),
            "address_v6": str(self.address_v6 or ""),
            "mac": self.mac,
            "mac_assigned": self.mac_assigned,
            "options": self.options,
            "call": self.call,
            "run": self.run,
            "join": None
            if join is None
            else {
                "sandbox_key": join.sandbox_key,
                "options": join.options,
                "answer": join.answer,
                "call": join.call,
                "run": join.run,
            },
            "connectivity": self.connectivity,
        }


@dataclass
class Network:
    id: str
    options: dict[str, Any]
    ipv4_data: list[IPAMData]
    ipv6_data: list[IPAMData]
    call: int
    run: int = 0
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    #: Indexes of the endpoints' addresses and MACs, for conflict checks in O(1).
    addresses: dict[IPAddress, str] = field(default_factory=dict, repr=False)
    macs: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def internal(self) -> bool:
        return self.options.get("com.docker.network.internal") is True

    def snapshot(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "ipv4_data": [d.to_wire() for d in self.ipv4_data],
            "ipv6_data": [d.to_wire() for d in self.ipv6_data],
            "call": self.call,
            "run": self.run,
            "endpoints": sorted(self.endpoints),
        }


@dataclass
class Allocation:
    """A network allocated on a swarm manager (``AllocateNetwork``)."""

    network_id: str
    options: dict[str, str]
    ipv4_data: list[IPAMData]
    ipv6_data: list[IPAMData]
    call: int
    run: int = 0


@dataclass
class Node:
    """A node announced by ``DiscoverNew``."""

    address: str
    bind_address: str
    self: bool
    call: int
    run: int = 0


@dataclass(frozen=True)
class Violation:
    """A lifecycle rule a call broke, recorded (in non-strict mode) instead of refused."""

    call: int
    method: str
    message: str

    def __str__(self) -> str:
        return f"call #{self.call} {self.method}: {self.message}"


@dataclass
class State:
    """Everything the fake driver knows."""

    networks: dict[str, Network] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    allocations: dict[str, Allocation] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    #: Daemon sessions seen: each ``Plugin.Activate`` starts a new one.
    epoch: int = 0
    #: Runs of this state: 0 when new, one more each time it is loaded back from storage.
    #: A record's ``call`` indexes the journal of the run it was made in (its ``run``).
    run: int = 0
    #: Endpoints whose host link (veth pair) may exist: recorded *before* the link is made
    #: and dropped once it is removed, so a crash in between leaves a trace to clean up
    #: (see `fakedriver.server.veth.reconcile()`). A superset of the joins with a link.
    links: set[str] = field(default_factory=set)

    @property
    def joins(self) -> dict[str, Join]:
        """The current sandbox joins, by endpoint id."""
        return {eid: ep.join for eid, ep in self.endpoints.items() if ep.join is not None}

    @property
    def addresses(self) -> dict[str, list[str]]:
        """Allocated IPAM addresses (CIDR), by pool id."""
        return {
            pid: [f"{pool.address_of(v)}/{pool.network.prefixlen}" for v in sorted(pool.leases)]
            for pid, pool in self.pools.items()
        }

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of the whole state, with sorted keys where order is not meaning."""
        return {
            "networks": {nid: n.snapshot() for nid, n in sorted(self.networks.items())},
            "endpoints": {eid: e.snapshot() for eid, e in sorted(self.endpoints.items())},
            "allocations": {
                nid: {
                    "options": a.options,
                    "ipv4_data": [d.to_wire() for d in a.ipv4_data],
                    "ipv6_data": [d.to_wire() for d in a.ipv6_data],
                    "call": a.call,
                    "run": a.run,
                }
                for nid, a in sorted(self.allocations.items())
            },
            "nodes": {
                addr: {
                    "bind_address": n.bind_address,
                    "self": n.self,
                    "call": n.call,
                    "run": n.run,
                }
                for addr, n in sorted(self.nodes.items())
            },
            "pools": {pid: p.snapshot() for pid, p in sorted(self.pools.items())},
            "violations": [str(v) for v in self.violations],
            "epoch": self.epoch,
            "run": self.run,
            "links": sorted(self.links),
        }
