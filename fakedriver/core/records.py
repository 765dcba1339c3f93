"""The records the state holds, each with its codec: ``to_dict()`` gives the record as
plain data (JSON types only), ``from_dict()`` makes it back. One codec serves the
snapshot (`State.snapshot()`), the rows of the ``--state`` database (a table's
columns are the codec's keys: ``persist.schema``) and the JSON state file of earlier
versions (``persist.jsonfile``).

``from_dict()`` builds, it does not judge: it parses addresses and IPAM data, and takes
every other value as it is (the database loader checks each row before, and what the
JSON loader lets through the database refuses at import). A ``run`` is read as a whole
number, 0 when missing: files written before runs were kept have none.

Records are changed only by `State`'s methods, which keep the indexes and say what
changed. Every record keeps ``call``, the journal index of the call that made it, and
``run``, the run of the state it was made in (`State.run`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from . import wire as w
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "sandbox_key": self.sandbox_key,
            "options": self.options,
            "answer": self.answer,
            "call": self.call,
            "run": self.run,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Join:
        return cls(data["sandbox_key"], data["options"], data["answer"], data["call"], _run(data))


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

    @property
    def created(self) -> tuple[int, int, str]:
        """Where the endpoint stands in creation order: its run, its call, its id."""
        return self.run, self.call, self.id

    @property
    def ips(self) -> tuple[IPAddress, ...]:
        """Its addresses without their prefix: IPv4 first."""
        return tuple(a.ip for a in (self.address, self.address_v6) if a is not None)

    def to_dict(self) -> dict[str, Any]:
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
            "join": None if join is None else join.to_dict(),
            "connectivity": self.connectivity,
        }

    @classmethod
    def from_dict(cls, eid: str, data: dict[str, Any]) -> Endpoint:
        join = data["join"]
        return cls(
            eid,
            data["network_id"],
            _interface(data["address"]),
            _interface(data["address_v6"]),
            data["mac"],
            data["options"],
            data["call"],
            data["mac_assigned"],
            None if join is None else Join.from_dict(join),
            data["connectivity"],
            _run(data),
        )

    snapshot = to_dict


@dataclass
class Network:
    id: str
    options: dict[str, Any]
    ipv4_data: list[IPAMData]
    ipv6_data: list[IPAMData]
    call: int
    run: int = 0
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    #: The indexes of the endpoints' addresses and MACs, for conflict checks in O(1): each
    #: address (MAC) to the endpoint that took it first, in creation order.
    addresses: dict[IPAddress, str] = field(default_factory=dict, repr=False)
    macs: dict[str, str] = field(default_factory=dict, repr=False)
    #: The later holders of an address or MAC, oldest first: only a lenient driver lets two
    #: endpoints share one. When the first goes, the next takes its place in the index.
    shared: dict[IPAddress | str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def internal(self) -> bool:
        return self.options.get("com.docker.network.internal") is True

    def to_dict(self) -> dict[str, Any]:
        return _allocated(self)

    @classmethod
    def from_dict(cls, nid: str, data: dict[str, Any]) -> Network:
        return cls(nid, data["options"], *_ipam(data), data["call"], _run(data))

    def snapshot(self) -> dict[str, Any]:
        """The record, and the ids of its endpoints."""
        return {**self.to_dict(), "endpoints": sorted(self.endpoints)}


@dataclass
class Allocation:
    """A network allocated on a swarm manager (``AllocateNetwork``)."""

    network_id: str
    options: dict[str, str]
    ipv4_data: list[IPAMData]
    ipv6_data: list[IPAMData]
    call: int
    run: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _allocated(self)

    @classmethod
    def from_dict(cls, nid: str, data: dict[str, Any]) -> Allocation:
        return cls(nid, data["options"], *_ipam(data), data["call"], _run(data))


def _allocated(record: Network | Allocation) -> dict[str, Any]:
    """The one codec of what a network and a swarm allocation share: options, IPAM data,
    and the call that made it."""
    return {
        "options": record.options,
        "ipv4_data": [d.to_wire() for d in record.ipv4_data],
        "ipv6_data": [d.to_wire() for d in record.ipv6_data],
        "call": record.call,
        "run": record.run,
    }


@dataclass
class Node:
    """A node announced by ``DiscoverNew``."""

    address: str
    bind_address: str
    self: bool
    call: int
    run: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "bind_address": self.bind_address,
            "self": self.self,
            "call": self.call,
            "run": self.run,
        }

    @classmethod
    def from_dict(cls, address: str, data: dict[str, Any]) -> Node:
        return cls(address, data["bind_address"], data["self"], data["call"], _run(data))


@dataclass(frozen=True)
class Violation:
    """A lifecycle rule a call broke, recorded (in non-strict mode) instead of refused."""

    call: int
    method: str
    message: str

    def __str__(self) -> str:
        return f"call #{self.call} {self.method}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"call": self.call, "method": self.method, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Violation:
        return cls(data["call"], data["method"], data["message"])

    @classmethod
    def parse(cls, text: str) -> Violation:
        """The inverse of ``str()`` (how the snapshot holds a violation)."""
        head, _, message = text.partition(": ")
        call, _, method = head.removeprefix("call #").partition(" ")
        return cls(int(call), method, message)


def _run(data: dict[str, Any]) -> int:
    return int(data.get("run", 0))


def _ipam(data: dict[str, Any]) -> tuple[list[IPAMData], list[IPAMData]]:
    return w.ipam_data(data, "ipv4_data", 4), w.ipam_data(data, "ipv6_data", 6)


def _interface(value: str) -> IPInterface | None:
    return ipaddress.ip_interface(value) if value else None
