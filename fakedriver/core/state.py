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
from .records import Allocation, Endpoint, Join, Network, Node, Violation

__all__ = ["Allocation", "Endpoint", "Join", "Network", "Node", "State", "Violation"]


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
            "endpoints": {eid: e.to_dict() for eid, e in sorted(self.endpoints.items())},
            "allocations": {nid: a.to_dict() for nid, a in sorted(self.allocations.items())},
            "nodes": {address: n.to_dict() for address, n in sorted(self.nodes.items())},
            "pools": {pid: p.snapshot() for pid, p in sorted(self.pools.items())},
            "violations": [str(v) for v in self.violations],
            "epoch": self.epoch,
            "run": self.run,
            "links": sorted(self.links),
        }
