"""The leak audit: what a test left behind in the driver, and which call made it."""

from __future__ import annotations

from collections.abc import Sequence

from ._journal import Call
from ._state import State


class LeakError(AssertionError):
    """Raised by ``FakeNetDriver.assert_clean()``; the message lists every leak."""

    def __init__(self, leaks: list[str]) -> None:
        super().__init__(
            f"the driver was left with {len(leaks)} leak(s):\n"
            + "".join(f"  - {x}\n" for x in leaks)
        )
        self.leaks = leaks


def leaks(state: State, calls: Sequence[Call]) -> list[str]:
    """Every network, endpoint, join, swarm allocation, pool and address still held, and
    every recorded violation, each with the call that made it."""

    def origin(index: int) -> str:
        method = calls[index].method if 0 <= index < len(calls) else "?"
        return f"(call #{index} {method})"

    found = [f"network {nid} {origin(n.call)}" for nid, n in state.networks.items()]
    for eid, ep in state.endpoints.items():
        found.append(f"endpoint {eid} in network {ep.network_id} {origin(ep.call)}")
        if ep.join is not None:
            found.append(
                f"join of endpoint {eid} to sandbox {ep.join.sandbox_key} {origin(ep.join.call)}"
            )
    found += [f"allocated network {nid} {origin(a.call)}" for nid, a in state.allocations.items()]
    for pid, pool in state.pools.items():
        found.append(f"pool {pid} {origin(pool.call)}")
        found += [
            f"address {pool.address_of(value)} ({lease.kind}) in pool {pid} {origin(lease.call)}"
            for value, lease in sorted(pool.leases.items())
        ]
    found += [f"violation: {v}" for v in state.violations]
    return found
