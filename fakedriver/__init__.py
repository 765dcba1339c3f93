"""fakedriver: a stateful, in-memory fake of Docker's remote network-driver plugin.

>>> from fakedriver import FakeNetDriver
>>> from werkzeug.test import Client
>>> fake = FakeNetDriver()
>>> Client(fake).post("/Plugin.Activate").json
{'Implements': ['NetworkDriver', 'IpamDriver']}
"""

from __future__ import annotations

from ._app import METHODS, FakeNetDriver
from ._errors import (
    BadRequest,
    Conflict,
    DriverError,
    NotFound,
    ProtocolViolation,
    ResourceError,
    UnknownMethod,
)
from ._journal import Call
from ._persona import Persona
from ._pool import Lease, Pool
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
    "Lease",
    "Network",
    "Node",
    "NotFound",
    "Persona",
    "Pool",
    "ProtocolViolation",
    "ResourceError",
    "State",
    "UnknownMethod",
    "Violation",
    "__version__",
]
