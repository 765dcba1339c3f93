"""What a call changed, as typed values: each `State` method that changes a record says
so with one of these (while a call is served: see `State.log`).

A change names its record (`Change.record`: the table and key ``--state`` keeps it
under) and says what happened to it; it holds no copy of the record, so a subscriber reads
the record as the state has it after the call. The subscribers: the driver hands a call's
changes to the store (which commits exactly those records, and puts exactly those back
when the commit fails) and takes the journal's notes from them (`Change.note`); the
cluster's oracle updates its view of the node from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

#: A record of the state: ``(table, key)``, as ``--state`` keeps it (``("endpoints", id)``).
Key = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """Something a call did to the state."""

    #: The table of the records of this kind.
    table: ClassVar[str] = ""

    @property
    def key(self) -> Any:
        """The record's key in its table."""
        raise NotImplementedError

    @property
    def record(self) -> Key:
        """The record changed: ``(table, key)``."""
        return self.table, self.key

    @property
    def note(self) -> str | None:
        """What the change did beyond what the call's name says, for the journal."""
        return None


# -- networks and allocations -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NetworkChange(Change):
    table: ClassVar[str] = "networks"
    network_id: str

    @property
    def key(self) -> str:
        return self.network_id


@dataclass(frozen=True, slots=True)
class NetworkCreated(NetworkChange):
    pass


@dataclass(frozen=True, slots=True)
class NetworkRemoved(NetworkChange):
    pass


@dataclass(frozen=True, slots=True)
class AllocationChange(Change):
    table: ClassVar[str] = "allocations"
    network_id: str

    @property
    def key(self) -> str:
        return self.network_id


@dataclass(frozen=True, slots=True)
class NetworkAllocated(AllocationChange):
    pass


@dataclass(frozen=True, slots=True)
class NetworkFreed(AllocationChange):
    pass


# -- endpoints ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EndpointChange(Change):
    table: ClassVar[str] = "endpoints"
    endpoint_id: str

    @property
    def key(self) -> str:
        return self.endpoint_id


@dataclass(frozen=True, slots=True)
class EndpointCreated(EndpointChange):
    pass


@dataclass(frozen=True, slots=True)
class EndpointRemoved(EndpointChange):
    #: The sandbox the endpoint was still joined to when it went ("" if none).
    joined: str = ""

    @property
    def note(self) -> str | None:
        if not self.joined:
            return None
        return (
            f"implicit Leave: endpoint {self.endpoint_id} was still joined to sandbox {self.joined}"
        )


@dataclass(frozen=True, slots=True)
class EndpointJoined(EndpointChange):
    pass


@dataclass(frozen=True, slots=True)
class EndpointLeft(EndpointChange):
    """Its join (if any) ended, and its external connectivity with it."""


@dataclass(frozen=True, slots=True)
class ConnectivityChanged(EndpointChange):
    """Its external connectivity was programmed or revoked."""


@dataclass(frozen=True, slots=True)
class LinkChange(Change):
    table: ClassVar[str] = "links"
    endpoint_id: str

    @property
    def key(self) -> str:
        return self.endpoint_id


@dataclass(frozen=True, slots=True)
class LinkAdded(LinkChange):
    """The intent to make the endpoint's host link is recorded (before it is made)."""


@dataclass(frozen=True, slots=True)
class LinkDropped(LinkChange):
    """The endpoint's host link is gone (or never came)."""


# -- discovery ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodeChange(Change):
    table: ClassVar[str] = "nodes"
    address: str

    @property
    def key(self) -> str:
        return self.address


@dataclass(frozen=True, slots=True)
class NodeDiscovered(NodeChange):
    pass


@dataclass(frozen=True, slots=True)
class NodeForgotten(NodeChange):
    """The driver was told the node left: it holds it no more (whether it did or not)."""


# -- IPAM ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PoolChange(Change):
    table: ClassVar[str] = "pools"
    pool_id: str

    @property
    def key(self) -> str:
        return self.pool_id


@dataclass(frozen=True, slots=True)
class PoolCreated(PoolChange):
    pass


@dataclass(frozen=True, slots=True)
class PoolClaimed(PoolChange):
    """A pool held since an earlier daemon session was asked for again: its epoch is now."""


@dataclass(frozen=True, slots=True)
class PoolRemoved(PoolChange):
    """The pool went, and its leases with it."""


@dataclass(frozen=True, slots=True)
class LeaseChange(Change):
    table: ClassVar[str] = "leases"
    pool_id: str
    #: The address, as an integer (see `fakedriver.Pool.address_of()`).
    value: int

    @property
    def key(self) -> tuple[str, int]:
        return self.pool_id, self.value


@dataclass(frozen=True, slots=True)
class LeaseTaken(LeaseChange):
    #: The address was asked for by name (else the pool chose it).
    requested: bool = False


@dataclass(frozen=True, slots=True)
class LeaseClaimed(LeaseChange):
    """An address held since an earlier daemon session was asked for again by name: its
    epoch is now."""


@dataclass(frozen=True, slots=True)
class LeaseReleased(LeaseChange):
    pass


# -- the state as a whole ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EpochStarted(Change):
    """A new daemon session (``Plugin.Activate``)."""

    table: ClassVar[str] = "meta"
    epoch: int

    @property
    def key(self) -> str:
        return "epoch"


@dataclass(frozen=True, slots=True)
class ViolationRecorded(Change):
    """A violation was recorded; it is the state's ``violations[index]``."""

    table: ClassVar[str] = "violations"
    index: int

    @property
    def key(self) -> int:
        return self.index
