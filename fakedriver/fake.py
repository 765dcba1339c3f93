"""``FakeNetDriver``: the fake driver of a test, a [`Driver`][fakedriver.Driver] with the
helpers of a test and a WSGI application; ``routed()``, a [`Route`][fakedriver.Route] to a
fake (a new one unless given)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .core.audit import LeakError
from .core.driver import Driver
from .core.faults import Rule
from .transports import route
from .transports.registry import registry
from .transports.route import DEFAULT_URL
from .transports.wsgi import serve

if TYPE_CHECKING:
    import httpx
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class FakeNetDriver(Driver):
    """A stateful, in-memory fake of a Docker remote network driver (and IPAM driver).

    An instance is a WSGI application: hand it to ``werkzeug.test.Client``,
    ``httpx.WSGITransport`` or any WSGI server. It answers every call of the
    ``NetworkDriver`` and ``IpamDriver`` protocols, remembers what it was told in
    [`state`][fakedriver.FakeNetDriver.state], and journals every call in
    [`calls`][fakedriver.FakeNetDriver.calls].

    It is a [`Driver`][fakedriver.Driver], made as one (``FakeNetDriver(scope="global")``,
    ``FakeNetDriver(persona, clock=RealClock())``), with the helpers of a test: faults
    in a line ([`fail()`][fakedriver.FakeNetDriver.fail],
    [`hold()`][fakedriver.FakeNetDriver.hold]), the leak audit as an assertion, and
    clients served in-process.

    The instance is thread-safe: calls are served one at a time under one lock.
    """

    url: str = DEFAULT_URL
    """The base URL the fake is routed at (see `fakedriver.routed()`); before it is routed,
    the default one a route would serve it at, ``http://fake-netdriver``."""
    socket_path: str | None = None
    """The unix socket it is served on (or routed at, over ``http+unix://``), if any."""

    @property
    def engine(self) -> FakeNetDriver:
        """Deprecated: the fake is its own driver now. ``fake.engine`` is the fake itself
        (``fake.engine.calls`` is ``fake.calls``), for one release; it warns."""
        warnings.warn(
            "FakeNetDriver.engine is deprecated: the fake is the driver now; use the fake "
            "itself (fake.calls, fake.add_rules(), ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self

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
        rule = Rule(method, kind, status=status, **schedule)
        self.add_rules([rule])
        return rule

    def hold(self, method: str = "*", **match: Any) -> Rule:
        """Hold matching calls until ``rule.release()``; ``rule.wait_held()`` tells when
        one has arrived. For forcing races deterministically."""
        rule = Rule(method, "hold", match=match)
        self.add_rules([rule])
        return rule

    # -- clients served in-process -----------------------------------------------------
    def httpx_client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` served by this fake in-process, routed or not, failing as
        httpx fails (needs ``fakedriver[httpx]``). ``kwargs`` go to ``httpx.Client``."""
        registry("httpx")  # a clear message when the extra is missing
        from .transports.for_httpx import client

        return client(self, self.url, **kwargs)

    def httpx_async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` served by this fake in-process; see
        [`httpx_client()`][fakedriver.FakeNetDriver.httpx_client]."""
        registry("httpx")
        from .transports.for_httpx import async_client

        return async_client(self, self.url, **kwargs)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return serve(self, environ, start_response)


class Route(route.BaseRoute[FakeNetDriver]):
    """Serve calls to ``url`` (and to ``socket`` over ``http+unix://``) from ``fake``.

    Use as a context manager (it returns the fake) or as a decorator: the route is active
    while the function runs, and a function with a ``fake_netdriver`` parameter gets the
    fake there, as respx's ``respx_mock`` (the parameter is taken out of the function's
    signature, so pytest does not look for a fixture of that name). Coroutine functions
    are routed while they run too.

    :param fake: the [`FakeNetDriver`][fakedriver.FakeNetDriver] to route to.
    :param url: its base URL; calls go to ``<url>/NetworkDriver.Join`` and so on.
    :param socket: also route ``http+unix://<quoted socket path>/...``, the URL form that
        requests-unixsocket users write for ``/run/docker/plugins/NAME.sock``.
    :param clients: which libraries to route: any of ``"requests"``, ``"httpx"`` (sync and
        async), ``"aiohttp"``. ``None``: every one of them that is installed; one installed
        without its routing library is [`MissingExtra`][fakedriver.MissingExtra] (its calls would
        reach the network), naming the extra to install.
    """

    def __init__(
        self,
        fake: FakeNetDriver,
        url: str = DEFAULT_URL,
        socket: str | None = None,
        clients: Iterable[str] | None = None,
    ) -> None:
        super().__init__(fake, url, socket, clients)


def routed(
    fake: FakeNetDriver | None = None,
    url: str = DEFAULT_URL,
    socket: str | None = None,
    clients: Iterable[str] | None = None,
    **persona: Any,
) -> Route:
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
