"""A second network and IPAM plugin, written here for the conformance kit's tests without a
line of fakedriver: the simplest honest driver (``http.server`` on a unix socket, state in
dicts under one lock), and the defects a test can inject by name (`DEFECTS`).

Honest, it keeps networks, endpoints, joins, pools and leases; refuses what it does not
hold (200 with ``Err`` for NetworkDriver, with ``Error`` for IpamDriver); hands out the
first free address of a pool; answers Join with the network's gateway, bare.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

#: Each defect and what it breaks.
DEFECTS = {
    "missing_implements": "Activate answers no Implements",
    "bad_scope": "GetCapabilities answers Scope 'Local'",
    "flaky_capabilities": "GetCapabilities answers a different ConnectivityScope each time",
    "mac_over_request": "CreateEndpoint answers a MAC even when the request has one",
    "gateway_prefix": "Join answers the Gateway with its prefix length",
    "join_hang": "Join never answers",
    "leave_500": "Leave answers 500",
    "refuse_delete_joined": "DeleteEndpoint of a joined endpoint (no Leave first) is refused",
    "net_error_key": "NetworkDriver errors in IPAM's key, Error",
    "ipam_err_key": "IPAM errors in NetworkDriver's key, Err",
    "accept_unknown_network": "CreateEndpoint on an unknown network succeeds",
    "pool_bare": "RequestPool answers a Pool without its prefix length",
    "bare_address": "RequestAddress answers a bare IP",
    "duplicate_address": "RequestAddress hands out the pool's first address every time",
    "outside_pool": "RequestAddress answers an address past the pool's end",
    "racy_allocator": "RequestAddress allocates without a lock",
    "no_reuse": "ReleaseAddress does not free the address",
}

V4_BASE, V6_BASE = ipaddress.ip_network("10.123.0.0/16"), ipaddress.ip_network("fd12:3456::/48")


class Refusal(Exception):
    pass


class Plugin:
    """The driver's state and calls."""

    def __init__(self, defects: frozenset[str] = frozenset()) -> None:
        unknown = defects - set(DEFECTS)
        assert not unknown, unknown
        self.defects = defects
        self.lock = threading.Lock()
        self.networks: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {}
        self.carved = {4: 0, 6: 0}
        self.capability_calls = 0
        self.stop = threading.Event()
        self.macs = 0

    # -- dispatch ------------------------------------------------------------------------
    def handle(self, method: str, body: Any) -> tuple[int, dict[str, Any]]:
        subsystem, _, name = method.partition(".")
        body = body if isinstance(body, dict) else {}
        if method == "NetworkDriver.Join" and "join_hang" in self.defects:
            self.stop.wait()
            return 500, {"Err": "stopped"}
        if method == "NetworkDriver.Leave" and "leave_500" in self.defects:
            return 500, {"Err": "boom"}
        if method == "IpamDriver.RequestAddress" and "racy_allocator" in self.defects:
            try:
                return 200, self.request_address(body, racy=True)
            except Refusal as exc:
                return 200, self.error(subsystem, str(exc))
        handler = getattr(self, f"{subsystem}_{name}".replace(".", "_"), None)
        if handler is None:
            return 404, {"Err": f"unknown method {method}"}
        with self.lock:
            try:
                return 200, handler(body)
            except Refusal as exc:
                return 200, self.error(subsystem, str(exc))

    def error(self, subsystem: str, message: str) -> dict[str, Any]:
        key = "Error" if subsystem == "IpamDriver" else "Err"
        if subsystem == "IpamDriver" and "ipam_err_key" in self.defects:
            key = "Err"
        if subsystem == "NetworkDriver" and "net_error_key" in self.defects:
            key = "Error"
        return {key: message}

    # -- handshake -------------------------------------------------------------------------
    def Plugin_Activate(self, body: Any) -> dict[str, Any]:
        if "missing_implements" in self.defects:
            return {}
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    def NetworkDriver_GetCapabilities(self, body: Any) -> dict[str, Any]:
        self.capability_calls += 1
        scope = "Local" if "bad_scope" in self.defects else "local"
        connectivity = "local"
        if "flaky_capabilities" in self.defects and self.capability_calls % 2 == 0:
            connectivity = ""
        return {"Scope": scope, "ConnectivityScope": connectivity}

    def IpamDriver_GetCapabilities(self, body: Any) -> dict[str, Any]:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    def IpamDriver_GetDefaultAddressSpaces(self, body: Any) -> dict[str, Any]:
        return {
            "LocalDefaultAddressSpace": "indep-local",
            "GlobalDefaultAddressSpace": "indep-global",
        }

    # -- networks and endpoints ----------------------------------------------------------------
    def _network(self, nid: str) -> dict[str, Any]:
        if nid not in self.networks:
            raise Refusal(f"no network {nid}")
        return self.networks[nid]

    def _endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoints = self._network(str(body.get("NetworkID")))["endpoints"]
        eid = str(body.get("EndpointID"))
        if eid not in endpoints:
            raise Refusal(f"no endpoint {eid}")
        return endpoints[eid]

    def NetworkDriver_CreateNetwork(self, body: dict[str, Any]) -> dict[str, Any]:
        nid = str(body.get("NetworkID"))
        if nid in self.networks:
            raise Refusal(f"network {nid} exists")
        gateway = ""
        for data in body.get("IPv4Data") or []:
            gateway = str(data.get("Gateway") or "").partition("/")[0]
        options = body.get("Options") or {}
        internal = bool(options.get("com.docker.network.internal"))
        self.networks[nid] = {"endpoints": {}, "gateway": gateway, "internal": internal}
        return {}

    def NetworkDriver_DeleteNetwork(self, body: dict[str, Any]) -> dict[str, Any]:
        network = self._network(str(body.get("NetworkID")))
        if network["endpoints"]:
            raise Refusal("the network has endpoints")
        del self.networks[str(body.get("NetworkID"))]
        return {}

    def NetworkDriver_CreateEndpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        nid, eid = str(body.get("NetworkID")), str(body.get("EndpointID"))
        if nid not in self.networks and "accept_unknown_network" in self.defects:
            return {}
        endpoints = self._network(nid)["endpoints"]
        if eid in endpoints:
            raise Refusal(f"endpoint {eid} exists")
        asked = body.get("Interface") or {}
        endpoints[eid] = {"joined": False}
        if asked.get("MacAddress") and "mac_over_request" not in self.defects:
            return {}
        self.macs += 1
        mac = "02:12:" + ":".join(f"{b:02x}" for b in self.macs.to_bytes(4, "big"))
        return {"Interface": {"MacAddress": mac}}

    def NetworkDriver_DeleteEndpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(body)
        if endpoint["joined"] and "refuse_delete_joined" in self.defects:
            raise Refusal("the endpoint is joined: Leave first")
        del self.networks[str(body["NetworkID"])]["endpoints"][str(body["EndpointID"])]
        return {}

    def NetworkDriver_Join(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(body)
        if endpoint["joined"]:
            raise Refusal("already joined")
        endpoint["joined"] = True
        answer: dict[str, Any] = {"InterfaceName": {"SrcName": "", "DstPrefix": "eth"}}
        network = self.networks[str(body["NetworkID"])]
        if network["gateway"] and not network["internal"]:
            suffix = "/24" if "gateway_prefix" in self.defects else ""
            answer["Gateway"] = network["gateway"] + suffix
        return answer

    def NetworkDriver_Leave(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(body)
        if not endpoint["joined"]:
            raise Refusal("not joined")
        endpoint["joined"] = False
        return {}

    def NetworkDriver_EndpointOperInfo(self, body: dict[str, Any]) -> dict[str, Any]:
        self._endpoint(body)
        return {"Value": {}}

    def NetworkDriver_ProgramExternalConnectivity(self, body: dict[str, Any]) -> dict[str, Any]:
        self._endpoint(body)
        return {}

    def NetworkDriver_RevokeExternalConnectivity(self, body: dict[str, Any]) -> dict[str, Any]:
        self._endpoint(body)
        return {}

    # -- IPAM ------------------------------------------------------------------------------------
    def IpamDriver_RequestPool(self, body: dict[str, Any]) -> dict[str, Any]:
        version = 6 if body.get("V6") else 4
        if body.get("Pool"):
            try:
                net = ipaddress.ip_network(str(body["Pool"]))
            except ValueError as exc:
                raise Refusal(str(exc)) from None
        else:
            base, length = (V4_BASE, 24) if version == 4 else (V6_BASE, 64)
            net = list(base.subnets(new_prefix=length))[self.carved[version]]
            self.carved[version] += 1
        pool_id = f"indep/{net}"
        if pool_id in self.pools:
            raise Refusal(f"pool {net} is in use")
        self.pools[pool_id] = {"net": net, "leased": set()}
        shown = str(net.network_address) if "pool_bare" in self.defects else str(net)
        return {"PoolID": pool_id, "Pool": shown, "Data": {}}

    def IpamDriver_ReleasePool(self, body: dict[str, Any]) -> dict[str, Any]:
        if str(body.get("PoolID")) not in self.pools:
            raise Refusal(f"no pool {body.get('PoolID')}")
        del self.pools[str(body.get("PoolID"))]
        return {}

    def IpamDriver_RequestAddress(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request_address(body)

    def request_address(self, body: dict[str, Any], racy: bool = False) -> dict[str, Any]:
        pool = self.pools.get(str(body.get("PoolID")))
        if pool is None:
            raise Refusal(f"no pool {body.get('PoolID')}")
        net, leased = pool["net"], pool["leased"]
        if body.get("Address"):
            address = ipaddress.ip_address(str(body["Address"]))
            if address not in net:
                raise Refusal(f"{address} is not in {net}")
            if address in leased:
                raise Refusal(f"{address} is in use")
        else:
            twice = "duplicate_address" in self.defects
            free = (a for a in net.hosts() if a not in leased or twice)
            address = next(free, None)
            if address is None:
                raise Refusal(f"{net} is full")
            if racy:
                time.sleep(0.05)  # the window another call walks through
        leased.add(address)
        if "outside_pool" in self.defects:
            address = address + net.num_addresses
        if "bare_address" in self.defects:
            return {"Address": str(address), "Data": {}}
        return {"Address": f"{address}/{net.prefixlen}", "Data": {}}

    def IpamDriver_ReleaseAddress(self, body: dict[str, Any]) -> dict[str, Any]:
        pool = self.pools.get(str(body.get("PoolID")))
        if pool is None:
            raise Refusal(f"no pool {body.get('PoolID')}")
        address = ipaddress.ip_address(str(body.get("Address")))
        if address not in pool["leased"]:
            raise Refusal(f"{address} is not leased")
        if "no_reuse" not in self.defects:
            pool["leased"].discard(address)
        return {}


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = 128  # dockerd's calls come at once (and Go does not wait for room)
    plugin: Plugin

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (the kit's timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            self._answer(400, {"Err": "not JSON"})
            return
        status, answer = self.server.plugin.handle(self.path.lstrip("/"), body)
        self._answer(status, answer)

    def _answer(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Served:
    """The plugin on a unix socket at ``path``, in a thread, until `close()`."""

    def __init__(self, path: str, defects: frozenset[str] = frozenset()) -> None:
        self.path, self.plugin = path, Plugin(defects)
        self.server = _Server(path, _Handler)
        self.server.plugin = self.plugin
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.plugin.stop.set()
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)
        self.thread.join(timeout=10)
