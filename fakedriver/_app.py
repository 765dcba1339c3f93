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
from ._errors import DriverError, UnknownMethod
from ._ipam import IpamModel
from ._journal import Call
from ._netdriver import NetworkModel
from ._persona import Persona
from ._state import State, Violation

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"

# Wire name -> (model method, takes no arguments). Subsystem decides the model.
_NETWORK_CALLS = {
    "GetCapabilities": ("get_capabilities", True),
    "GwAllocCheck": ("gw_alloc_check", False),
    "CreateNetwork": ("create_network", False),
    "DeleteNetwork": ("delete_network", False),
    "AllocateNetwork": ("allocate_network", False),
    "FreeNetwork": ("free_network", False),
    "CreateEndpoint": ("create_endpoint", False),
    "DeleteEndpoint": ("delete_endpoint", False),
    "EndpointOperInfo": ("endpoint_oper_info", False),
    "Join": ("join", False),
    "Leave": ("leave", False),
    "ProgramExternalConnectivity": ("program_external_connectivity", False),
    "RevokeExternalConnectivity": ("revoke_external_connectivity", False),
    "DiscoverNew": ("discover_new", False),
    "DiscoverDelete": ("discover_delete", False),
}
_IPAM_CALLS = {
    "GetCapabilities": ("get_capabilities", True),
    "GetDefaultAddressSpaces": ("get_default_address_spaces", True),
    "RequestPool": ("request_pool", False),
    "ReleasePool": ("release_pool", False),
    "RequestAddress": ("request_address", False),
    "ReleaseAddress": ("release_address", False),
}
#: Every method of both protocols, as ``Subsystem.Method``.
METHODS = (
    "Plugin.Activate",
    *(f"NetworkDriver.{name}" for name in _NETWORK_CALLS),
    *(f"IpamDriver.{name}" for name in _IPAM_CALLS),
)


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

    def __init__(self, persona: Persona | None = None, **options: Any) -> None:
        base = persona or Persona()
        self.persona = dataclasses.replace(base, **options) if options else base
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget all state, calls and violations, and reseed; the persona stays."""
        with self._lock:
            self.state = State()
            self.calls: list[Call] = []
            rng = random.Random(self.persona.seed)
            self._network = NetworkModel(self.state, self.persona, rng)
            self._ipam = IpamModel(self.state, self.persona, rng)

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
            self.calls.append(
                Call(
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
            )
        return status, answer

    def _route(self, subsystem: str, name: str) -> tuple[Callable[[Any], dict[str, Any]], bool]:
        if subsystem == "Plugin" and name == "Activate":
            return self._activate, True
        table, model, on = {
            "NetworkDriver": (_NETWORK_CALLS, self._network, self.persona.network),
            "IpamDriver": (_IPAM_CALLS, self._ipam, self.persona.ipam),
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
