"""The ``NetworkDriver`` protocol: one method per call, on the state, with no HTTP.

Each method takes the decoded request object and returns the answer object (without
``Err``). Refusals are raised as [`DriverError`][fakedriver.DriverError].
"""

from __future__ import annotations

from typing import Any

from . import wire as w
from .errors import BadRequest, Conflict, NotFound, ProtocolViolation
from .model import Model
from .ports import Links
from .state import Allocation, Endpoint, Join, Network, Node
from .wire import Body, IPAMData, IPInterface

#: dockerd 28's network option: ``false`` for an IPv6-only network (absent before 28).
ENABLE_IPV4 = "com.docker.network.enable_ipv4"
INTERNAL = "com.docker.network.internal"
#: dockerd 28's ProgramExternalConnectivity option: ``true`` when another endpoint is the
#: container's IPv6 gateway, so no host IPv6 port may be mapped to this one's IPv4 address.
NO_PROXY_6TO4 = "com.docker.network.driver.private.no_proxy_6to4"


class NetworkModel(Model):
    # -- capabilities -------------------------------------------------------------------
    def get_capabilities(self, body: Body) -> dict[str, Any]:
        p = self.persona
        answer: dict[str, Any] = {"Scope": p.scope, "ConnectivityScope": p.connectivity_scope}
        if p.gw_alloc_checker:
            answer["GwAllocChecker"] = True
        return answer

    def gw_alloc_check(self, body: Body) -> dict[str, Any]:
        """``SkipIPv4``/``SkipIPv6`` as the persona says, and for both families where the
        fake's Join would never answer that gateway (an ``--internal`` network, as moby's
        macvlan and ipvlan drivers skip theirs; ``join_gateway`` off): dockerd then
        allocates no gateway address."""
        options = _network_options(body)
        p = self.persona
        if not p.gw_alloc_checker:
            self.violate(Conflict("GwAllocCheck called, but GwAllocChecker was not announced"))
        unused = not p.join_gateway or options.get(INTERNAL) is True
        return {"SkipIPv4": p.skip_ipv4 or unused, "SkipIPv6": p.skip_ipv6 or unused}

    # -- networks -----------------------------------------------------------------------
    def create_network(self, body: Body) -> dict[str, Any]:
        nid = w.text(body, "NetworkID", required=True)
        options = _network_options(body)
        v4, v6 = w.ipam_data(body, "IPv4Data", 4), w.ipam_data(body, "IPv6Data", 6)
        if v4 and not w.option_flag(options, ENABLE_IPV4, True):
            raise BadRequest(
                f"invalid request: IPv4Data must be empty when Options[{ENABLE_IPV4}] is "
                "false (an IPv6-only network has no IPv4 pool)"
            )
        if nid in self.state.networks:
            self.violate(Conflict(f"network {nid} already exists"))
            return {}
        self.state.add_network(Network(nid, options, v4, v6, self.call, self.state.run))
        return {}

    def delete_network(self, body: Body) -> dict[str, Any]:
        network = self._network(w.text(body, "NetworkID", required=True))
        if network is None:
            return {}
        if network.endpoints:
            names = ", ".join(sorted(network.endpoints))
            self.violate(Conflict(f"network {network.id} has active endpoints: {names}"))
            for endpoint in list(network.endpoints.values()):
                self._leave(endpoint)  # a forgiving driver takes their host links too
                self.state.remove_endpoint(endpoint.id)
        self.state.remove_network(network.id)
        return {}

    def allocate_network(self, body: Body) -> dict[str, Any]:
        nid = w.text(body, "NetworkID", required=True)
        options = w.string_map(body, "Options")
        v4, v6 = w.ipam_data(body, "IPv4Data", 4), w.ipam_data(body, "IPv6Data", 6)
        if self.persona.scope != "global":
            self.violate(
                Conflict("AllocateNetwork is only for global-scope drivers; this one is local")
            )
        if nid in self.state.allocations:
            self.violate(Conflict(f"network {nid} is already allocated"))
            return {"Options": dict(self.state.allocations[nid].options)}
        self.state.allocate(Allocation(nid, options, v4, v6, self.call, self.state.run))
        return {"Options": dict(options)}

    def free_network(self, body: Body) -> dict[str, Any]:
        nid = w.text(body, "NetworkID", required=True)
        if nid not in self.state.allocations:
            self.violate(NotFound(f"network {nid} is not allocated"))
            return {}
        self.state.free(nid)
        return {}

    # -- endpoints ----------------------------------------------------------------------
    def create_endpoint(self, body: Body) -> dict[str, Any]:
        nid = w.text(body, "NetworkID", required=True)
        eid = w.text(body, "EndpointID", required=True)
        iface = w.mapping(body, "Interface")
        v4 = _optional(iface, "Address", 4)
        v6 = _optional(iface, "AddressIPv6", 6)
        mac = w.text(iface, "MacAddress")
        mac = w.mac(mac, "Interface.MacAddress") if mac else ""
        options = w.mapping(body, "Options")
        network = self._network(nid)
        if network is None:
            return {}
        if eid in self.state.endpoints:
            self.violate(Conflict(f"endpoint {eid} already exists"))
            return {}
        if v4 is not None and not w.option_flag(network.options, ENABLE_IPV4, True):
            self.violate(
                ProtocolViolation(
                    f"address {v4} on network {network.id}, which has IPv4 disabled "
                    f"({ENABLE_IPV4}: false)"
                )
            )
        for address, data in ((v4, network.ipv4_data), (v6, network.ipv6_data)):
            if address is not None:
                self._check_address(network, address, data)
        if mac and mac in network.macs:
            self.violate(Conflict(f"MAC address {mac} is in use by endpoint {network.macs[mac]}"))
        assigned = not mac and self.persona.assign_mac
        if assigned:
            mac = self._new_mac(network)
        endpoint = Endpoint(
            eid, network.id, v4, v6, mac, options, self.call, assigned, run=self.state.run
        )
        self.state.add_endpoint(endpoint)  # a tolerated duplicate leaves the first owner indexed
        return {"Interface": {"MacAddress": mac}} if assigned else {}

    def _check_address(self, network: Network, address: IPInterface, data: list[IPAMData]) -> None:
        if not any(address.ip in d.pool for d in data):
            pools = ", ".join(str(d.pool) for d in data) or "none"
            self.violate(
                ProtocolViolation(
                    f"address {address} is outside every pool of network {network.id} ({pools})"
                )
            )
        owner = network.addresses.get(address.ip)
        if owner is not None:
            self.violate(Conflict(f"address {address.ip} is in use by endpoint {owner}"))
        for d in data:
            reserved = {
                "gateway": d.gateway,
                **{f"aux address {k}": v for k, v in d.aux_addresses.items()},
            }
            for what, ip in reserved.items():
                if ip is not None and ip.ip == address.ip:
                    self.violate(Conflict(f"address {address.ip} is the network's {what}"))

    def _new_mac(self, network: Network) -> str:
        while True:
            octets = [0x02, *(self.rng.randrange(256) for _ in range(5))]
            mac = ":".join(f"{o:02x}" for o in octets)
            if mac not in network.macs:
                return mac

    def delete_endpoint(self, body: Body) -> dict[str, Any]:
        endpoint = self._endpoint(*_ids(body))
        if endpoint is None:
            return {}
        # dockerd deletes a joined endpoint without Leave when a Join it sent failed on its
        # side though the driver served it (the answer was lost, cut or malformed), and
        # after a Leave that failed: the Leave is implied, as a careful driver has it (the
        # removal says so, and the journal notes it).
        self._unlink(endpoint)
        self.state.remove_endpoint(endpoint.id)
        return {}

    def endpoint_oper_info(self, body: Body) -> dict[str, Any]:
        endpoint = self._endpoint(*_ids(body))
        if endpoint is None:
            return {"Value": {}}
        return {
            "Value": {
                "Address": str(endpoint.address or ""),
                "AddressIPv6": str(endpoint.address_v6 or ""),
                "MacAddress": endpoint.mac,
                "SandboxKey": endpoint.join.sandbox_key if endpoint.join else "",
                "ExternalConnectivity": endpoint.connectivity is not None,
                "Proxy6To4": _proxies_6to4(endpoint),
            }
        }

    # -- sandboxes ----------------------------------------------------------------------
    def join(self, body: Body) -> dict[str, Any]:
        ids = _ids(body)
        key = w.text(body, "SandboxKey", required=True)
        options = w.mapping(body, "Options")
        endpoint = self._endpoint(*ids)
        if endpoint is None:
            return {}
        if endpoint.join is not None:
            old = endpoint.join.sandbox_key
            self.violate(Conflict(f"endpoint {endpoint.id} is already joined to sandbox {old}"))
        answer = self._join_answer(endpoint)
        if self.links is not None:  # last: a failure here must leave nothing behind
            answer["InterfaceName"]["SrcName"] = self._link(self.links, endpoint.id)
        self.state.join(endpoint.id, Join(key, options, answer, self.call, self.state.run))
        return answer

    def _link(self, links: Links, eid: str) -> str:
        """Make the endpoint's host link, its intent recorded in the state first (a crash
        while it is made leaves the intent behind, for clean-up at the next start)."""
        held = eid in self.state.links
        self.state.add_link(eid)
        try:
            return links.create(eid)
        except BaseException:
            if not held:
                self.state.drop_link(eid)
            raise

    def _join_answer(self, endpoint: Endpoint) -> dict[str, Any]:
        p = self.persona
        network = self.state.networks[endpoint.network_id]
        answer: dict[str, Any] = {"InterfaceName": {"SrcName": "", "DstPrefix": p.interface_prefix}}
        if p.join_gateway and not network.internal:  # as dockerd's bridge: no way out
            for key, address, data in (
                ("Gateway", endpoint.address, network.ipv4_data),
                ("GatewayIPv6", endpoint.address_v6, network.ipv6_data),
            ):
                gateway = _gateway_for(address, data)
                if gateway:
                    answer[key] = gateway
        if p.static_routes:
            answer["StaticRoutes"] = [dict(route) for route in p.static_routes]
        if p.disable_gateway_service:
            answer["DisableGatewayService"] = True
        return answer

    def leave(self, body: Body) -> dict[str, Any]:
        endpoint = self._endpoint(*_ids(body))
        if endpoint is None:
            return {}
        if endpoint.join is None:
            self.violate(Conflict(f"endpoint {endpoint.id} is not joined to any sandbox"))
        self._leave(endpoint)
        return {}

    def _leave(self, endpoint: Endpoint) -> None:
        """End the endpoint's join: its host link and external connectivity go with it."""
        self._unlink(endpoint)
        self.state.leave(endpoint.id)

    def _unlink(self, endpoint: Endpoint) -> None:
        """Remove the host link of the endpoint's join, if it has one."""
        if endpoint.join is not None and endpoint.join.src_name and self.links is not None:
            self.links.delete(endpoint.id)
            self.state.drop_link(endpoint.id)

    def program_external_connectivity(self, body: Body) -> dict[str, Any]:
        ids = _ids(body)
        options = w.mapping(body, "Options")
        w.option_flag(options, NO_PROXY_6TO4, False)
        endpoint = self._endpoint(*ids)
        if endpoint is None:
            return {}
        if endpoint.join is None:
            self.violate(Conflict(f"endpoint {endpoint.id} is not joined to any sandbox"))
        self.state.set_connectivity(endpoint.id, options)
        return {}

    def revoke_external_connectivity(self, body: Body) -> dict[str, Any]:
        # dockerd revokes endpoints that were never programmed (internal networks, the
        # non-gateway endpoints of a container): that is legal and changes nothing.
        endpoint = self._endpoint(*_ids(body))
        if endpoint is not None:
            self.state.set_connectivity(endpoint.id, None)
        return {}

    # -- discovery ----------------------------------------------------------------------
    def discover_new(self, body: Body) -> dict[str, Any]:
        node = self._node(body)
        if node is not None:
            self.state.discover(node)
        return {}

    def discover_delete(self, body: Body) -> dict[str, Any]:
        node = self._node(body)
        if node is None:
            return {}
        if node.address not in self.state.nodes:  # it left all the same: forgotten
            self.violate(NotFound(f"node {node.address} was never discovered"))
        self.state.forget(node.address)
        return {}

    def _node(self, body: Body) -> Node | None:
        kind = w.integer(body, "DiscoveryType")
        data = w.mapping(body, "DiscoveryData")
        if kind != 1:  # only node discovery reaches a remote driver; others are ignored
            return None
        # Kept (and keyed) in canonical text, as Go compares parsed IPs: ``FD00::1`` and
        # ``fd00::1`` are one node, and a state file holds only canonical text.
        address = w.text(data, "Address", required=True)
        address = str(w.address(address, "DiscoveryData.Address"))
        bind = w.text(data, "BindAddress")
        if bind:
            bind = str(w.address(bind, "DiscoveryData.BindAddress"))
        return Node(address, bind, w.flag(data, "Self"), self.call, self.state.run)

    # -- lookups ------------------------------------------------------------------------
    def _network(self, nid: str) -> Network | None:
        network = self.state.networks.get(nid)
        if network is None:
            self.violate(NotFound(f"network {nid} not found"))
        return network

    def _endpoint(self, nid: str, eid: str) -> Endpoint | None:
        network = self._network(nid)
        if network is None:
            return None
        endpoint = network.endpoints.get(eid)
        if endpoint is None:
            self.violate(NotFound(f"endpoint {eid} not found in network {network.id}"))
        return endpoint


