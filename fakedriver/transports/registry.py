"""What every in-process route shares: the routes active for one client library, and the
one patch of that library that serves them, started with the first route and stopped
with the last (or, while [`keep()`][fakedriver.transports.registry.keep] says so, kept
started between routes, and only reset: the pytest plugin keeps it between the tests that
use its fixtures).

A client library that is not imported yet costs nothing: neither its transport module nor
its routing library is loaded, and nothing is patched, until the library is imported. A
route active then has it patched as soon as its code has run, before the import returns
(see `imports`): nothing can call it unpatched.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from ..core.ports import Responder
from . import imports

T = TypeVar("T")


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
        patch: Callable[[], Callable[[], None]] | None,
        reset: Callable[[], None] | None = None,
    ) -> None:
        #: ``None`` until it is known (`ClientRoutes`: when the transport module is loaded)
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
            if self._stop is None and self._patch is not None:
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
    was, _KEPT[0] = _KEPT[0], kept
    if kept or not was:  # not kept before: each patch stopped with its last route
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


class ClientRoutes(Registry):
    """The routes of one client of `CLIENTS`. Its patch is its transport module's, loaded
    once the client library is imported: by the first route if it is by then, else by the
    import itself while a route is active (the transport module binds it, see `serves()`).
    Routes attached before are served from then on."""

    def __init__(self, client: str) -> None:
        super().__init__(None)
        module, needs, _ = CLIENTS[client]
        self.client = client
        self._module = f"{__package__}.{module}"
        self._needs = needs

    @property
    def loaded(self) -> bool:
        """Whether the transport module is loaded (the patch is known)."""
        return self._patch is not None

    def bind(
        self, patch: Callable[[], Callable[[], None]], reset: Callable[[], None] | None = None
    ) -> ClientRoutes:
        """What the transport module says as it loads: how to patch the library."""
        with self._guard:
            self._patch, self._reset = patch, reset
        return self

    def attach(self, route: Routed) -> None:
        if self._patch is None:
            self._load()  # outside the guard: loading imports, and an import takes locks
        super().attach(route)  # started here if the transport is loaded
        if self._patch is None:
            with self._guard:  # as detach() does: watched while a route is active
                if self._patch is None and route in self._routes:
                    imports.watch(self._needs, self._imported)
            if self._ready():  # imported before the watch began: its hook is not called
                self._imported(None)

    def _ready(self, done: str | None = None) -> bool:
        """Whether the client library is imported and no library it needs is half imported
        (``done`` excepted: its code has just run)."""
        library = self._needs[0]
        if sys.modules.get(library) is None:
            return False
        return not any(imports.initializing(name, done) for name in self._needs)

    def _load(self, done: str | None = None) -> bool:
        """Load the transport module if the client library is imported; whether it is."""
        if self._patch is not None:
            return True
        library = self._needs[0]
        if done is None and imports.initializing(library):
            importlib.import_module(library)  # another thread's import: wait for its end
        if not self._ready(done):
            return False
        importlib.import_module(self._module)  # which binds the patch
        imports.unwatch(self._needs, self._imported)
        return True

    def _imported(self, name: str | None) -> None:
        """One of the libraries was just imported (``name``): load the transport, and
        start the patch if a route is active."""
        if not self._load(name):
            return
        with self._guard:
            if self._routes and self._stop is None and self._patch is not None:
                self._stop = self._patch()

    def _idle(self) -> None:
        if self._patch is None:  # nothing to serve until another route comes
            imports.unwatch(self._needs, self._imported)
        super()._idle()


#: Whether each library is installed, by what decides it: ``importlib.util.find_spec``
#: (a test may replace it to hide one), ``sys.path``, and the libraries made unimportable
#: (``sys.modules[name] = None``). Looking a library up scans ``sys.path`` (tens of
#: microseconds), and every route asks.
_installed: dict[tuple[object, ...], frozenset[str]] = {}
#: Every library of `CLIENTS`.
_LIBRARIES = tuple(dict.fromkeys(name for _, needs, _ in CLIENTS.values() for name in needs))


def _key() -> tuple[object, ...]:
    """What decides which libraries are installed (see `_installed`)."""
    modules = sys.modules
    hidden = tuple(name for name in _LIBRARIES if name in modules and modules[name] is None)
    return importlib.util.find_spec, tuple(sys.path), hidden


def _memo(cache: dict[tuple[object, ...], T], key: tuple[object, ...], make: Callable[[], T]) -> T:
    """``cache[key]``, made by ``make`` when missing; the cache holds at most 16 keys."""
    value = cache.get(key)
    if value is None:
        value = make()
        if len(cache) >= 16:
            cache.clear()
        cache[key] = value
    return value


def _present_libraries(key: tuple[object, ...] | None = None) -> frozenset[str]:
    """The libraries of `CLIENTS` installed here (worked out again when what decides it
    changes, see `_installed`)."""
    return _memo(
        _installed,
        _key() if key is None else key,
        lambda: frozenset(name for name in _LIBRARIES if _find(name)),
    )


def _find(name: str) -> bool:
    if name in sys.modules and sys.modules[name] is None:  # made unimportable
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses it, a module without a spec
        return False


def installed(client: str) -> bool:
    """Whether ``client`` can be routed here (its libraries are installed)."""
    return _covers(_present_libraries(), client)


def _covers(present: frozenset[str], client: str) -> bool:
    """Whether ``present`` holds every library ``client`` needs."""
    return present.issuperset(CLIENTS[client][1])


def default_clients() -> list[str]:
    """The clients routed when none are named: every installed one. A client library
    installed without its routing library is [`MissingExtra`][fakedriver.MissingExtra], naming the
    extra and how to name the clients instead: routing the others alone would let its calls reach
    the network without a word."""
    return list(_defaults(_key()))


#: `default_clients()` by what decides it (see `_installed`).
_default: dict[tuple[object, ...], tuple[str, ...]] = {}


def _defaults(key: tuple[object, ...]) -> tuple[str, ...]:
    return _memo(_default, key, lambda: _choose(_present_libraries(key)))


def _choose(present: frozenset[str]) -> tuple[str, ...]:
    chosen, stranded = [], []
    for client, (_, needs, extra) in CLIENTS.items():
        if _covers(present, client):
            chosen.append(client)
        elif needs[0] in present:
            missing = " and ".join(name for name in needs[1:] if name not in present)
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
    return tuple(chosen)


#: The routes of each client, made before any of its libraries is loaded.
_ROUTES = {client: ClientRoutes(client) for client in CLIENTS}


def registry(client: str) -> ClientRoutes:
    """The routes of ``client``; raises [`MissingExtra`][fakedriver.MissingExtra] naming what to
    install. Nothing of the client is loaded here (see `ClientRoutes`)."""
    routes = _ROUTES.get(client)
    if routes is None:
        raise ValueError(f"unknown client {client!r}; known: {', '.join(CLIENTS)}")
    if not installed(client):
        _, needs, extra = CLIENTS[client]
        raise MissingExtra(
            f"routing {client} calls needs {' and '.join(needs)}: pip install '{extra}'"
        )
    return routes


def routes_of(clients: Iterable[str] | None) -> tuple[tuple[str, ...], list[ClientRoutes]]:
    """The clients a route serves (``None``: `default_clients()`) and their routes, as
    `registry()` gives them, the installed libraries looked up once."""
    key = _key()
    if clients is None:
        chosen = _defaults(key)
        return chosen, [_ROUTES[client] for client in chosen]
    chosen = tuple(clients)
    present = _present_libraries(key)
    for client in chosen:
        if client not in _ROUTES or not _covers(present, client):
            registry(client)  # which raises, saying why
    return chosen, [_ROUTES[client] for client in chosen]


def serves(
    client: str,
    patch: Callable[[], Callable[[], None]],
    reset: Callable[[], None] | None = None,
) -> ClientRoutes:
    """The routes of ``client``, now served by ``patch`` (started with the first route,
    and stopped by what it returns) and reset by ``reset``: what its transport module
    says as it loads."""
    return _ROUTES[client].bind(patch, reset)
