"""The errors a driver call can end in, and how each is classed.

Every refusal is a [`DriverError`][fakedriver.DriverError]. The model raises them; the WSGI layer
turns them into the wire format of the subsystem that was called (``Err`` for ``NetworkDriver``,
``Error`` for ``IpamDriver``). Nothing here knows about HTTP beyond the status each class is
answered with.
"""

from __future__ import annotations


class DriverError(Exception):
    """A call the driver refuses. ``str(err)`` is the text put on the wire."""

    #: HTTP status the refusal is answered with. Docker reads the error key of a
    #: 200 answer as ``remote: <text>``, which is what a careful driver sends.
    status = 200

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DriverError):
    """The request itself is malformed: bad JSON, a wrong type, a bad CIDR, IP or MAC,
    a missing id. Answered with 400, as go-plugins-helpers does."""

    status = 400


class UnknownMethod(DriverError):
    """No such method in the protocol (or the persona does not implement it)."""

    status = 404


class ProtocolViolation(DriverError):
    """The call breaks the lifecycle: an unknown or duplicate id, a call out of order.

    In non-strict mode these are recorded as violations and the call is tolerated
    where a tolerant driver could carry on.
    """


class NotFound(ProtocolViolation):
    """The call names a network, endpoint, pool, address or node the driver does not know."""


class Conflict(ProtocolViolation):
    """The call would create something that exists already, or remove something in use."""


class ShuttingDown(DriverError):
    """The server is stopping (its state file is closed): the call is not served."""

    status = 503


class ResourceError(DriverError):
    """The request is well formed and in order, but the resource cannot be given:
    a pool is exhausted, an address is outside its pool or taken. Always refused."""
