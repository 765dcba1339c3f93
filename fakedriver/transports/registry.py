"""What every in-process route shares: the routes active for one client library, and the
one patch of that library that serves them, started with the first route and stopped
with the last (or, while [`keep()`][fakedriver.transports.registry.keep] says so, kept
started between routes, and only reset: the pytest plugin keeps it between the tests that
use its fixtures)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from typing import Protocol

from ..core.ports import Responder


class Routed(Protocol):
    """A route as the transports see it (see [`fakedriver.Route`][fakedriver.Route])."""

    @property
    def fake(self) -> Responder:
        """What serves the route's calls."""

    #: ``scheme://host`` of each URL form the route serves (see `base_of()`).
    bases: tuple[str, ...]

    def method_of(self, url: str) -> str | None:
        """The protocol method a URL calls, when the URL is this route's; else ``None``."""


class Registry:
    """The active routes of one client library.

    :param patch: starts serving the routes (e.g. starts a ``responses`` mock) and
        returns what stops it.
    :param reset: forgets what the started patch recorded (a mock library's record of
        the calls it saw), when the last route goes and the patch is kept started.
    """

    def __init__(
        self,
        patch: Callable[[], Callable[[], None]],
        reset: Callable[[], None] | None = None,
    ) -> None:
        self._patch = patch
        self._reset = reset
        self._routes: list[Routed] = []
        #: the active routes by base (``scheme://host``, lower case): a call is matched
        #: against the routes of its own host only, however many routes there are
        self._by_base: dict[str, list[Routed]] = {}
        self._stop: Callable[[], None] | None = None
        self._guard = threading.Lock()
        _REGISTRIES.append(self)

    @property
    def started(self) -> bool:
        """Whether the patch is started (a route is active, or it is kept)."""
        return self._stop is not None

    def attach(self, route: Routed) -> None:
        with self._guard:
            self._routes.append(route)
            for base in route.bases:
                self._by_base.setdefault(base, []).append(route)
            if self._stop is None:
                self._stop = self._patch()

    def detach(self, route: Routed) -> None:
        with self._guard:
            if route not in self._routes:
                return
            self._routes.remove(route)
            for base in route.bases:
                routes = self._by_base[base]
                routes.remove(route)
                if not routes:
                    del self._by_base[base]
            if not self._routes:
                self._idle()

    def settle(self) -> None:
        """Stop the patch if no route is active and it is no longer kept."""
        with self._guard:
            if not self._routes:
                self._idle()

    def _idle(self) -> None:
        """No route is active (the caller holds the guard): reset the patch, and stop it
        unless it is kept."""
        if self._stop is None:
            return
        if _KEPT[0]:
            if self._reset is not None:
                self._reset()
            return
        self._stop()
        self._stop = None

    def find(self, url: str) -> tuple[Routed, str] | None:
        """The route serving ``url`` and the method it calls, if any route does."""
        routes = self._by_base.get(base_of(url))
        if routes is None:
            return None
        for route in list(routes):
            method = route.method_of(url)
            if method is not None:
                return route, method
        return None


#: Every registry made (one per client library loaded), for `keep()`.
_REGISTRIES: list[Registry] = []
#: Whether idle patches stay started: ``[False]`` unless `keep()` says otherwise.
_KEPT = [False]


def keep(kept: bool) -> None:
    """Keep each client library's patch started when its last route stops (``True``),
    reset instead of stopped, so that the next route costs no patching; or stop every
    idle patch now and from now on (``False``, the default). The pytest plugin keeps
    them between the tests that use its fixtures."""
    _KEPT[0] = kept
    if kept:
        return
    for routes in _REGISTRIES:
        routes.settle()


def base_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, in lower case: what routes are found by."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return ""
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1 and found < end:
            end = found
    return f"{scheme}://{rest[:end]}".lower()


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


#: Libraries found installed, each with the ``find_spec`` that found it: looking one up
#: again scans ``sys.path`` (tens of microseconds), for every route a test starts.
_found: dict[str, object] = {}


def _present(name: str) -> bool:
    if name in sys.modules and sys.modules[name] is None:  # made unimportable
        return False
    find = importlib.util.find_spec
    if _found.get(name) is find:
        return True
    try:
        present = find(name) is not None
    except (ImportError, ValueError):  # a finder that refuses it, a module without a spec
        return False
    if present:
        _found[name] = find
    return present


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
    name = f"{__package__}.{module}"
    routes: Registry = (sys.modules.get(name) or importlib.import_module(name)).ROUTES
    return routes
