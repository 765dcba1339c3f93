"""What every in-process route shares: the routes active for one client library, and the
one patch of that library that serves them, started with the first route and stopped
with the last."""

from __future__ import annotations

import importlib
import importlib.util
import re
import threading
from collections.abc import Callable
from typing import Protocol

from ..core.ports import Responder


class Routed(Protocol):
    """A route as the transports see it (see [`fakedriver.Route`][fakedriver.Route])."""

    @property
    def fake(self) -> Responder:
        """What serves the route's calls."""

    #: Matches this route's URLs; group ``method`` is the protocol method.
    pattern: re.Pattern[str]

    def method_of(self, url: str) -> str | None:
        """The protocol method a URL calls, when the URL is this route's; else ``None``."""


class Registry:
    """The active routes of one client library.

    :param patch: starts serving the routes (e.g. starts a ``responses`` mock) and
        returns what stops it.
    :param changed: told the active routes after each attach and detach, for a patch
        that registers each route's URLs with its library.
    """

    def __init__(
        self,
        patch: Callable[[], Callable[[], None]],
        changed: Callable[[list[Routed]], None] | None = None,
    ) -> None:
        self._patch = patch
        self._changed = changed
        self._routes: list[Routed] = []
        self._stop: Callable[[], None] | None = None
        self._guard = threading.Lock()

    def attach(self, route: Routed) -> None:
        with self._guard:
            self._routes.append(route)
            if self._stop is None:
                self._stop = self._patch()
            if self._changed is not None:
                self._changed(list(self._routes))

    def detach(self, route: Routed) -> None:
        with self._guard:
            if route in self._routes:
                self._routes.remove(route)
            if self._changed is not None and self._routes:
                self._changed(list(self._routes))
            if not self._routes and self._stop is not None:
                self._stop()
                self._stop = None

    def find(self, url: str) -> tuple[Routed, str] | None:
        """The route serving ``url`` and the method it calls, if any route does."""
        for route in list(self._routes):
            method = route.method_of(url)
            if method is not None:
                return route, method
        return None


#: client -> (transport module, the libraries it needs, the extra that installs them); the
#: first library is the client itself, the others route its calls.
CLIENTS = {
    "requests": ("for_requests", ("requests", "responses"), "fakedriver[requests]"),
    "httpx": ("for_httpx", ("httpx", "respx"), "fakedriver[httpx]"),
    "aiohttp": ("for_aiohttp", ("aiohttp", "aioresponses"), "fakedriver[aiohttp]"),
}


class MissingExtra(ImportError):
    """A client cannot be routed: its routing library is not installed. Raised when the
    client is asked for, and when clients are not named and the client library is
    installed without it (its calls to a fake's URL would reach the network)."""


def _present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses it, a module without a spec
        return False


def installed(client: str) -> bool:
    """Whether ``client`` can be routed here (its libraries are installed)."""
    return all(_present(name) for name in CLIENTS[client][1])


def default_clients() -> list[str]:
    """The clients routed when none are named: every installed one. A client library
    installed without its routing library is [`MissingExtra`][fakedriver.MissingExtra], naming the
    extra and how to name the clients instead: routing the others alone would let its calls reach
    the network without a word."""
    chosen, stranded = [], []
    for client, (_, needs, extra) in CLIENTS.items():
        if installed(client):
            chosen.append(client)
        elif _present(needs[0]):
            missing = " and ".join(name for name in needs[1:] if not _present(name))
            stranded.append(
                f"{client} is installed but {missing} is not, so fakedriver cannot route "
                f"its calls and they would reach the network: pip install '{extra}'"
            )
    if stranded:
        listed = ", ".join(repr(client) for client in chosen)
        where = " or the fake_netdriver_clients ini option" if chosen else ""
        raise MissingExtra(
            f"{'; '.join(stranded)}; or name the clients to route: clients=[{listed}] "
            f"(of routed() or the fake_netdriver marker){where}"
        )
    return chosen


def registry(client: str) -> Registry:
    """The routes of ``client``; raises [`MissingExtra`][fakedriver.MissingExtra] naming what to
    install."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}; known: {', '.join(CLIENTS)}")
    module, needs, extra = CLIENTS[client]
    if not installed(client):
        raise MissingExtra(
            f"routing {client} calls needs {' and '.join(needs)}: pip install '{extra}'"
        )
    routes: Registry = importlib.import_module(f"{__package__}.{module}").ROUTES
    return routes
