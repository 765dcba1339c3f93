"""fakedriver: a stateful, in-memory fake of Docker's remote network-driver plugin.

>>> from fakedriver import FakeNetDriver
>>> from werkzeug.test import Client
>>> fake = FakeNetDriver()
>>> Client(fake).post("/Plugin.Activate").json
{'Implements': ['NetworkDriver', 'IpamDriver']}
"""

from __future__ import annotations

from ._app import FakeNetDriver
from ._audit import LeakError
from ._errors import (
    BadRequest,
    Conflict,
    DriverError,
    NotFound,
    ProtocolViolation,
    ResourceError,
    UnknownMethod,
)
from ._journal import Call, Journal
from ._methods import METHODS
from ._persona import Persona
from ._pool import Lease, Pool
from ._routing import Route, routed
from ._state import Allocation, Endpoint, Join, Network, Node, State, Violation

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "Allocation",
    "BadRequest",
    "Call",
    "Conflict",
    "DriverError",
    "Endpoint",
    "FakeNetDriver",
    "Join",
    "Journal",
    "LeakError",
    "Lease",
    "Network",
    "Node",
    "NotFound",
    "Persona",
    "Pool",
    "ProtocolViolation",
    "ResourceError",
    "Route",
    "State",
    "UnknownMethod",
    "Violation",
    "__version__",
    "routed",
]
