"""The methods of both protocols, and how a short name resolves to one of them."""

from __future__ import annotations

# Wire name -> (model method, takes no arguments). Subsystem decides the model.
NETWORK_CALLS = {
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
IPAM_CALLS = {
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
    *(f"NetworkDriver.{name}" for name in NETWORK_CALLS),
    *(f"IpamDriver.{name}" for name in IPAM_CALLS),
)


def resolve(name: str) -> str:
    """``"Join"`` -> ``"NetworkDriver.Join"``; full names are returned as they are.

    Raises :class:`ValueError` for a name no protocol has, or one both have
    (``GetCapabilities``).
    """
    if name in METHODS:
        return name
    found = [m for m in METHODS if m.split(".", 1)[1] == name]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{name!r} is ambiguous: say {' or '.join(found)}")
    raise ValueError(f"{name!r} is not a method of either protocol")
