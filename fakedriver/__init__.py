"""fakedriver: a stateful, in-memory fake of Docker's remote network-driver plugin.

>>> from fakedriver import FakeNetDriver
>>> from werkzeug.test import Client
>>> fake = FakeNetDriver()
>>> Client(fake).post("/Plugin.Activate").json
{'Implements': ['NetworkDriver', 'IpamDriver']}
"""

from __future__ import annotations

from .cluster.cluster import Cluster, ClusterViolation, NodeCall, Partition, Timeline
from .core.audit import LeakError
from .core.clock import Clock, RealClock, VirtualClock
from .core.errors import (
    BadRequest,
    Conflict,
    DriverError,
    NotFound,
    ProtocolViolation,
    ResourceError,
    UnknownMethod,
)
from .core.faults import KINDS, Faults, Rule
from .core.journal import Call, Journal
from .core.methods import METHODS
from .core.persona import Persona
from .core.pool import Lease, Pool
from .core.reply import ConnectionDropped, NeverAnswered, Reply
from .core.state import Allocation, Endpoint, Join, Network, Node, State, Violation
from .fake import FakeNetDriver, routed
from .server.serving import Served, serving
from .transports.registry import MissingExtra
from .transports.route import Route

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "METHODS",
    "Allocation",
    "BadRequest",
    "Call",
    "Clock",
    "Cluster",
    "ClusterViolation",
    "Conflict",
    "ConnectionDropped",
    "DriverError",
    "Endpoint",
    "FakeNetDriver",
    "Faults",
    "Join",
    "Journal",
    "LeakError",
    "Lease",
    "MissingExtra",
    "Network",
    "NeverAnswered",
    "Node",
    "NodeCall",
    "NotFound",
    "Partition",
    "Persona",
    "Pool",
    "ProtocolViolation",
    "RealClock",
    "Reply",
    "ResourceError",
    "Route",
    "Rule",
    "Served",
    "State",
    "Timeline",
    "UnknownMethod",
    "Violation",
    "VirtualClock",
    "__version__",
    "routed",
    "serving",
]


def _shown_here() -> None:
    """Show every public class and function where it is imported from,
    ``fakedriver.LeakError`` (in tracebacks, reprs and the API reference), not at the
    private module defining it. A class's annotations are resolved first, where they were
    written: ``typing.get_type_hints`` looks names up in the module ``__module__`` names."""
    import typing

    for name in __all__:
        public = globals()[name]
        if isinstance(public, type) and "__annotations__" in public.__dict__:
            hints = typing.get_type_hints(public, include_extras=True)
            public.__annotations__ = {key: hints[key] for key in public.__annotations__}
        if isinstance(public, type) or callable(public):
            public.__module__ = __name__


_shown_here()
del _shown_here
