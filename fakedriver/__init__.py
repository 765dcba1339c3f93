"""fakedriver: a stateful, in-memory fake of Docker's remote network-driver plugin.

>>> from fakedriver import FakeNetDriver
>>> from werkzeug.test import Client
>>> fake = FakeNetDriver()
>>> Client(fake).post("/Plugin.Activate").json
{'Implements': ['NetworkDriver', 'IpamDriver']}
"""

from __future__ import annotations

import typing

from .core.audit import LeakError
from .core.clock import Clock, RealClock, VirtualClock
from .core.driver import Driver
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
from .core.reply import ConnectionDropped, NeverAnswered, Outcome, Reply
from .core.state import Allocation, Endpoint, Join, Network, Node, State, Violation
from .fake import FakeNetDriver, Route, routed
from .transports.registry import MissingExtra

if typing.TYPE_CHECKING:  # loaded on first use (see __getattr__): type checkers see them here
    from .cluster.cluster import Cluster, ClusterViolation, NodeCall, Partition, Timeline
    from .server.serving import Served, serving

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
    "Driver",
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
    "Outcome",
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


#: The public names whose modules are loaded on first use, not by ``import fakedriver``
#: (which loads what the in-process fake needs): name -> its module under fakedriver.
_LAZY = {
    "Cluster": "cluster.cluster",
    "ClusterViolation": "cluster.cluster",
    "NodeCall": "cluster.cluster",
    "Partition": "cluster.cluster",
    "Timeline": "cluster.cluster",
    "Served": "server.serving",
    "serving": "server.serving",
}


def _shown_here(public: typing.Any) -> None:
    """Show a public class or function where it is imported from, ``fakedriver.LeakError``
    (in tracebacks, reprs and the API reference), not at the module defining it. A class's
    annotations are resolved first, where they were written: ``typing.get_type_hints``
    looks names up in the module ``__module__`` names."""
    if isinstance(public, type) and "__annotations__" in public.__dict__:
        hints = typing.get_type_hints(public, include_extras=True)
        public.__annotations__ = {key: hints[key] for key in public.__annotations__}
    if isinstance(public, type) or callable(public):
        public.__module__ = __name__


def __getattr__(name: str) -> typing.Any:
    """Load a lazy public name (see `_LAZY`) on first use, shown here as the others."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    for each, where in _LAZY.items():  # its module's other lazy names, shown here too
        if where == _LAZY[name] and each not in globals():
            public = getattr(module, each)
            _shown_here(public)
            globals()[each] = public
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


for _name in __all__:
    if _name not in _LAZY:
        _shown_here(globals()[_name])
del _name
