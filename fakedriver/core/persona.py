"""The persona: what kind of driver the fake pretends to be.

A persona is fixed for the life of a [`FakeNetDriver`][fakedriver.FakeNetDriver] (``reset()`` keeps
it). Everything a real driver would announce in its capabilities, plus the few choices a
real driver makes on its own (pools handed out, MACs, routes), lives here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import Field, dataclass, field, fields
from typing import Any

_SCOPES = ("local", "global")
_GO_CIDR = re.compile(r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$")
_ROUTE_KEYS = ("Destination", "RouteType", "NextHop")
#: The longest ``interface_prefix``: Linux names an interface in 15 characters, and dockerd
#: adds an index of one digit at least (``eth0``).
_PREFIX_MOST = 14
#: What Linux takes in an interface's name as it is: printable ASCII but a space, ``/``,
#: ``:`` and ``%`` (a template: ``%d`` is a number of the kernel's choosing).
_PREFIX = re.compile(rf"[!-$&-.0-9;-~]{{1,{_PREFIX_MOST}}}")
#: The largest seed: a 64-bit signed integer, as any JSON reader takes it.
_SEED_MOST = 2**63 - 1


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
        """Check every field, its type first (a ``bool`` is no ``int`` here), then its
        value, so that a persona that would fail a call later cannot be built: each
        refusal is a `ValueError` naming the field."""
        for each in fields(self):
            _check_type(each, getattr(self, each.name))
        if self.scope not in _SCOPES:
            raise ValueError(f"scope must be 'local' or 'global', not {_shown(self.scope)}")
        if self.connectivity_scope not in ("", *_SCOPES):
            wrong = _shown(self.connectivity_scope)
            raise ValueError(f"connectivity_scope must be '', 'local' or 'global', not {wrong}")
        if not (self.network or self.ipam):
            raise ValueError("a persona must implement NetworkDriver, IpamDriver or both")
        for name in ("local_address_space", "global_address_space"):
            space = getattr(self, name)
            if not space:
                raise ValueError(f"{name}: address space names must not be empty")
            if not space.isprintable():
                raise ValueError(f"{name} must be printable, not {_shown(space)}")
        prefix = self.interface_prefix
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(
                f"interface_prefix must be 1 to {_PREFIX_MOST} characters Linux takes in an "
                f"interface's name (no space, '/', ':' or '%'), not {_shown(prefix)}"
            )
        if not 0 <= self.seed <= _SEED_MOST:
            raise ValueError(f"seed must be from 0 to 2**63 - 1, not {_shown(self.seed)}")
        for route in self.static_routes:
            _check_route(route)
        for pair in self.default_pools:
            _check_pool(pair)

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


def _shown(value: Any) -> str:
    """``value`` in an error, as Python writes it, cut down when long."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text)} characters)"


#: What each kind of field must be, by the type of its default (a list is taken for a
#: tuple: the command line and TOML give lists).
_KINDS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    str: ((str,), "a string"),
    int: ((int,), "an integer"),
    tuple: ((tuple, list), "a list"),
}


def _check_type(each: Field[Any], value: Any) -> None:
    default = each.default_factory() if callable(each.default_factory) else each.default
    kinds, wanted = _KINDS[type(default)]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"{each.name} must be {wanted}, not {_shown(value)}")


def _check_pool(pair: Any) -> None:
    """A default pool: ``(network, prefix length)``, the length between the network's own
    and the family's longest."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise ValueError(f"default_pools: each must be (NETWORK, LENGTH), not {_shown(pair)}")
    base, length = pair
    if not isinstance(base, str):
        raise ValueError(f"default_pools: a network is a string (CIDR), not {_shown(base)}")
    try:
        net = ipaddress.ip_network(base)
    except ValueError as exc:
        raise ValueError(f"default_pools: {exc}") from None
    if not isinstance(length, int) or isinstance(length, bool):
        raise ValueError(
            f"default_pools: default pool {base}: the prefix length must be an integer, "
            f"not {_shown(length)}"
        )
    if not net.prefixlen <= length <= net.max_prefixlen:
        raise ValueError(
            f"default_pools: default pool {base}: cannot carve /{length} pools from it"
        )


def _check_route(route: Any) -> None:
    """A static route as Docker (Go's net package) parses it from Join (protocol.md §2.9,
    §3.3): Python's ipaddress is kinder (netmasks, zones, integers), so check the text.
    Join answers it as it is, so it holds only the keys of Docker's route."""
    if not isinstance(route, dict):
        raise ValueError(
            f"static_routes: each must be an object of {', '.join(_ROUTE_KEYS)}, not "
            f"{_shown(route)}"
        )
    unknown = sorted(map(str, set(route) - set(_ROUTE_KEYS)))
    if unknown:
        raise ValueError(
            f"static_routes: static route has unknown key(s) {unknown}; known: {list(_ROUTE_KEYS)}"
        )
    destination, hop, kind = (
        route.get("Destination"),
        route.get("NextHop", ""),
        route.get("RouteType", 0),
    )
    if not isinstance(destination, str) or not _GO_CIDR.fullmatch(destination):
        raise ValueError(
            f"static_routes: static route Destination must be CIDR (ADDR/LEN): "
            f"{_shown(destination)}"
        )
    try:
        ipaddress.ip_interface(destination)
    except ValueError as exc:
        raise ValueError(f"static_routes: static route Destination: {exc}") from None
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in (0, 1):
        raise ValueError(
            "static_routes: static route RouteType must be an integer, 0 (next hop) or 1 "
            f"(connected), not {_shown(kind)}"
        )
    if not isinstance(hop, str) or "%" in hop:
        raise ValueError(
            f"static_routes: static route NextHop must be an IP address or '': {_shown(hop)}"
        )
    if hop:
        try:
            ipaddress.ip_address(hop)
        except ValueError as exc:
            raise ValueError(f"static_routes: static route NextHop: {exc}") from None
