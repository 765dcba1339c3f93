"""The methods of both protocols as data, and how a short name resolves to one of them.

Each `Method` row names the model that serves it, the model's function, and the
fields of its request (as dockerd 20.10 and 28 send them: protocol.md §2 and §6, and the
captures in ``shared/dockerd``): adding a protocol method is a row here and a function on
its model.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .ipam import IpamModel
from .model import Model
from .netdriver import NetworkModel
from .wire import Body


class PluginModel(Model):
    """``/Plugin.Activate``: the handshake before any other call."""

    def activate(self, body: Body) -> dict[str, Any]:
        self.state.new_epoch()  # a new daemon session (RequiresRequestReplay counts them)
        return {"Implements": self.persona.implements}


@dataclass(frozen=True)
class Method:
    """One method of the plugin protocols.

    :param name: the wire name, ``"NetworkDriver.Join"``.
    :param model: the model class that serves it (one is made per call).
    :param handler: the model's function: ``handler(model, request) -> answer``.
    :param no_arguments: the request may be empty (dockerd sends ``Content-Length: 0``).
    :param read_only: the call changes no state (nothing to save after it).
    :param fields: the top-level keys of its request, as dockerd sends them (a fault's
        ``match`` may name only these).
    """

    name: str
    model: type[Model]
    handler: Callable[[Any, Body], dict[str, Any]]
    no_arguments: bool = False
    read_only: bool = False
    fields: tuple[str, ...] = ()

    @property
    def subsystem(self) -> str:
        return self.name.partition(".")[0]


def _rows() -> dict[str, Method]:
    n, i = NetworkModel, IpamModel
    net, ids, opts = ("NetworkID",), ("NetworkID", "EndpointID"), ("Options",)
    network = (*net, *opts, "IPv4Data", "IPv6Data")
    discovery = ("DiscoveryType", "DiscoveryData")
    endpoint = (*ids, "Interface", *opts)
    pool, address = ("PoolID",), ("PoolID", "Address")
    rows = [
        Method("Plugin.Activate", PluginModel, PluginModel.activate, no_arguments=True),
        Method("NetworkDriver.GetCapabilities", n, n.get_capabilities, True, True),
        Method("NetworkDriver.GwAllocCheck", n, n.gw_alloc_check, False, True, opts),
        Method("NetworkDriver.CreateNetwork", n, n.create_network, fields=network),
        Method("NetworkDriver.DeleteNetwork", n, n.delete_network, fields=net),
        Method("NetworkDriver.AllocateNetwork", n, n.allocate_network, fields=network),
        Method("NetworkDriver.FreeNetwork", n, n.free_network, fields=net),
        Method("NetworkDriver.CreateEndpoint", n, n.create_endpoint, fields=endpoint),
        Method("NetworkDriver.DeleteEndpoint", n, n.delete_endpoint, fields=ids),
        Method("NetworkDriver.EndpointOperInfo", n, n.endpoint_oper_info, False, True, ids),
        Method("NetworkDriver.Join", n, n.join, fields=(*ids, "SandboxKey", *opts)),
        Method("NetworkDriver.Leave", n, n.leave, fields=ids),
        Method(
            "NetworkDriver.ProgramExternalConnectivity",
            n,
            n.program_external_connectivity,
            fields=(*ids, *opts),
        ),
        Method(
            "NetworkDriver.RevokeExternalConnectivity",
            n,
            n.revoke_external_connectivity,
            fields=ids,
        ),
        Method("NetworkDriver.DiscoverNew", n, n.discover_new, fields=discovery),
        Method("NetworkDriver.DiscoverDelete", n, n.discover_delete, fields=discovery),
        Method("IpamDriver.GetCapabilities", i, i.get_capabilities, True, True),
        Method("IpamDriver.GetDefaultAddressSpaces", i, i.get_default_address_spaces, True, True),
        Method(
            "IpamDriver.RequestPool",
            i,
            i.request_pool,
            fields=("AddressSpace", "Pool", "SubPool", *opts, "V6"),
        ),
        Method("IpamDriver.ReleasePool", i, i.release_pool, fields=pool),
        Method("IpamDriver.RequestAddress", i, i.request_address, fields=(*address, *opts)),
        Method("IpamDriver.ReleaseAddress", i, i.release_address, fields=address),
    ]
    return {row.name: row for row in rows}


#: Every method of both protocols by wire name.
TABLE = _rows()
#: Every method of both protocols, as ``Subsystem.Method``.
METHODS = tuple(TABLE)


def resolve(name: str) -> str:
    """``"Join"`` -> ``"NetworkDriver.Join"``; full names are returned as they are.

    Raises `ValueError` for a name no protocol has (with the nearest names), or
    one both have (``GetCapabilities``).
    """
    if name in TABLE:
        return name
    found = [m for m in METHODS if m.split(".", 1)[1] == name]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{name!r} is ambiguous: say {' or '.join(found)}")
    short = {m.split(".", 1)[1] for m in METHODS}
    close = difflib.get_close_matches(name, [*METHODS, *short], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{name!r} is not a method of either protocol{hint}")
