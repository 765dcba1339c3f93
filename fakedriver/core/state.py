"""What the fake remembers, and the one owner of it: `State`. Plain data and its
bookkeeping: no HTTP, no rules (those are in ``netdriver`` and ``ipam``).

``FakeNetDriver.state`` is a [`State`][fakedriver.State]. Read it freely in tests; change it only
through driver calls. Every record keeps ``call``, the journal index of the call that
made it, and ``run``, the run of the state it was made in (`State.run`), so leaks
can be traced to their origin even after the state was saved and loaded back.

Every change goes through a method of `State`, which keeps the networks' address and
MAC indexes and, while a call is served, logs a typed change (``changes``). The index
rule is one everywhere, live or loaded: an address (a MAC) belongs to the endpoint that
took it first, in creation order (`Endpoint.created`); when that endpoint goes, the
next-oldest holder (only a lenient driver lets two share one) takes it. `indexes()`
rebuilds a network's indexes from its endpoints alone, and gives exactly the live ones.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import changes as c
from .changes import Change
from .pool import Lease, Pool
from .records import Allocation, Endpoint, Join, Network, Node, Violation

__all__ = ["Allocation", "Endpoint", "Join", "Network", "Node", "State", "Violation", "indexes"]

#: A network's indexes: addresses, MACs, and the later holders of each (`Network`).
Indexes = tuple[dict[Any, str], dict[str, str], dict[Any, list[str]]]


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
    #: Where the changes go while a call is served (the driver sets it, and takes it back
    #: after); ``None``: not logged.
    log: list[Change] | None = field(default=None, repr=False, compare=False)
    #: Each (address space, IP version)'s pools as sorted (first address, last address,
    #: id) spans, which a pool is carved against (`pool_spans()`).
    _spans: dict[tuple[str, int], list[tuple[int, int, str]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    # -- reading ------------------------------------------------------------------------------
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

    def _said(self, change: Change) -> None:
        if self.log is not None:
            self.log.append(change)

    # -- networks and allocations -------------------------------------------------------------
    def add_network(self, network: Network) -> None:
        """Hold ``network`` (new, with no endpoints)."""
        self.networks[network.id] = network
        self._said(c.NetworkCreated(network.id))

    def remove_network(self, nid: str) -> Network:
        """Forget network ``nid``; its endpoints must be gone first."""
        network = self.networks[nid]
        if network.endpoints:
            raise ValueError(f"network {nid} still has endpoints")
        del self.networks[nid]
        self._said(c.NetworkRemoved(nid))
        return network

    def allocate(self, allocation: Allocation) -> None:
        self.allocations[allocation.network_id] = allocation
        self._said(c.NetworkAllocated(allocation.network_id))

    def free(self, nid: str) -> None:
        del self.allocations[nid]
        self._said(c.NetworkFreed(nid))

    # -- endpoints ----------------------------------------------------------------------------
    def add_endpoint(self, endpoint: Endpoint) -> None:
        """Hold ``endpoint`` in its network (which the state holds), and index its addresses
        and MAC: it owns those no older endpoint holds."""
        network = self.networks[endpoint.network_id]
        self.endpoints[endpoint.id] = network.endpoints[endpoint.id] = endpoint
        for ip in endpoint.ips:
            _index(network, network.addresses, ip, endpoint)
        if endpoint.mac:
            _index(network, network.macs, endpoint.mac, endpoint)
        self._said(c.EndpointCreated(endpoint.id))

    def remove_endpoint(self, eid: str) -> Endpoint:
        """Forget endpoint ``eid`` (a join it still has ends with it); the next-oldest
        holder of each of its addresses and its MAC, if any, owns it now."""
        endpoint = self.endpoints.pop(eid)
        network = self.networks[endpoint.network_id]
        del network.endpoints[eid]
        for ip in endpoint.ips:
            _unindex(network, network.addresses, ip, eid)
        if endpoint.mac:
            _unindex(network, network.macs, endpoint.mac, eid)
        joined = endpoint.join.sandbox_key if endpoint.join is not None else ""
        self._said(c.EndpointRemoved(eid, joined))
        return endpoint

    def join(self, eid: str, join: Join) -> None:
        self.endpoints[eid].join = join
        self._said(c.EndpointJoined(eid))

    def leave(self, eid: str) -> None:
        """End the endpoint's join, if any, and its external connectivity with it."""
        endpoint = self.endpoints[eid]
        endpoint.join = None
        endpoint.connectivity = None
        self._said(c.EndpointLeft(eid))

    def set_connectivity(self, eid: str, options: dict[str, Any] | None) -> None:
        """Program the endpoint's external connectivity with ``options`` (``None``: revoke)."""
        self.endpoints[eid].connectivity = options
        self._said(c.ConnectivityChanged(eid))

    def add_link(self, eid: str) -> None:
        """Record the intent to make the endpoint's host link (before it is made)."""
        self.links.add(eid)
        self._said(c.LinkAdded(eid))

    def drop_link(self, eid: str) -> None:
        """Record that the endpoint's host link is gone."""
        self.links.discard(eid)
        self._said(c.LinkDropped(eid))

    # -- discovery ----------------------------------------------------------------------------
    def discover(self, node: Node) -> None:
        """Hold ``node`` (in place of one at its address)."""
        self.nodes[node.address] = node
        self._said(c.NodeDiscovered(node.address))

    def forget(self, address: str) -> None:
        """The node at ``address`` left: hold it no more (whether it was held or not)."""
        self.nodes.pop(address, None)
        self._said(c.NodeForgotten(address))

    # -- IPAM ---------------------------------------------------------------------------------
    def pool_spans(self, space: str, version: int) -> list[tuple[int, int, str]]:
        """The pools of ``space`` and IP ``version`` as (first address, last address, id),
        as integers, sorted: read it, do not change it."""
        return self._spans.get((space, version), [])

    def add_pool(self, pool: Pool) -> None:
        """Hold ``pool`` (in place of one with its id) with the leases it has."""
        if pool.id not in self.pools:  # one id, one network: its span is there already
            bisect.insort(self._spans.setdefault(_space_of(pool), []), _span(pool))
        self.pools[pool.id] = pool
        self._said(c.PoolCreated(pool.id))

    def claim_pool(self, pid: str, epoch: int | None = None) -> None:
        """The pool is held in the daemon session ``epoch`` (by default, the current one)."""
        self.pools[pid].epoch = self.epoch if epoch is None else epoch
        self._said(c.PoolClaimed(pid))

    def remove_pool(self, pid: str) -> Pool:
        """Forget pool ``pid``, and its leases with it."""
        pool = self.pools.pop(pid)
        spans = self._spans[_space_of(pool)]
        del spans[bisect.bisect_left(spans, _span(pool))]
        self._said(c.PoolRemoved(pid))
        return pool

    def lease(self, pid: str, value: int, lease: Lease, *, requested: bool = False) -> None:
        """Lease the address ``value`` of pool ``pid`` (the caller checked it is free);
        ``requested``: it was asked for by name."""
        self.pools[pid].lease(value, lease)
        self._said(c.LeaseTaken(pid, value, requested))

    def claim_lease(self, pid: str, value: int, epoch: int | None = None) -> None:
        """The lease is held in the daemon session ``epoch`` (by default, the current one)."""
        self.pools[pid].leases[value].epoch = self.epoch if epoch is None else epoch
        self._said(c.LeaseClaimed(pid, value))

    def release(self, pid: str, value: int) -> None:
        self.pools[pid].release(value)
        self._said(c.LeaseReleased(pid, value))

    # -- the state as a whole -----------------------------------------------------------------
    def new_epoch(self) -> int:
        """Start a new daemon session; its number."""
        self.epoch += 1
        self._said(c.EpochStarted(self.epoch))
        return self.epoch

    def record_violation(self, violation: Violation) -> None:
        self.violations.append(violation)
        self._said(c.ViolationRecorded(len(self.violations) - 1))

    def set_counters(self, epoch: int, run: int) -> None:
        """Take ``epoch`` and ``run`` as they were saved (loading, or putting back)."""
        self.epoch, self.run = epoch, run

    def drop_violations(self, kept: int) -> None:
        """Keep the first ``kept`` violations only (putting back what was saved)."""
        del self.violations[kept:]

    def add_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        """`add_endpoint()` each, in creation order (loading: the state then holds them
        in the order the calls made them)."""
        for endpoint in sorted(endpoints, key=_created):
            self.add_endpoint(endpoint)