def _network_options(body: Body) -> dict[str, Any]:
    """The ``Options`` of CreateNetwork and GwAllocCheck (the same map), checked."""
    options = w.mapping(body, "Options")
    generic = options.get("com.docker.network.generic")
    if generic is not None and not isinstance(generic, dict):
        raise BadRequest("invalid request: Options[com.docker.network.generic] must be an object")
    w.option_flag(options, ENABLE_IPV4, True)
    return options


def _proxies_6to4(endpoint: Endpoint) -> bool:
    """Whether a driver with port mappings maps the host's IPv6 ports to this endpoint's
    IPv4 address: it has external connectivity and an IPv4 address but no IPv6 one, and
    dockerd did not say another endpoint is the IPv6 gateway (``no_proxy_6to4``)."""
    programmed = endpoint.connectivity
    if programmed is None or endpoint.address is None or endpoint.address_v6 is not None:
        return False
    return programmed.get(NO_PROXY_6TO4) is not True


def _ids(body: Body) -> tuple[str, str]:
    return w.text(body, "NetworkID", required=True), w.text(body, "EndpointID", required=True)


def _optional(body: Body, key: str, version: int) -> IPInterface | None:
    value = w.text(body, key)
    return w.cidr(value, f"Interface.{key}", version) if value else None


def _gateway_for(address: IPInterface | None, data: list[IPAMData]) -> str:
    """The bare gateway IP of the pool holding ``address`` (else of the first pool)."""
    if address is None:
        return ""
    with_gateway = [d for d in data if d.gateway is not None]
    for d in with_gateway:
        if address.ip in d.pool:
            return str(d.gateway.ip)  # type: ignore[union-attr]
    return str(with_gateway[0].gateway.ip) if with_gateway else ""  # type: ignore[union-attr]
