"""``FakeNetDriver``: the fake driver as a WSGI application."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from . import _wire
from ._audit import LeakError, leaks
from ._errors import DriverError, UnknownMethod
from ._ipam import IpamModel
from ._journal import Call, Journal
from ._links import Links
from ._methods import IPAM_CALLS, NETWORK_CALLS
from ._netdriver import NetworkModel
from ._persona import Persona
from ._state import State, Violation

if TYPE_CHECKING:
    import httpx
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"


class FakeNetDriver:
    """A stateful, in-memory fake of a Docker remote network driver (and IPAM driver).

    An instance is a WSGI application: hand it to ``werkzeug.test.Client``,
    ``httpx.WSGITransport`` or any WSGI server. It answers every call of the
    ``NetworkDriver`` and ``IpamDriver`` protocols, remembers what it was told in
    :attr:`state`, and journals every call in :attr:`calls`.

    :param persona: what the driver announces and how it behaves; see :class:`Persona`.
    :param options: shortcuts for persona fields, e.g. ``FakeNetDriver(scope="global")``.

    The instance is thread-safe: calls are served one at a time under one lock.
    """

    def __init__(
        self, persona: Persona | None = None, *, links: Links | None = None, **options: Any
    ) -> None:
        base = persona or Persona()
        self.persona = dataclasses.replace(base, **options) if options else base
        self.links = links
        #: Called with each :class:`Call` once it is journaled, under the driver's lock.
        self.listeners: list[Callable[[Call], None]] = []
        self._lock = threading.RLock()
        #: Where the fake is reachable while routed (see :func:`fakedriver.routed`).
        self.url: str | None = None
        self.socket_path: str | None = None
        self.reset()

    def reset(self) -> None:
        """Forget all state, calls and violations, and reseed; the persona stays."""
        with self._lock:
            self.calls = Journal()
            self.restore(State())

    def restore(self, state: State) -> None:
        """Take ``state`` (e.g. loaded from a file) as the driver's state, and reseed."""
        with self._lock:
            self.state = state
            rng = random.Random(self.persona.seed)
            self._network = NetworkModel(self.state, self.persona, rng)
            self._network.links = self.links
            self._ipam = IpamModel(self.state, self.persona, rng)

    def httpx_client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` served by this fake in-process (needs ``httpx`` installed)."""
        from ._routing import httpx_client

        return httpx_client(self, **kwargs)

    def leaks(self) -> list[str]:
        """What is still held (networks, endpoints, joins, allocations, pools, addresses)
        and every recorded violation, each with the call that made it."""
        with self._lock:
            return leaks(self.state, self.calls)

    def assert_clean(self) -> None:
        """Fail with :class:`LeakError` when :meth:`leaks` finds anything."""
        __tracebackhide__ = True
        found = self.leaks()
        if found:
            raise LeakError(found)

    @property
    def violations(self) -> list[Violation]:
        """Lifecycle violations recorded in non-strict mode, oldest first."""
        return self.state.violations

    # -- WSGI ---------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.method != "POST":
            status, answer = 405, {"Err": f"method {request.method} not allowed; use POST"}
        else:
            status, answer = self.handle(request.path, request.get_data())
        response = Response(_wire.encode(answer), status, content_type=CONTENT_TYPE)
        return response(environ, start_response)

    # -- the protocol without HTTP --------------------------------------------------------
    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Serve one call: ``path`` such as ``/NetworkDriver.Join``, ``body`` the raw request.

        Returns the HTTP status and the answer object. Never raises for bad input.
        """
        method = path.lstrip("/")
        subsystem, _, name = method.partition(".")
        error_key = "Error" if subsystem == "IpamDriver" else "Err"
        request: dict[str, Any] | None = None
        violations: tuple[str, ...] = ()
        with self._lock:
            try:
                target, no_arguments = self._route(subsystem, name)
                request = _wire.decode(body, no_arguments=no_arguments)
                answer, violations = self._serve(method, target, request)
                status, error = 200, None
            except DriverError as exc:
                status, error, answer = exc.status, exc.message, {error_key: exc.message}
            except Exception as exc:  # a bug in the fake: still answer in the protocol
                status, error = 500, f"internal error in fakedriver: {exc!r}"
                answer = {error_key: error}
            call = Call(
                len(self.calls),
                method,
                request,
                answer,
                status,
                error,
                violations,
                None,
                time.time(),
            )
            self.calls.append(call)
            for listener in self.listeners:
                listener(call)
        return status, answer

    def _route(self, subsystem: str, name: str) -> tuple[Callable[[Any], dict[str, Any]], bool]:
        if subsystem == "Plugin" and name == "Activate":
            return self._activate, True
        table, model, on = {
            "NetworkDriver": (NETWORK_CALLS, self._network, self.persona.network),
            "IpamDriver": (IPAM_CALLS, self._ipam, self.persona.ipam),
        }.get(subsystem, ({}, None, False))
        if name not in table:
            raise UnknownMethod(f"unknown method {subsystem}.{name}")
        if not on:
            raise UnknownMethod(f"this plugin does not implement {subsystem}")
        attribute, no_arguments = table[name]
        return getattr(model, attribute), no_arguments

    def _activate(self, body: Any) -> dict[str, Any]:
        self.state.epoch += 1
        return {"Implements": self.persona.implements}

    def _serve(
        self, method: str, target: Callable[[Any], dict[str, Any]], request: Any
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        index = len(self.calls)
        for model in (self._network, self._ipam):
            model.call, model.findings = index, []
        answer = target(request)
        found = tuple(str(f) for f in self._network.findings + self._ipam.findings)
        self.state.violations.extend(Violation(index, method, text) for text in found)
        return answer, found
