"""The ``IpamDriver`` protocol: address spaces, pools and addresses, with no HTTP.

Pool ids read ``<space>/<pool>`` or ``<space>/<pool>/<sub-pool>``, so the same request
always gets the same id. Addresses are answered in CIDR form with the pool's prefix
length and released by bare IP, as Docker expects.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from . import wire as w
from .errors import BadRequest, Conflict, NotFound, ResourceError
from .model import Model
from .pool import Lease, Pool, first_free
from .wire import Body, IPNetwork

GATEWAY_OPTION = ("RequestAddressType", "com.docker.network.gateway")
MAC_OPTION = "com.docker.network.endpoint.macaddress"


class IpamModel(Model):
    def get_capabilities(self, body: Body) -> dict[str, Any]:
        return {
            "RequiresMACAddress": self.persona.requires_mac_address,
            "RequiresRequestReplay": self.persona.requires_request_replay,
        }

    def get_default_address_spaces(self, body: Body) -> dict[str, Any]:
        local, global_ = self.persona.address_spaces
        return {"LocalDefaultAddressSpace": local, "GlobalDefaultAddressSpace": global_}

    # -- pools --------------------------------------------------------------------------
    def request_pool(self, body: Body) -> dict[str, Any]:
        space = w.text(body, "AddressSpace", required=True)
        v6 = w.flag(body, "V6")
        version = 6 if v6 else 4
        requested = w.text(body, "Pool")
        pool = w.subnet(requested, "Pool", version) if requested else None
        sub = w.text(body, "SubPool")
        sub_pool = w.subnet(sub, "SubPool", version) if sub else None
        options = w.string_map(body, "Options")
        if sub_pool is not None and (pool is None or not sub_pool.subnet_of(pool)):  # type: ignore[arg-type]
            raise BadRequest(
                f"invalid request: SubPool {sub} is not inside Pool {requested or '(none)'}"
            )
        if space not in self.persona.address_spaces:
            raise NotFound(
                f"unknown address space {space!r}; known: {', '.join(self.persona.address_spaces)}"
            )
        network = pool if pool is not None else self._carve(space, version)
        pid = f"{space}/{network}" + (f"/{sub_pool}" if sub_pool else "")
        held = self.state.pools.get(pid)
        if held is not None and self._replayed(held.epoch):
            self.state.claim_pool(pid)
            return self._pool_answer(held)
        clash = self._overlapping(space, network) if pool is not None else None  # carved: none
        if clash is not None:
            self.violate(Conflict(f"pool {network} overlaps pool {clash.network} ({clash.id})"))
            if held is not None:
                return self._pool_answer(held)
        new = Pool(
            pid, space, network, sub_pool, options, self.call, self.state.epoch, self.state.run
        )
        self.state.add_pool(new)
        return self._pool_answer(new)

    def _pool_answer(self, pool: Pool) -> dict[str, Any]:
        return {"PoolID": pool.id, "Pool": str(pool.network), "Data": {}}

    def _replayed(self, epoch: int) -> bool:
        """Whether something held since an earlier daemon session may be claimed again."""
        return self.persona.requires_request_replay and epoch < self.state.epoch

    def _overlapping(self, space: str, network: IPNetwork) -> Pool | None:
        for pool in self.state.pools.values():
            if pool.address_space == space and pool.network.overlaps(network):
                return pool
        return None

    def _carve(self, space: str, version: int) -> IPNetwork:
        """The first default pool of ``version`` that overlaps nothing in ``space``."""
        spans = self.state.pool_spans(space, version)  # O(pools) a carve, not O(pools^2)
        for base, length in self.persona.default_pools:
            parent = ipaddress.ip_network(base)
            if parent.version != version:
                continue
            carved = first_free(parent, length, spans)
            if carved is not None:
                return carved
        raise ResourceError(f"no available IPv{version} pool in address space {space}")

    def release_pool(self, body: Body) -> dict[str, Any]:
        pid = w.text(body, "PoolID", required=True)
        if pid not in self.state.pools:
            self.violate(NotFound(f"pool {pid} not found"))
            return {}
        pool = self.state.pools[pid]
        if pool.leases:
            shown = ", ".join(str(pool.address_of(v)) for v in sorted(pool.leases)[:3])
            more = f" and {len(pool.leases) - 3} more" if len(pool.leases) > 3 else ""
            self.violate(
                Conflict(
                    f"pool {pid} still has leased addresses ({shown}{more}): dockerd "
                    "releases every address of a pool before the pool"
                )
            )
        self.state.remove_pool(pid)
        return {}

    # -- addresses ----------------------------------------------------------------------
    def request_address(self, body: Body) -> dict[str, Any]:
        pid = w.text(body, "PoolID", required=True)
        wanted = w.text(body, "Address")
        options = w.string_map(body, "Options")
        pool = self.state.pools.get(pid)
        if pool is None:
            raise NotFound(f"pool {pid} not found")
        ip = w.address(wanted, "Address", pool.network.version) if wanted else None
        mac = options.get(MAC_OPTION, "")
        mac = w.mac(mac, f"Options[{MAC_OPTION}]") if mac else ""
        gateway = options.get(GATEWAY_OPTION[0]) == GATEWAY_OPTION[1]
        if self.persona.requires_mac_address and not gateway and not mac:
            self.violate(
                Conflict(f"RequiresMACAddress is announced, but no {MAC_OPTION} option came")
            )
        if ip is None:
            value = pool.next_free()
        else:
            value = pool.check_specific(ip)
            held = pool.leases.get(value)
            if held is not None:
                if not self._replayed(held.epoch):
                    raise ResourceError(f"address {ip} is already allocated in pool {pool.id}")
                self.state.claim_lease(pid, value)
                return self._address_answer(pool, value)
        kind = "gateway" if gateway else "address"
        lease = Lease(kind, mac, self.call, self.state.epoch, self.state.run)
        self.state.lease(pid, value, lease, requested=ip is not None)
        return self._address_answer(pool, value)

    def _address_answer(self, pool: Pool, value: int) -> dict[str, Any]:
        return {"Address": f"{pool.address_of(value)}/{pool.network.prefixlen}", "Data": {}}

    def release_address(self, body: Body) -> dict[str, Any]:
        pid = w.text(body, "PoolID", required=True)
        ip = w.address(w.text(body, "Address", required=True), "Address")
        pool = self.state.pools.get(pid)
        if pool is None:
            self.violate(NotFound(f"pool {pid} not found"))
            return {}
        w.address(str(ip), "Address", pool.network.version)
        value, wanted = int(ip), str(ip)
        if value not in pool.leases:
            self.violate(NotFound(f"address {wanted} is not allocated in pool {pid}"))
            return {}
        self.state.release(pid, value)
        return {}
