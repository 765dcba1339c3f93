"""The cluster's oracle: what no single driver can see, checked across the nodes.

Each node's driver judges only its own calls. The oracle keeps a small view of every
node (its networks, endpoint addresses, swarm allocations, pools, leases and discovered
peers), updated from each call's changes (``fakedriver.core.changes``): the records a
change names are read from the node's own state right after the call (under that node's
lock). It checks the rules a real swarm keeps between nodes
(``shared/dockerd/swarm-2node-transcript.txt``):

* an address is handed out once per global network, across all nodes;
* a node gets ``CreateNetwork`` before any endpoint on that network, and its pools and
  gateways are the ones the manager allocated (``AllocateNetwork``); a global-scope
  network that no node allocated is flagged;
* a node-side (local space) ``RequestAddress`` for an exact IP names one the global
  space handed out for that pool, when the cluster's IPAM holds the pool;
* ``FreeNetwork`` comes after every node deleted the network;
* with ``ConnectivityScope: "global"``, every member (known by its ``Self`` DiscoverNew)
  was told of every other member and of none that left (`Oracle.audit()`).

Findings are not refusals: the calls were answered as the single driver would.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core import changes as c
from ..core.changes import Change
from ..core.journal import Call
from ..core.persona import Persona
from ..core.state import State
from ..core.wire import IPAMData, IPNetwork

#: The one call checked by its request: it changes nothing when the node lacks the network.
CREATE_ENDPOINT = "NetworkDriver.CreateEndpoint"
#: The changes that move an endpoint's addresses in or out of `Oracle.holders`.
ENDPOINT_CHANGES = (c.EndpointCreated, c.EndpointRemoved)
#: An address held by more than one endpoint: ``(address, its holders)`` (see `Oracle.holders`).
Shared = tuple[bytes, tuple[tuple[str, str], ...]]
#: The pools and gateways of a network: ``(IPv4 pairs, IPv6 pairs)``, as text.
Layout = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


def layout(v4: list[IPAMData], v6: list[IPAMData]) -> Layout:
    """The pools and gateways of IPAM data, whatever their address space is called."""

    def pairs(data: list[IPAMData]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((str(d.pool), str(d.gateway or "")) for d in data))

    return pairs(v4), pairs(v6)


@dataclass
class NodeView:
    """What the oracle knows of one node, as of its last call."""

    networks: dict[str, Layout] = field(default_factory=dict)
    #: endpoint id -> (network id, its addresses as bytes: see `Oracle.holders`)
    endpoints: dict[str, tuple[str, tuple[bytes, ...]]] = field(default_factory=dict)
    allocations: dict[str, Layout] = field(default_factory=dict)
    #: pool id -> (address space, pool)
    pools: dict[str, tuple[str, IPNetwork]] = field(default_factory=dict)
    #: pool id -> leased addresses (integers)
    leases: dict[str, set[int]] = field(default_factory=dict)
    #: DiscoverNew: the node's own address (``Self``), and the peers it was told of.
    address: str | None = None
    peers: set[str] = field(default_factory=set)


class Oracle:
    """Checks the calls of every node of a cluster against each other.

    :param persona: the nodes' persona (address space names, scopes).
    :param nodes: the nodes' names, in order (the manager first): findings that name
        several nodes name them in this order, whichever was called first.
    """

    def __init__(self, persona: Persona, nodes: Iterable[str] = ()) -> None:
        self.persona = persona
        self.views: dict[str, NodeView] = {node: NodeView() for node in nodes}
        #: (network id, address) -> the (node, endpoint id) pairs holding it, oldest first
        #: (usually one: a tuple, where a set would be one more object a call makes and the
        #: garbage collector keeps walking). An address is its bytes (``packed``: 4 for IPv4,
        #: 16 for IPv6), hashed and compared in C, where an ``ipaddress`` object does so in
        #: Python, several times a call. A zone (``fe80::1%eth0``), which the bytes leave
        #: out, never comes from a call: the wire refuses it.
        self.holders: dict[tuple[str, bytes], tuple[tuple[str, str], ...]] = {}
        #: addresses whose node left: DiscoverDelete'd, by the node told of it
        self.left: dict[str, str] = {}

    def view(self, node: str) -> NodeView:
        view = self.views.get(node)  # not setdefault: that makes a NodeView every call
        if view is None:
            view = self.views[node] = NodeView()
        return view

    # -- calls ------------------------------------------------------------------------------
    def observe(
        self, node: str, state: State, call: Call, changes: Sequence[Change] = ()
    ) -> list[str]:
        """Update ``node``'s view from the records ``changes`` name, as its ``state`` has
        them after ``call``; return the findings."""
        found: list[str] = []
        if call.method == CREATE_ENDPOINT:  # it may change nothing
            body: dict[str, Any] = call.request if isinstance(call.request, dict) else {}
            nid = body.get("NetworkID")
            if isinstance(nid, str) and nid not in state.networks:
                found += self._endpoint_network(node, nid)
        for change in changes:
            if isinstance(change, ENDPOINT_CHANGES):  # the commonest, the shortest way
                shared = self._sync_endpoint(node, state, change.endpoint_id)
                if shared is not None and isinstance(change, c.EndpointCreated):
                    found += self._unique(node, state, call, change.endpoint_id, shared)
            else:
                found += self._apply(node, state, call, change)
        return found

    def _apply(self, node: str, state: State, call: Call, change: Change) -> list[str]:
        """Sync the view with the record ``change`` names (not an endpoint's: see
        `observe()`); the findings it brings."""
        if isinstance(change, c.NetworkChange):
            nid = change.network_id
            self._sync_network(node, state, nid)
            network = state.networks.get(nid)
            if isinstance(change, c.NetworkCreated) and network and network.call == call.index:
                return self._created(node, nid, layout(network.ipv4_data, network.ipv6_data))
        elif isinstance(change, c.AllocationChange):
            nid = change.network_id
            had = nid in self.view(node).allocations
            self._sync_allocation(node, state, nid)
            if isinstance(change, c.NetworkFreed) and had and nid not in state.allocations:
                return self._freed(node, nid)
        elif isinstance(change, c.PoolChange):
            self._sync_pool(node, state, change.pool_id)
        elif isinstance(change, c.LeaseChange):
            return self._address(node, state, call, change)
        elif isinstance(change, c.NodeChange) and call.ok:
            self._discovered(node, state, change)
        return []

    def _endpoint_network(self, node: str, nid: str) -> list[str]:
        """A CreateEndpoint on ``node`` for ``nid``, which ``node`` does not have."""
        holders = [n for n, v in self.views.items() if n != node and nid in v.networks]
        allocators = [n for n, v in self.views.items() if nid in v.allocations]
        if not holders and not allocators:
            return []  # unknown everywhere: the node's own driver says so
        where = f"{', '.join(holders)} has it" if holders else f"allocated on {allocators[0]}"
        return [
            f"CreateEndpoint on {node} for network {nid}, which {node} does not have "
            f"({where}): CreateNetwork must come first on every node"
        ]

    def _created(self, node: str, nid: str, got: Layout) -> list[str]:
        allocated = [(n, v.allocations[nid]) for n, v in self.views.items() if nid in v.allocations]
        if not allocated:
            if self.persona.scope != "global":
                return []
            return [
                f"CreateNetwork on {node} of global-scope network {nid}, which no node "
                "allocated (AllocateNetwork on the manager comes first)"
            ]
        manager, wanted = allocated[0]
        if got == wanted:
            return []
        return [
            f"CreateNetwork on {node} of network {nid} with pools/gateways {_show(got)}, "
            f"but {manager} allocated {_show(wanted)}"
        ]

    def _freed(self, node: str, nid: str) -> list[str]:
        holders = sorted(n for n, v in self.views.items() if nid in v.networks)
        if not holders:
            return []
        return [
            f"FreeNetwork of {nid} on {node} while {', '.join(holders)} still "
            f"{'has' if len(holders) == 1 else 'have'} it (DeleteNetwork on every node first)"
        ]

    def _unique(
        self, node: str, state: State, call: Call, eid: str, shared: list[Shared]
    ) -> list[str]:
        """An endpoint that ``call`` created holds addresses others hold: those on other nodes."""
        endpoint = state.endpoints.get(eid)
        if endpoint is None or endpoint.call != call.index:
            return []  # not this call's endpoint
        nid, found = endpoint.network_id, []
        for address, holders in shared:
            for other, their_id in sorted(holders):
                if other != node:
                    found.append(
                        f"address {ipaddress.ip_address(address)} of network {nid} handed out "
                        f"twice: endpoint {eid} on {node} and endpoint {their_id} on {other}"
                    )
        return found

    def _address(self, node: str, state: State, call: Call, change: c.LeaseChange) -> list[str]:
        pid, value = change.pool_id, change.value
        pool = state.pools.get(pid)
        leases = self.view(node).leases
        if pool is None or value not in pool.leases:
            leases.get(pid, set()).discard(value)
            return []
        leases.setdefault(pid, set()).add(value)
        exact = isinstance(change, c.LeaseClaimed) or (
            isinstance(change, c.LeaseTaken) and change.requested
        )
        if not call.ok or not exact or pool.address_space == self.persona.global_address_space:
            return []
        spaces = [
            (n, p)
            for n, v in self.views.items()
            for p, (s, net) in v.pools.items()
            if s == self.persona.global_address_space and net == pool.network
        ]
        if not spaces or any(value in self.views[n].leases.get(p, ()) for n, p in spaces):
            return []
        return [
            f"RequestAddress on {node} for {pool.address_of(value)} in its local pool "
            f"{pool.network}, which the global space ({self.persona.global_address_space}) "
            "never handed out"
        ]

    def _discovered(self, node: str, state: State, change: c.NodeChange) -> None:
        view = self.view(node)
        view.address = next((n.address for n in state.nodes.values() if n.self), None)
        view.peers = {n.address for n in state.nodes.values() if not n.self}
        if isinstance(change, c.NodeForgotten):
            self.left[change.address] = node
        elif (known := state.nodes.get(change.address)) is not None and known.self:
            self.left.pop(change.address, None)  # it joined (again)

    # -- syncing a view with its node's state ------------------------------------------------
    def _sync_network(self, node: str, state: State, nid: str) -> None:
        view, network = self.view(node), state.networks.get(nid)
        if network is None:
            view.networks.pop(nid, None)
            for eid in [e for e, (n, _) in view.endpoints.items() if n == nid]:
                self._sync_endpoint(node, state, eid)
        else:
            view.networks[nid] = layout(network.ipv4_data, network.ipv6_data)

    def _sync_allocation(self, node: str, state: State, nid: str) -> None:
        view, allocation = self.view(node), state.allocations.get(nid)
        if allocation is None:
            view.allocations.pop(nid, None)
        else:
            view.allocations[nid] = layout(allocation.ipv4_data, allocation.ipv6_data)

    def _sync_endpoint(self, node: str, state: State, eid: str) -> list[Shared] | None:
        """Index the addresses of endpoint ``eid`` as ``node`` has it now; those it shares
        with other endpoints (of any node), with their holders (``None`` when it shares none,
        the usual case)."""
        view, endpoint = self.views.get(node) or self.view(node), state.endpoints.get(eid)
        index, holder = self.holders, (node, eid)
        old = view.endpoints.pop(eid, None)
        if old is not None:
            nid = old[0]
            for address in old[1]:
                holders = index[nid, address]
                rest = () if holders == (holder,) else tuple(h for h in holders if h != holder)
                if rest:
                    index[nid, address] = rest
                else:
                    del index[nid, address]
        if endpoint is None:
            return None
        nid, v4, v6 = endpoint.network_id, endpoint.address, endpoint.address_v6
        if v4 is None:  # .packed is the address alone (.ip would make an address object)
            mine: tuple[bytes, ...] = () if v6 is None else (v6.packed,)
        else:
            mine = (v4.packed,) if v6 is None else (v4.packed, v6.packed)
        view.endpoints[eid] = (nid, mine)
        shared = None
        for address in mine:
            key = (nid, address)
            holders = index[key] = (*index.get(key, ()), holder)
            if len(holders) > 1:
                shared = [*(shared or ()), (address, holders)]
        return shared

    def _sync_pool(self, node: str, state: State, pid: str) -> None:
        view, pool = self.view(node), state.pools.get(pid)
        if pool is None:
            view.pools.pop(pid, None)
            view.leases.pop(pid, None)
        else:
            view.pools[pid] = (pool.address_space, pool.network)
            view.leases[pid] = set(pool.leases)

    # -- the audit ---------------------------------------------------------------------------
    def audit(self) -> list[str]:
        """What the nodes' discovery says now: with ConnectivityScope global, every member
        knows every other member, and no member still knows one that left."""
        scope = self.persona.connectivity_scope or self.persona.scope
        if scope != "global":
            return []
        members = {
            node: view.address
            for node, view in self.views.items()
            if view.address is not None and view.address not in self.left
        }
        found = []
        for node, view in self.views.items():
            if view.address is None and view.peers:
                found.append(f"{node} was told of peers but never of itself (Self DiscoverNew)")
        for node, address in members.items():
            peers = self.views[node].peers
            for other, theirs in members.items():
                if other != node and theirs not in peers:
                    found.append(
                        f"{node} ({address}) was never told of {other} ({theirs}) by DiscoverNew"
                    )
            for gone in sorted(peers & set(self.left)):
                found.append(
                    f"{node} ({address}) still knows {gone}, which left "
                    f"(DiscoverDelete on {self.left[gone]})"
                )
        return found


def _show(value: Layout) -> str:
    pairs = [f"{pool} gw {gateway or '-'}" for family in value for pool, gateway in family]
    return "[" + ", ".join(pairs) + "]"
