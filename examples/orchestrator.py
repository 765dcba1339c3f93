"""A small container orchestrator that drives a Docker network plugin the way dockerd does.

It speaks the remote ``NetworkDriver`` and ``IpamDriver`` protocols over HTTP with
``requests``, and uses the plugin for both: the plugin's IPAM hands out the pools and
addresses, its network driver wires up the endpoints. It is the code under test in
``test_orchestrator.py``, which runs it against ``fakedriver``'s ``fake_netdriver`` fixture.

::

    orchestrator = Orchestrator(requests.Session(), "http://plugin")
    net = orchestrator.create_network("backend")
    web = orchestrator.attach("web", net)      # web.address == "10.200.0.2/24"
    orchestrator.detach(web)
    orchestrator.delete_network(net)
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

log = logging.getLogger(__name__)

ACCEPT = "application/vnd.docker.plugins.v1.2+json"
GATEWAY_OPTIONS = {"RequestAddressType": "com.docker.network.gateway"}
SANDBOX_LABELS: dict[str, Any] = {
    "com.docker.network.portmap": [],
    "com.docker.network.endpoint.exposedports": [],
}
Undo = list[tuple[str, dict[str, Any]]]


class PluginError(Exception):
    """The plugin refused a call, or answered something that is not the protocol.

    :param method: the call, e.g. ``"NetworkDriver.Join"``.
    :param message: the plugin's error text (``Err`` or ``Error``), or what was wrong.
    :param status: the HTTP status of the answer (0 when no answer came).
    """

    def __init__(self, method: str, message: str, status: int = 200) -> None:
        super().__init__(f"{method}: {message}")
        self.method, self.message, self.status = method, message, status


class PluginUnavailable(PluginError):
    """A transient failure (HTTP 5xx or no connection) that outlasted every retry."""


class NetworkInUse(Exception):
    """``delete_network`` of a network that still has attachments; no call was made."""


@dataclass(frozen=True)
class Network:
    """A network created through the plugin: its pool and gateway belong to the plugin's IPAM."""

    name: str
    id: str
    pool_id: str
    subnet: str  #: CIDR, e.g. ``"10.200.0.0/24"``
    gateway: str  #: CIDR, e.g. ``"10.200.0.1/24"``


@dataclass(frozen=True)
class Attachment:
    """A container's endpoint on a network, joined to the container's sandbox."""

    container_id: str
    network: Network
    endpoint_id: str
    address: str  #: CIDR, as IPAM answered it
    mac_address: str  #: as CreateEndpoint answered it ("" if the driver chose none)
    sandbox_key: str
    gateway: str  #: bare IP from the Join answer ("" when the driver gave none)
    programmed: bool  #: whether external connectivity was programmed


def _bare(cidr: str) -> str:
    return cidr.split("/", 1)[0]


