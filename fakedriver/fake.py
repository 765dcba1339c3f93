"""``FakeNetDriver``: the fake driver, a thin facade over its `Engine`, and a WSGI
application; ``routed()``, a route to a fake (a new one unless given)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .core.audit import LeakError
from .core.clock import Clock, VirtualClock
from .core.engine import Engine, Listener
from .core.faults import Faults, Rule
from .core.journal import Journal
from .core.persona import Persona
from .core.ports import Links
from .core.reply import Reply
from .core.state import State, Violation
from .transports.registry import registry
from .transports.route import DEFAULT_URL, Route
from .transports.wsgi import serve

if TYPE_CHECKING:
    import httpx
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class FakeNetDriver:
    """A stateful, in-memory fake of a Docker remote network driver (and IPAM driver).

    An instance is a WSGI application: hand it to ``werkzeug.test.Client``,
    ``httpx.WSGITransport`` or any WSGI server. It answers every call of the
    ``NetworkDriver`` and ``IpamDriver`` protocols, remembers what it was told in
    [`state`][fakedriver.FakeNetDriver.state], and journals every call in
    [`calls`][fakedriver.FakeNetDriver.calls].

    :param persona: what the driver announces and how it behaves; see
        [`Persona`][fakedriver.Persona].
    :param links: makes a host interface per Join (see ``fakedriver serve --links``).
    :param clock: what latency and hangs wait on: virtual (no waiting) unless given.
    :param options: shortcuts for persona fields, e.g. ``FakeNetDriver(scope="global")``.

    The instance is thread-safe: calls are served one at a time under one lock.
    """

    def __init__(
        self,
        persona: Persona | None = None,
        *,
        links: Links | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        if persona is None:  # one construction, one validation (fixtures make many fakes)
            persona = Persona(**options)
        elif options:
            persona = dataclasses.replace(persona, **options)
        #: Serves every call; transports talk to it (see `Reply`).
        self.engine = Engine(persona, links, clock or VirtualClock())
        #: The base URL the fake is routed at (see `fakedriver.routed()`); before it
        #: is routed, the default one a route would serve it at, ``http://fake-netdriver``.
        self.url: str = DEFAULT_URL
        #: The unix socket it is served on (or routed at, over ``http+unix://``), if any.
        self.socket_path: str | None = None

    # -- what the engine holds ------------------------------------------------------------
    @property
    def persona(self) -> Persona:
        """What the driver announces and how it behaves."""
        return self.engine.persona

    @property
    def links(self) -> Links | None:
        """What makes host interfaces for joins (``None`` in-process: none are made)."""
        return self.engine.links

    @property
    def clock(self) -> Clock:
        """The clock latency and hangs run on."""
        return self.engine.clock

    @property
    def listeners(self) -> list[Listener]:
        """Called with each [`Call`][fakedriver.Call] once it is journaled, under the driver's
        lock."""
        return self.engine.listeners

    @property
    def state(self) -> State:
        """What the driver knows: networks, endpoints, joins, pools, addresses, ..."""
        return self.engine.state

    @property
    def calls(self) -> Journal:
        """The journal of every call, with assertion helpers."""
        return self.engine.calls

    @property
    def faults(self) -> Faults:
        """The fault rules, phase and seed."""
        return self.engine.faults

    @property
    def violations(self) -> list[Violation]:
        """Lifecycle violations recorded in non-strict mode, oldest first."""
        return self.engine.state.violations

    def reset(self) -> None:
        """Forget all state, calls, violations and fault rules, and reseed; the persona
        stays."""
        self.engine.reset()

    def restore(self, state: State) -> None:
        """Take ``state`` (e.g. loaded from a file) as the driver's state, and reseed."""
        self.engine.restore(state)

    def leaks(self) -> list[str]:
        """What is still held (networks, endpoints, joins, allocations, pools, addresses)
        and every recorded violation, each with the call that made it."""
        return self.engine.leaks()

    def assert_clean(self) -> None:
        """Fail with [`LeakError`][fakedriver.LeakError] when
        [`leaks()`][fakedriver.FakeNetDriver.leaks] finds anything."""
        __tracebackhide__ = True
        found = self.leaks()
        if found:
            raise LeakError(found)

    # -- faults -------------------------------------------------------------------------
    def fail(
        self,
        method: str = "*",
        message: str | None = None,
        *,
        kind: str = "",
        status: int | None = None,
        err: str | None = None,
        **schedule: Any,
    ) -> Rule:
        """Add a fault rule: ``fake.fail("Join", message="boom", times=1)``.

        The kind, when not given, is ``"status"`` if a ``status`` is, else ``"error"``
        (HTTP 200 with ``Err``/``Error``); see [`Rule`][fakedriver.Rule]. ``schedule`` takes the
        other [`Rule`][fakedriver.Rule] fields (``match``, ``nth``, ``times``, ``after``,
        ``every``, ``probability``, ``phase``, ``seconds``, ``answer``, ``body``, ``name``).

        :param err: the old name of ``message``: deprecated, it warns.
        """
        if err is not None:
            if message is not None:
                raise TypeError("fail() takes message= (err= is its deprecated alias), not both")
            warnings.warn(
                "fail(err=...) is deprecated: say message=...", DeprecationWarning, stacklevel=2
            )
            message = err
        if message is not None:
            schedule["message"] = message
        return self.engine.add_rules([Rule(method, kind, status=status, **schedule)])[0]

    def hold(self, method: str = "*", **match: Any) -> Rule:
        """Hold matching calls until ``rule.release()``; ``rule.wait_held()`` tells when
        one has arrived. For forcing races deterministically."""
        return self.engine.add_rules([Rule(method, "hold", match=match)])[0]

    # -- serving --------------------------------------------------------------------------
    def respond(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> Reply:
        """Serve one call with the fault rules applied; see [`Reply`][fakedriver.Reply].

        :param timeout: how long the client waits for an answer (for ``hang``).
        :param gone: tells whether the client has gone away (for ``hang``/``hold``).
        """
        return self.engine.respond(path, body, timeout=timeout, gone=gone)

    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Serve one call, with no faults: ``path`` such as ``/NetworkDriver.Join``,
        ``body`` the raw request. Returns the HTTP status and the answer object; never
        raises for bad input."""
        call = self.engine.serve(path.lstrip("/"), body)
        return call.status, call.response

    def httpx_client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` served by this fake in-process, routed or not, failing as
        httpx fails (needs ``fakedriver[httpx]``). ``kwargs`` go to ``httpx.Client``."""
        registry("httpx")  # a clear message when the extra is missing
        from .transports.for_httpx import client

        return client(self.engine, self.url, **kwargs)

    def httpx_async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` served by this fake in-process; see
        [`httpx_client()`][fakedriver.FakeNetDriver.httpx_client]."""
        registry("httpx")
        from .transports.for_httpx import async_client

        return async_client(self.engine, self.url, **kwargs)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return serve(self.engine, environ, start_response)


def routed(
    fake: FakeNetDriver | None = None,
    url: str = DEFAULT_URL,
    socket: str | None = None,
    clients: Iterable[str] | None = None,
    **persona: Any,
) -> Route[FakeNetDriver]:
    """A [`Route`][fakedriver.Route] to ``fake`` (a new ``FakeNetDriver(**persona)`` when omitted),
    as a context manager::

        with fakedriver.routed(url="http://plugin") as fake:
            requests.post("http://plugin/Plugin.Activate")

    or as a decorator, whose function gets the fake as its ``fake_netdriver`` argument
    when it has one (as respx passes ``respx_mock``)::

        @fakedriver.routed(url="http://plugin")
        def check(fake_netdriver):
            requests.post("http://plugin/Plugin.Activate")
            fake_netdriver.calls.assert_called("Plugin.Activate")

    :param url: the base URL routed to the fake.
    :param socket: also route requests-unixsocket's ``http+unix://`` URL of this path.
    :param clients: which client libraries to route (default: every one installed).
    :param persona: options for the new fake (not with ``fake``).
    """
    if fake is None:
        fake = FakeNetDriver(**persona)
    elif persona:
        raise TypeError("pass persona options or a fake, not both")
    return Route(fake, url, socket, clients)
