"""One IPAM pool and its address leases, with no table of free addresses.

A pool hands out the lowest free address of its range. It keeps only what is leased, a
high-water mark and a heap of the addresses released below that mark, so an untouched
``/8`` or ``/64`` costs the same as a ``/30``, and each allocation is ``O(log n)``.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ResourceError
from .wire import IPAddress, IPNetwork


@dataclass
class Lease:
    """An allocated address: what it is for, the MAC it was asked with, and its origin."""

    kind: str  # "gateway" (asked for with the gateway option) or "address"
    mac: str
    call: int
    epoch: int
    run: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The lease as plain data (its codec: see ``fakedriver.core.records``)."""
        return {
            "kind": self.kind,
            "mac": self.mac,
            "call": self.call,
            "epoch": self.epoch,
            "run": self.run,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lease:
        return cls(data["kind"], data["mac"], data["call"], data["epoch"], int(data.get("run", 0)))


@dataclass
class Pool:
    """An address pool, optionally with a sub-pool (``--ip-range``) for dynamic addresses."""

    id: str
    address_space: str
    network: IPNetwork
    sub_pool: IPNetwork | None
    options: dict[str, str]
    call: int
    epoch: int
    run: int = 0
    leases: dict[int, Lease] = field(default_factory=dict)
    _next: int = field(init=False, repr=False)
    _freed: list[int] = field(init=False, repr=False, default_factory=list)
    _in_range: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        self._lo, self._hi = self._bounds(self.network)
        if self.sub_pool is not None:
            self._lo = max(self._lo, int(self.sub_pool.network_address))
            self._hi = min(self._hi, int(self.sub_pool.broadcast_address))
        self._next = self._lo

    @property
    def v6(self) -> bool:
        """Whether this is an IPv6 pool."""
        return self.network.version == 6

    def _bounds(self, net: IPNetwork) -> tuple[int, int]:
        """The first and last usable address of ``net``: IPv4 keeps back the network and
        broadcast addresses, IPv6 the subnet-router anycast address (as Docker's IPAM does)."""
        lo, hi = int(net.network_address), int(net.broadcast_address)
        if net.version == 4 and net.prefixlen < 31:
            lo, hi = lo + 1, hi - 1
        elif net.version == 6 and net.prefixlen < 127:
            lo += 1
        return lo, hi

    @property
    def capacity(self) -> int:
        """How many addresses can be handed out dynamically."""
        return max(self._hi - self._lo + 1, 0)

    def address_of(self, value: int) -> IPAddress:
        """The address whose integer value is ``value``."""
        return self.network.network_address + (value - int(self.network.network_address))

    def check_specific(self, ip: IPAddress) -> int:
        """Where ``ip`` may be requested by name: anywhere usable in the whole pool."""
        if ip not in self.network:
            raise ResourceError(f"address {ip} is outside pool {self.network} ({self.id})")
        lo, hi = self._bounds(self.network)
        value = int(ip)
        if not lo <= value <= hi:
            raise ResourceError(f"address {ip} is reserved in pool {self.network}")
        return value

    def next_free(self) -> int:
        """The lowest free address of the dynamic range, without taking it."""
        if self._in_range >= self.capacity:
            raise ResourceError(f"no available addresses in pool {self.id}")
        while self._freed and self._freed[0] in self.leases:
            heapq.heappop(self._freed)
        if self._freed:
            return self._freed[0]
        value = self._next
        while value in self.leases:
            value += 1
        return value

    def lease(self, value: int, lease: Lease) -> None:
        """Record ``value`` as leased (the caller checked it is free)."""
        self.leases[value] = lease
        if self._lo <= value <= self._hi:
            self._in_range += 1
        if self._freed and self._freed[0] == value:
            heapq.heappop(self._freed)
        if value == self._next:
            while self._next in self.leases:
                self._next += 1

    def release(self, value: int) -> None:
        """Free the address whose integer value is ``value``."""
        del self.leases[value]
        if self._lo <= value <= self._hi:
            self._in_range -= 1
            if value < self._next:
                heapq.heappush(self._freed, value)

    def to_dict(self) -> dict[str, Any]:
        """The pool as plain data, without its leases (its codec: see
        ``fakedriver.core.records``)."""
        return {
            "address_space": self.address_space,
            "pool": str(self.network),
            "sub_pool": str(self.sub_pool) if self.sub_pool else "",
            "options": dict(self.options),
            "call": self.call,
            "epoch": self.epoch,
            "run": self.run,
        }

    @classmethod
    def from_dict(cls, pid: str, data: dict[str, Any]) -> Pool:
        sub = data["sub_pool"]
        return cls(
            pid,
            data["address_space"],
            ipaddress.ip_network(data["pool"]),
            ipaddress.ip_network(sub) if sub else None,
            data["options"],
            data["call"],
            data["epoch"],
            int(data.get("run", 0)),
        )

    def snapshot(self) -> dict[str, Any]:
        """The pool as plain data, with its leases by address (for the control API and the
        state file)."""
        return {
            "id": self.id,
            **self.to_dict(),
            "leases": {
                str(self.address_of(value)): lease.to_dict()
                for value, lease in sorted(self.leases.items())
            },
        }


def first_free(
    parent: IPNetwork, length: int, spans: Sequence[tuple[int, int, str]]
) -> IPNetwork | None:
    """The first ``/length`` subnet of ``parent`` that overlaps none of ``spans`` (first and
    last addresses as integers, sorted, as `State.pool_spans()` gives them); ``None`` when
    every one does. One walk over the spans: a span that ends before the candidate is
    passed, one that starts after it leaves it free, any other moves the candidate past it.
    """
    size = 1 << (parent.max_prefixlen - length)
    candidate, last = int(parent.network_address), int(parent.broadcast_address)
    for start, end, _ in spans:
        if end < candidate:
            continue
        if start > candidate + size - 1:
            break
        candidate = (end // size + 1) * size  # the next subnet after the span's end
        if candidate > last:
            return None
    return type(parent)((candidate, length))  # ::a.b.c.d is IPv6, not IPv4
