"""The persona: what kind of driver the fake pretends to be.

A persona is fixed for the life of a [`FakeNetDriver`][fakedriver.FakeNetDriver] (``reset()`` keeps
it). Everything a real driver would announce in its capabilities, plus the few choices a
real driver makes on its own (pools handed out, MACs, routes), lives here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

_SCOPES = ("local", "global")
_GO_CIDR = re.compile(r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$")


@dataclass(frozen=True)
class Persona:
    """The fake driver's announced capabilities and behaviour.

    :param scope: ``Scope`` from ``NetworkDriver.GetCapabilities``, ``"local"`` or
        ``"global"``. Only a global driver accepts ``AllocateNetwork``/``FreeNetwork``.
    :param connectivity_scope: ``ConnectivityScope``; ``""`` means the same as ``scope``.
    :param gw_alloc_checker: announce ``GwAllocChecker`` and answer ``GwAllocCheck`` with
        ``skip_ipv4``/``skip_ipv6``, and skip both where Join would never answer a gateway
        (an ``--internal`` network, or ``join_gateway`` off).
    :param skip_ipv4: ``SkipIPv4`` answered by ``GwAllocCheck``: dockerd allocates no IPv4
        gateway.
    :param skip_ipv6: ``SkipIPv6`` answered by ``GwAllocCheck``: no IPv6 gateway.
    :param network: implement ``NetworkDriver``.
    :param ipam: implement ``IpamDriver`` as well.
    :param requires_mac_address: IPAM capability ``RequiresMACAddress``; endpoint address
        requests must then carry the endpoint's MAC in their options.
    :param requires_request_replay: IPAM capability ``RequiresRequestReplay``; pools and
        addresses held from before a daemon restart may be requested again once.
    :param local_address_space: the local name answered by ``GetDefaultAddressSpaces``;
        pools may be requested in the local and global spaces only.
    :param global_address_space: the global name answered by ``GetDefaultAddressSpaces``.
    :param default_pools: where pools come from when ``RequestPool`` names none:
        ``(network, prefix length)`` pairs, IPv4 and IPv6, carved in order.
    :param assign_mac: answer ``CreateEndpoint`` with a generated MAC when the request has none.
    :param interface_prefix: ``DstPrefix`` answered by ``Join`` (the container-side name stem).
    :param join_gateway: answer ``Join`` with the network's gateways (never on an
        ``--internal`` network: CreateNetwork said ``com.docker.network.internal: true``).
    :param static_routes: ``StaticRoutes`` answered by every ``Join``: dicts with
        ``Destination`` (CIDR), ``RouteType`` (0 next hop, 1 connected) and ``NextHop``.
    :param disable_gateway_service: ``DisableGatewayService`` answered by ``Join``.
    :param strict: refuse calls that break the lifecycle; when false they are recorded in
        ``violations`` and tolerated where the driver can carry on.
    :param seed: seeds every generated value (MACs), so runs are reproducible.
    """

    scope: str = "local"
    connectivity_scope: str = ""
    gw_alloc_checker: bool = False
    skip_ipv4: bool = False
    skip_ipv6: bool = False
    network: bool = True
    ipam: bool = True
    requires_mac_address: bool = False
    requires_request_replay: bool = False
    local_address_space: str = "LocalDefault"
    global_address_space: str = "GlobalDefault"
    default_pools: tuple[tuple[str, int], ...] = (("10.200.0.0/16", 24), ("fd00:fa4e::/48", 64))
    assign_mac: bool = True
    interface_prefix: str = "eth"
    join_gateway: bool = True
    static_routes: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    disable_gateway_service: bool = False
    strict: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scope not in _SCOPES:
            raise ValueError(f"scope must be 'local' or 'global', not {self.scope!r}")
        if self.connectivity_scope not in ("", *_SCOPES):
            wrong = self.connectivity_scope
            raise ValueError(f"connectivity_scope must be '', 'local' or 'global', not {wrong!r}")
        if not (self.network or self.ipam):
            raise ValueError("a persona must implement NetworkDriver, IpamDriver or both")
        if not self.local_address_space or not self.global_address_space:
            raise ValueError("address space names must not be empty")
        for route in self.static_routes:
            _check_route(route)
        for base, length in self.default_pools:
            net = ipaddress.ip_network(base)
            if not net.prefixlen <= length <= net.max_prefixlen:
                raise ValueError(f"default pool {base}: cannot carve /{length} pools from it")

    @property
    def implements(self) -> list[str]:
        """The ``Implements`` list answered by ``Plugin.Activate``."""
        return [
            name for name, on in (("NetworkDriver", self.network), ("IpamDriver", self.ipam)) if on
        ]

    @property
    def address_spaces(self) -> tuple[str, str]:
        """The local and global address spaces, as GetDefaultAddressSpaces answers them."""
        return (self.local_address_space, self.global_address_space)


def _check_route(route: dict[str, Any]) -> None:
    """A static route as Docker (Go's net package) parses it from Join (protocol.md §2.9,
    §3.3): Python's ipaddress is kinder (netmasks, zones, integers), so check the text."""
    destination, hop, kind = (
        route.get("Destination"),
        route.get("NextHop", ""),
        route.get("RouteType", 0),
    )
    if not isinstance(destination, str) or not _GO_CIDR.fullmatch(destination):
        raise ValueError(f"static route Destination must be CIDR (ADDR/LEN): {destination!r}")
    ipaddress.ip_interface(destination)
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise ValueError("static route RouteType must be an integer (0 next hop, 1 connected)")
    if not isinstance(hop, str) or "%" in hop:
        raise ValueError(f"static route NextHop must be an IP address or '': {hop!r}")
    if hop:
        ipaddress.ip_address(hop)