def _space_of(pool: Pool) -> tuple[str, int]:
    return pool.address_space, pool.network.version


def _span(pool: Pool) -> tuple[int, int, str]:
    net = pool.network
    return int(net.network_address), int(net.broadcast_address), pool.id


def _created(endpoint: Endpoint) -> tuple[int, int, str]:
    return endpoint.created


def _index(network: Network, index: dict[Any, str], key: Any, endpoint: Endpoint) -> None:
    """Index ``key`` (an address or a MAC) of ``endpoint``, by creation order."""
    owner = index.get(key)
    if owner is None:
        index[key] = endpoint.id
        return
    later = network.shared.setdefault(key, [])
    if endpoint.created < network.endpoints[owner].created:  # an older holder, put back
        index[key], endpoint = endpoint.id, network.endpoints[owner]
    at = bisect.bisect([network.endpoints[e].created for e in later], endpoint.created)
    later.insert(at, endpoint.id)


def _unindex(network: Network, index: dict[Any, str], key: Any, eid: str) -> None:
    """Take ``eid`` (gone from the network) out of the index of ``key``."""
    later = network.shared.get(key)
    if index.get(key) == eid:
        if later:
            index[key] = later.pop(0)
        else:
            del index[key]
    elif later is not None and eid in later:
        later.remove(eid)
    if later is not None and not later:
        del network.shared[key]


def indexes(network: Network) -> Indexes:
    """The indexes of ``network`` as its endpoints alone make them (what `State` keeps
    live: ``network.addresses``, ``network.macs``, ``network.shared``)."""
    addresses: dict[Any, str] = {}
    macs: dict[str, str] = {}
    shared: dict[Any, list[str]] = {}
    for endpoint in sorted(network.endpoints.values(), key=_created):
        keys: list[tuple[dict[Any, str], Any]] = [(addresses, ip) for ip in endpoint.ips]
        keys += [(macs, endpoint.mac)] if endpoint.mac else []
        for index, key in keys:
            if key in index:
                shared.setdefault(key, []).append(endpoint.id)
            else:
                index[key] = endpoint.id
    return addresses, macs, shared