class Orchestrator:
    """Creates networks and attaches containers through one network + IPAM plugin.

    :param session: the ``requests.Session`` every call goes through.
    :param base_url: where the plugin answers, e.g. ``"http://plugin"``.
    :param attempts: how many times a call is tried when it fails transiently.
    :param backoff: the first delay between attempts, in seconds; it doubles each time.
    :param max_backoff: the longest delay between attempts.
    :param timeout: seconds to wait for each answer (a timeout counts as transient).
    :param sleep: how to wait between attempts (tests pass a function that only records).
    :param new_id: makes network and endpoint ids (64 hex characters, like dockerd's).

    Retrying a call after a 5xx assumes the plugin did nothing; that is how a plugin that
    fails before acting (or a proxy in front of it) answers.
    """

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        new_id: Callable[[], str] = lambda: secrets.token_hex(32),
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.session, self.base_url = session, base_url.rstrip("/")
        self.attempts, self.backoff, self.max_backoff = attempts, backoff, max_backoff
        self.timeout, self.sleep, self.new_id = timeout, sleep, new_id
        self.scope: str | None = None  #: the driver's Scope, once activated
        self.networks: dict[str, Network] = {}  #: by name
        self.attachments: dict[str, Attachment] = {}  #: by endpoint id

    # -- the plugin's lifecycle ----------------------------------------------------------
    def activate(self) -> str:
        """``Plugin.Activate`` and the capability handshake; returns the driver's Scope."""
        implements = self._call("Plugin.Activate").get("Implements") or []
        for needed in ("NetworkDriver", "IpamDriver"):
            if needed not in implements:
                raise PluginError("Plugin.Activate", f"the plugin does not implement {needed}")
        scope = self._call("NetworkDriver.GetCapabilities").get("Scope")
        if scope not in ("local", "global"):
            message = f"invalid capability: expecting 'local' or 'global', got {scope!r}"
            raise PluginError("NetworkDriver.GetCapabilities", message)
        self.scope = str(scope)
        return self.scope

    # -- networks --------------------------------------------------------------------------
    def create_network(self, name: str, subnet: str | None = None) -> Network:
        """Create ``name`` with a pool from the plugin's IPAM (``subnet``, or one it picks).

        On failure, whatever was allocated is released again, in dockerd's order.
        """
        if name in self.networks:
            raise ValueError(f"network {name!r} already exists")
        if self.scope is None:
            self.activate()
        spaces = self._call("IpamDriver.GetDefaultAddressSpaces")
        kind = "Global" if self.scope == "global" else "Local"
        space = _need(spaces, f"{kind}DefaultAddressSpace", "IpamDriver.GetDefaultAddressSpaces")
        undo: Undo = []
        with self._rollback(undo):
            pool = self._call("IpamDriver.RequestPool", {
                "AddressSpace": space, "Pool": subnet or "", "SubPool": "",
                "Options": {}, "V6": False,
            })
            pool_id = _need(pool, "PoolID", "IpamDriver.RequestPool")
            undo.append(("IpamDriver.ReleasePool", {"PoolID": pool_id}))
            gateway = _need(self._call("IpamDriver.RequestAddress", {
                "PoolID": pool_id, "Address": "", "Options": GATEWAY_OPTIONS,
            }), "Address", "IpamDriver.RequestAddress")
            undo.append(("IpamDriver.ReleaseAddress",
                         {"PoolID": pool_id, "Address": _bare(gateway)}))
            cidr = _need(pool, "Pool", "IpamDriver.RequestPool")
            network = Network(name, self.new_id(), pool_id, cidr, gateway)
            self._call("NetworkDriver.CreateNetwork", {
                "NetworkID": network.id,
                "Options": {"com.docker.network.enable_ipv6": False,
                            "com.docker.network.generic": {}},
                "IPv4Data": [{"AddressSpace": space, "Pool": network.subnet,
                              "Gateway": network.gateway}],
                "IPv6Data": [],
            })
        self.networks[name] = network
        return network

    def delete_network(self, network: Network) -> None:
        """Release the gateway and the pool, then delete the network (dockerd's order)."""
        busy = [a.container_id for a in self.attachments.values() if a.network == network]
        if busy:
            raise NetworkInUse(f"network {network.name} has attachments: {', '.join(busy)}")
        self._call("IpamDriver.ReleaseAddress",
                   {"PoolID": network.pool_id, "Address": _bare(network.gateway)})
        self._call("IpamDriver.ReleasePool", {"PoolID": network.pool_id})
        self._call("NetworkDriver.DeleteNetwork", {"NetworkID": network.id})
        del self.networks[network.name]

    # -- containers ------------------------------------------------------------------------
    def attach(self, container_id: str, network: Network) -> Attachment:
        """Give ``container_id`` an address and an endpoint on ``network``, join it to the
        container's sandbox and, when the driver answers a gateway, program external
        connectivity. On failure, what was done is undone in reverse order."""
        ids = {"NetworkID": network.id, "EndpointID": self.new_id()}
        sandbox_key = f"/var/run/docker/netns/{container_id[:12]}"
        undo: Undo = []
        with self._rollback(undo):
            address = _need(self._call("IpamDriver.RequestAddress", {
                "PoolID": network.pool_id, "Address": "", "Options": None,
            }), "Address", "IpamDriver.RequestAddress")
            undo.append(("IpamDriver.ReleaseAddress",
                         {"PoolID": network.pool_id, "Address": _bare(address)}))
            created = self._call("NetworkDriver.CreateEndpoint", {
                **ids, "Options": {},
                "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""},
            })
            undo.append(("NetworkDriver.DeleteEndpoint", ids))
            joined = self._call("NetworkDriver.Join",
                                {**ids, "SandboxKey": sandbox_key, "Options": SANDBOX_LABELS})
            undo.append(("NetworkDriver.Leave", ids))
            gateway = str(joined.get("Gateway") or "")
            if gateway:
                self._call("NetworkDriver.ProgramExternalConnectivity",
                           {**ids, "Options": SANDBOX_LABELS})
        mac = str((created.get("Interface") or {}).get("MacAddress") or "")
        attachment = Attachment(container_id, network, ids["EndpointID"], address, mac,
                                sandbox_key, gateway, programmed=bool(gateway))
        self.attachments[attachment.endpoint_id] = attachment
        return attachment

    def detach(self, attachment: Attachment) -> None:
        """Revoke connectivity, leave the sandbox, delete the endpoint, release the address."""
        ids = {"NetworkID": attachment.network.id, "EndpointID": attachment.endpoint_id}
        if attachment.programmed:
            self._call("NetworkDriver.RevokeExternalConnectivity", ids)
        self._call("NetworkDriver.Leave", ids)
        self._call("NetworkDriver.DeleteEndpoint", ids)
        self._call("IpamDriver.ReleaseAddress", {"PoolID": attachment.network.pool_id,
                                                 "Address": _bare(attachment.address)})
        del self.attachments[attachment.endpoint_id]

    # -- the wire --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _rollback(self, undo: Undo) -> Iterator[None]:
        """Run the ``undo`` steps, newest first, when a :class:`PluginError` escapes."""
        try:
            yield
        except PluginError:
            for method, body in reversed(undo):
                try:
                    self._call(method, body)
                except PluginError as exc:  # dockerd only logs a failing rollback step
                    log.error("rollback: %s", exc)
            raise

    def _call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one call; retry transient failures; raise :class:`PluginError` on an error."""
        data = b"" if body is None else json.dumps(body).encode()
        failure = PluginUnavailable(method, "no attempt made", 0)
        for attempt in range(self.attempts):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                log.warning("%s; retrying in %ss", failure, delay)
                self.sleep(delay)
            try:
                response = self.session.post(f"{self.base_url}/{method}", data=data,
                                             headers={"Accept": ACCEPT}, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure = PluginUnavailable(method, f"cannot reach the plugin: {exc}", 0)
                continue
            if response.status_code >= 500:
                failure = PluginUnavailable(method, _error_text(response), response.status_code)
                continue
            return _answer(method, response)
        raise failure


def _answer(method: str, response: requests.Response) -> dict[str, Any]:
    """The answer object of a non-5xx response, or a PluginError."""
    if method in ("NetworkDriver.ProgramExternalConnectivity",
                  "NetworkDriver.RevokeExternalConnectivity") and response.status_code == 404:
        return {}  # dockerd: these two are optional for a driver
    if response.status_code != 200:
        raise PluginError(method, _error_text(response), response.status_code)
    try:
        answer = response.json()
    except ValueError:
        raise PluginError(method, f"answer is not JSON: {response.text!r}") from None
    if not isinstance(answer, dict):
        raise PluginError(method, f"answer is not a JSON object: {response.text!r}")
    error = answer.get("Error" if method.startswith("IpamDriver.") else "Err")
    if error:
        raise PluginError(method, str(error))
    return answer


def _need(answer: dict[str, Any], key: str, method: str) -> str:
    """A string field the answer must have (a PluginError when it does not)."""
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise PluginError(method, f"no {key} in the answer: {answer!r}")
    return value


def _error_text(response: requests.Response) -> str:
    """The ``Err``/``Error`` of a failed answer, else its raw body (as dockerd reports it)."""
    try:
        answer = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text!r}"
    if isinstance(answer, dict) and (answer.get("Err") or answer.get("Error")):
        return str(answer.get("Err") or answer.get("Error"))
    return f"HTTP {response.status_code}: {response.text!r}"
