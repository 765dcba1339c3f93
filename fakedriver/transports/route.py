"""Routing a client library's calls to a fake in-process.

While a [`Route`][fakedriver.Route] is active, every call that ``requests``, ``httpx`` (sync and
async) and ``aiohttp`` make to the fake's base URL (or, for ``requests``, the ``http+unix://`` URL
of its socket) is served by the fake, failing as that library fails when a fault drops the
connection or hangs; every other URL goes on to whatever would have handled it otherwise. Each
library has its own transport module.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

from ..core.ports import Responder
from .registry import base_of, routes_of

#: The base URL a fake is routed at unless told otherwise (``routed()``, the fixture).
DEFAULT_URL = "http://fake-netdriver"

#: The parameter through which a decorated function gets the fake (as the fixture's name).
INJECTED = "fake_netdriver"

R = TypeVar("R")


class Routable(Responder, Protocol):
    """A fake as a route sees it: a `Responder` to serve its calls on, and where it is
    routed (a route sets `url` and `socket_path` when it starts)."""

    url: str
    socket_path: str | None


#: The routed fake's type (a [`FakeNetDriver`][fakedriver.FakeNetDriver]), which the
#: context manager gives back.
F = TypeVar("F", bound=Routable)


class BaseRoute(Generic[F]):
    """A route to a fake of type ``F``: what [`fakedriver.Route`][fakedriver.Route] (a
    route to a [`FakeNetDriver`][fakedriver.FakeNetDriver]) does, for any `Routable`."""

    def __init__(
        self,
        fake: F,
        url: str = DEFAULT_URL,
        socket: str | None = None,
        clients: Iterable[str] | None = None,
    ) -> None:
        self.fake = fake
        self.url = url.rstrip("/")
        self.socket = socket
        urls = [self.url]
        if socket:
            urls.append("http+unix://" + quote(socket, safe=""))
        #: ``scheme://host`` of each URL form served: what the registries find it by.
        self.bases = tuple(dict.fromkeys(base_of(url) for url in urls))
        #: each URL form with its ``/``, in lower case, for `method_of()` (no pattern to
        #: compile: a cluster of 1,000 nodes makes 1,000 routes)
        self._prefixes = tuple((url + "/").lower() for url in urls)
        #: The client libraries this route serves.
        self.clients: tuple[str, ...]
        self.clients, self._registries = routes_of(clients)
        self._active = False

    def method_of(self, url: str) -> str | None:
        """The method a call to ``url`` names, if ``url`` is this route's; else ``None``."""
        for prefix in self._prefixes:
            if url[: len(prefix)].lower() == prefix:
                rest = url[len(prefix) :]
                for stop in "/?#":  # the method is the path's next segment
                    rest = rest.partition(stop)[0]
                return rest
        return None

    def start(self) -> None:
        """Route calls to the fake until [`stop()`][fakedriver.Route.stop] (``with`` does both)."""
        if self._active:
            raise RuntimeError("this route is already active")
        for routes in self._registries:
            routes.attach(self)
        self._active = True
        self.fake.url, self.fake.socket_path = self.url, self.socket

    def stop(self) -> None:
        """Stop routing; calls go where they would without the fake."""
        if not self._active:
            return
        for routes in self._registries:
            routes.detach(self)
        self._active = False

    def __enter__(self) -> F:
        self.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __call__(self, func: Callable[..., R]) -> Callable[..., R]:
        """Route while ``func`` runs; its ``fake_netdriver`` parameter, if any, gets the fake."""
        signature = inspect.signature(func)
        wants = INJECTED in signature.parameters

        def inject(fake: F, kwargs: dict[str, Any]) -> dict[str, Any]:
            return {**kwargs, INJECTED: fake} if wants else kwargs

        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self as fake:
                    return await func(*args, **inject(fake, kwargs))

        else:

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self as fake:
                    return func(*args, **inject(fake, kwargs))

        if wants:
            kept = [p for name, p in signature.parameters.items() if name != INJECTED]
            wrapper.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
        return wrapper
