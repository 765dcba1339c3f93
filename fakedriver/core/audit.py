"""The leak audit: what a test left behind in the driver, and which call made it."""

from __future__ import annotations

from .journal import Journal
from .state import State


class LeakError(AssertionError):
    """Raised by ``FakeNetDriver.assert_clean()``; the message lists every leak."""

    def __init__(self, leaks: list[str]) -> None:
        super().__init__(
            f"the driver was left with {len(leaks)} leak(s):\n"
            + "".join(f"  - {x}\n" for x in leaks)
        )
        self.leaks = leaks


def leaks(state: State, calls: Journal) -> list[str]:
    """Every network, endpoint, join, swarm allocation, pool and address still held, and
    every recorded violation, each with the call that made it."""

    def origin(method: str, index: int, run: int) -> str:
        """The call that made a record. Its index is looked up in ``calls`` only when the
        record was made in this run of the state and the journal agrees on the method; a
        record loaded back from storage names its call from the journal of its own run."""
        if run == state.run and index < calls.first:
            return f"(call #{index} {method}, no longer in the bounded journal)"
        call = calls.at(index)
        if run == state.run and call is not None and call.method == method:
            return f"(call #{index} {method})"
        return f"(call #{index} {method}, in run {run} of the state, before it was reloaded)"

    nd, ipam = "NetworkDriver.", "IpamDriver."
    found = [
        f"network {nid} {origin(nd + 'CreateNetwork', n.call, n.run)}"
        for nid, n in state.networks.items()
    ]
    for eid, ep in state.endpoints.items():
        made = origin(nd + "CreateEndpoint", ep.call, ep.run)
        found.append(f"endpoint {eid} in network {ep.network_id} {made}")
        if ep.join is not None:
            joined = origin(nd + "Join", ep.join.call, ep.join.run)
            found.append(f"join of endpoint {eid} to sandbox {ep.join.sandbox_key} {joined}")
    found += [
        f"allocated network {nid} {origin(nd + 'AllocateNetwork', a.call, a.run)}"
        for nid, a in state.allocations.items()
    ]
    for pid, pool in state.pools.items():
        found.append(f"pool {pid} {origin(ipam + 'RequestPool', pool.call, pool.run)}")
        found += [
            f"address {pool.address_of(value)} ({lease.kind}) in pool {pid} "
            + origin(ipam + "RequestAddress", lease.call, lease.run)
            for value, lease in sorted(pool.leases.items())
        ]
    found += [f"violation: {v}" for v in state.violations]
    return found
