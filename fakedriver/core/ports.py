"""The protocols between the core and the layers above it. What the core asks of the
world outside it: the layers above implement them (``server.veth`` makes host links,
``persist.store`` commits to SQLite), and the core imports none of them. And what the
core offers the transports: a `Responder` (a fake) to serve each call on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from .changes import Change, Key
from .reply import Reply
from .state import State

__all__ = ["Key", "Links", "Responder", "Store", "StoreError"]


class Links(Protocol):
    """Makes and removes the host interface handed to Docker in a Join answer."""

    def create(self, endpoint_id: str) -> str:
        """Make the interface for ``endpoint_id``; return its name. Raise DriverError."""

    def delete(self, endpoint_id: str) -> None:
        """Remove what `create()` made, if it still exists."""


class StoreError(Exception):
    """A commit failed (whatever failed in it): nothing of it is in the database."""


class Store(Protocol):
    """Where the driver commits what each call changed (``fakedriver serve --state``)."""

    #: Why memory can no longer be trusted (a failed commit it could not read back from):
    #: every call answers this until a restart; ``None`` when all is well.
    broken: str | None

    def commit(self, state: State, changes: Sequence[Change]) -> None:
        """Save the records ``changes`` name as ``state`` has them now; `StoreError` if
        nothing of it could be."""

    def revert(self, state: State, changes: Sequence[Change]) -> None:
        """Put the records ``changes`` name back in ``state`` as last saved, after a
        failed commit; `StoreError` (and `broken` set) when they cannot be read."""

    def replace(self, state: State) -> None:
        """Make the store hold ``state`` and nothing else; `StoreError` if it cannot."""

    def close(self) -> None:
        """Release the store; nothing is committed after."""


class Responder(Protocol):
    """What a transport serves a call on: a fake (its driver)."""

    def respond(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> Reply:
        """Serve one call with the fault rules applied (see `Driver.respond()`)."""

    def respond_now(self, path: str, body: bytes) -> Reply | None:
        """`respond()` without waiting: ``None``, with nothing changed, when a timed rule
        could make the call wait (see `Driver.respond_now()`)."""
