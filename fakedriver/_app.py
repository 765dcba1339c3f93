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
from ._clock import Clock, VirtualClock
from ._errors import DriverError, UnknownMethod
from ._faults import Faults, Rule
from ._ipam import IpamModel
from ._journal import Call, Journal
from ._links import Links
from ._methods import IPAM_CALLS, NETWORK_CALLS
from ._netdriver import NetworkModel
from ._persona import Persona
from ._respond import Reply, respond, serve_wsgi
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
        self,
        persona: Persona | None = None,
        *,
        links: Links | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        if persona is None:  # one construction, one validation (fixtures make many fakes)
            self.persona = Persona(**options)
        else:
            self.persona = dataclasses.replace(persona, **options) if options else persona
        self.links = links
        #: The clock latency and hangs run on: virtual (no waiting) unless given.
        self.clock: Clock = clock or VirtualClock()
        #: Called with each :class:`Call` once it is journaled, under the driver's lock.
        self.listeners: list[Callable[[Call], None]] = []
        self._lock = threading.RLock()
        #: Where the fake is reachable while routed (see :func:`fakedriver.routed`).
        self.url: str | None = None
        self.socket_path: str | None = None
        self.reset()

    def reset(self) -> None:
        """Forget all state, calls, violations and fault rules, and reseed; the persona
        stays."""
        with self._lock:
            self.calls = Journal()
            old: Faults | None = getattr(self, "faults", None)
            if old is not None:
                old.clear()  # releases the calls the old rules hold
            self.faults = Faults(self.persona.seed, self.clock)
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

    # -- faults -------------------------------------------------------------------------
    def fail(
        self,
        method: str = "*",
        err: str = "injected fault",
        *,
        kind: str | None = None,
        status: int | None = None,
        **schedule: Any,
    ) -> Rule:
        """Add a fault rule: ``fake.fail("Join", err="boom", times=1)``.

        The kind defaults to ``"error"`` (HTTP 200 with ``Err``/``Error``), or ``"status"``
        when ``status`` is given. ``schedule`` takes the other :class:`Rule` fields
        (``match``, ``nth``, ``times``, ``every``, ``probability``, ``phase``, ...).
        """
        kind = kind or ("status" if status is not None else "error")
        if status is not None:
            schedule["status"] = status
        with self._lock:
            return self.faults.add(Rule(method, kind, err, **schedule))

    def hold(self, method: str = "*", **match: Any) -> Rule:
        """Hold matching calls until ``rule.release()``; ``rule.wait_held()`` tells when
        one has arrived. For forcing races deterministically."""
        with self._lock:
            return self.faults.add(Rule(method, "hold", match=match))

    def respond(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> Reply:
        """Serve one call with the fault rules applied; see :class:`Reply`.

        :param timeout: how long the client waits for an answer (for ``hang``).
        :param gone: tells whether the client has gone away (for ``hang``/``hold``).
        """
        return respond(self, path, body, timeout=timeout, gone=gone)

    # -- WSGI ---------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.method != "POST":
            answer = {"Err": f"method {request.method} not allowed; use POST"}
            return Response(_wire.encode(answer), 405, content_type=CONTENT_TYPE)(
                environ, start_response
            )
        return serve_wsgi(self, request, environ, start_response)

    # -- the protocol without HTTP --------------------------------------------------------
    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Serve one call, with no faults: ``path`` such as ``/NetworkDriver.Join``,
        ``body`` the raw request. Returns the HTTP status and the answer object; never
        raises for bad input."""
        with self._lock:
            call = self._journal(path.lstrip("/"), body)
            self._notify(call)
        return call.status, call.response

    def _journal(self, method: str, body: bytes, fault: str | None = None) -> Call:
        """Serve ``method`` on the model and journal it (the caller holds the lock)."""
        subsystem, _, name = method.partition(".")
        error_key = "Error" if subsystem == "IpamDriver" else "Err"
        request: dict[str, Any] | None = None
        violations: tuple[str, ...] = ()
        notes: tuple[str, ...] = ()
        try:
            target, no_arguments = self._route(subsystem, name)
            request = _wire.decode(body, no_arguments=no_arguments)
            answer, violations = self._serve(method, target, request)
            status, error = 200, None
            notes = tuple(self._network.notes + self._ipam.notes)
        except DriverError as exc:
            status, error, answer = exc.status, exc.message, {error_key: exc.message}
        except Exception as exc:  # a bug in the fake: still answer in the protocol
            status, error = 500, f"internal error in fakedriver: {exc!r}"
            answer = {error_key: error}
        return self.record(method, request, answer, status, error, violations, fault, notes)

    def record(
        self,
        method: str,
        request: dict[str, Any] | None,
        answer: dict[str, Any],
        status: int,
        error: str | None,
        violations: tuple[str, ...] = (),
        fault: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> Call:
        """Append a journal entry (the caller holds the lock)."""
        index, now = len(self.calls), time.time()
        call = Call(index, method, request, answer, status, error, violations, fault, now, notes)
        self.calls.append(call)
        return call

    def amend(self, call: Call, **changes: Any) -> Call:
        """Replace a journal entry's fields, e.g. the answer a fault sent instead."""
        call = dataclasses.replace(call, **changes)
        self.calls[call.index] = call
        return call

    def _notify(self, call: Call) -> None:
        for listener in self.listeners:
            listener(call)

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
            model.call, model.findings, model.notes = index, [], []
        answer = target(request)
        found = tuple(str(f) for f in self._network.findings + self._ipam.findings)
        self.state.violations.extend(Violation(index, method, text) for text in found)
        return answer, found
