"""What swarm sends the fakes, checked: the test_swarm steps and their assertions, on
the journals and states the plugins' control APIs give (see docs/cluster.md, "Under a
real swarm")."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from .dockerd_env import IMAGE, ManagedPlugin, run_name
from .dockerd_versions import Expect
from .swarm_env import Node, converged
from .swarm_env import wait_until as until

NAME = run_name("fdswarm")
DRIVER = f"{NAME}:latest"  # swarm resolves a managed plugin by its full name only
ARGS = ("--scope", "global", "--connectivity-scope", "global", "--links", "veth", "--state",
        "/var/lib/fakedriver/state.db")  # fmt: skip
LOCAL, GLOBAL = "LocalDefault", "GlobalDefault"  # the persona's address spaces
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
SERIAL = {"com.docker.network.ipam.serial": "true"}
Call = dict[str, Any]


def named(calls: list[Call], method: str, **fields: Any) -> list[Call]:
    """The calls of ``method`` (``"RequestAddress"``) whose requests have ``fields``."""
    return [
        call
        for call in calls
        if call["method"].endswith(f".{method}")
        and all(call["request"].get(key) == value for key, value in fields.items())
    ]


def changes(calls: list[Call]) -> list[Call]:
    """The calls but capability queries, which dockerd sends whenever it loads a driver
    (at ``plugin enable``, again at ``swarm init``): no step's sequence depends on them."""
    queries = ("GetCapabilities", "GetDefaultAddressSpaces")
    return [c for c in calls if c["method"].split(".")[1] not in queries]


def brief(calls: list[Call]) -> str:
    """The calls, one short line each (for an assertion's message)."""
    return "\n".join(
        f"#{c['index']} {c['method']} {json.dumps(c['request'])[:160]}" for c in calls
    )


def quiet(plugin: ManagedPlugin, since: int) -> None:
    """Assert the fake got no call (but capability queries) from call ``since`` on."""
    late = changes(plugin.calls()[since:])
    assert not late, brief(late)


def methods(calls: list[Call]) -> list[str]:
    return [call["method"].split(".")[1] for call in calls]


def held_addresses(plugin: ManagedPlugin, space: str) -> set[str]:
    """The addresses the fake holds in ``space``."""
    pools = plugin.state()["pools"].values()
    return {ip for pool in pools if pool["address_space"] == space for ip in pool["leases"]}


def fake_endpoints(plugin: ManagedPlugin) -> dict[str, str]:
    """The fake's endpoints: id -> address (CIDR)."""
    return {eid: e["address"] for eid, e in plugin.state()["endpoints"].items()}


def settled(plugins: list[ManagedPlugin], manager: ManagedPlugin, replicas: int) -> bool:
    """``replicas`` endpoints over the nodes, and the manager holding a global address for
    each, the service VIP and the gateway, and no more."""
    endpoints = sum(len(fake_endpoints(p)) for p in plugins)
    return endpoints == replicas and len(held_addresses(manager, GLOBAL)) == replicas + 2


def check_replicas(node: Node, plugin: ManagedPlugin, service: str, pool: str) -> set[str]:
    """Every running task container of ``node`` has the address its fake gave the
    endpoint, in the pool; returns those addresses."""
    held = fake_endpoints(plugin)
    found = set()
    for container in node.containers(service):
        (attached,) = container["NetworkSettings"]["Networks"].values()
        address = f"{attached['IPAddress']}/{attached['IPPrefixLen']}"
        assert held[attached["EndpointID"]] == address, (container["Name"], held)
        assert ipaddress.ip_interface(address).ip in ipaddress.ip_network(pool)
        found.add(attached["IPAddress"])
    assert len(found) == len(held), (found, held)  # no endpoint the fake holds goes unused
    return found


def create_network(manager: Node, plugin: ManagedPlugin, network: str) -> tuple[str, str, str]:
    """``network create --scope swarm``: on the manager, a pool and a gateway in the global
    space, then AllocateNetwork with them and the options; returns (id, pool, gateway)."""
    before = len(plugin.calls())
    manager.docker(
        "network", "create", "-d", DRIVER, "--ipam-driver", DRIVER, "--scope", "swarm",
        "--attachable", "-o", "fd.swarm=yes", network,
    )  # fmt: skip
    nid = manager.docker("network", "inspect", "-f", "{{.Id}}", network).strip()
    # the command returns once the network is in swarm's store; its allocator runs after
    until("AllocateNetwork", lambda: named(plugin.calls()[before:], "AllocateNetwork"))
    sent = changes(plugin.calls()[before:])
    assert methods(sent) == ["RequestPool", "RequestAddress", "AllocateNetwork"], brief(sent)
    pool_request, gateway_request, allocate = sent
    assert pool_request["request"] == {
        "AddressSpace": GLOBAL, "Pool": "", "SubPool": "", "Options": None, "V6": False,
    }  # fmt: skip
    pool, pid = pool_request["response"]["Pool"], pool_request["response"]["PoolID"]
    assert gateway_request["request"] == {"PoolID": pid, "Address": "", "Options": GATEWAY | SERIAL}
    gateway = gateway_request["response"]["Address"]
    assert allocate["request"] == {
        "NetworkID": nid,
        "Options": {"fd.swarm": "yes"},
        "IPv4Data": [{"AddressSpace": "", "Gateway": gateway, "Pool": pool}],
        "IPv6Data": None,
    }
    return nid, pool, gateway


def check_node_network(
    calls: list[Call], nid: str, pool: str, gateway: str, does: Expect
) -> None:
    """A node's first task on the network: the same pool and gateway asked for in the
    local space, and CreateNetwork with them and the options AllocateNetwork answered
    (and ``enable_ipv4`` where the daemon's version sends it)."""
    (request_pool,) = named(calls, "RequestPool")
    assert request_pool["request"] == {
        "AddressSpace": LOCAL, "Pool": pool, "SubPool": "", "Options": None, "V6": False,
    }  # fmt: skip
    pid = request_pool["response"]["PoolID"]
    gateway_ip = gateway.split("/")[0]
    assert named(calls, "RequestAddress", PoolID=pid, Address=gateway_ip, Options=GATEWAY)
    (create,) = named(calls, "CreateNetwork")
    v4 = {"com.docker.network.enable_ipv4": True} if does.enable_ipv4 else {}
    assert create["request"] == {
        "NetworkID": nid,
        "Options": {**v4, "com.docker.network.enable_ipv6": False,
                    "com.docker.network.generic": {"fd.swarm": "yes"}},
        "IPv4Data": [{"AddressSpace": LOCAL, "Gateway": gateway, "Pool": pool}],
        "IPv6Data": [],
    }  # fmt: skip
    order = methods(calls)
    assert order.index("RequestPool") < order.index("CreateNetwork")


def check_endpoints(calls: list[Call], granted: set[str]) -> None:
    """Every endpoint a node made has an address the manager granted in the global space,
    requested by that exact IP in the local space first."""
    for create in named(calls, "CreateEndpoint"):
        address = create["request"]["Interface"]["Address"]
        ip = address.split("/")[0]
        assert ip in granted, (address, granted)
        asked = named(calls, "RequestAddress", Address=ip, Options=None)
        assert asked and min(c["index"] for c in asked) < create["index"], address


def check_removal(calls: list[Call], eid: str, address: str) -> None:
    """A removed task: RevokeExternalConnectivity, Leave, DeleteEndpoint, then its local
    address released (in that order, other endpoints' calls interleaved)."""
    ip = address.split("/")[0]
    steps = [
        named(calls, "RevokeExternalConnectivity", EndpointID=eid),
        named(calls, "Leave", EndpointID=eid),
        named(calls, "DeleteEndpoint", EndpointID=eid),
        [c for c in named(calls, "ReleaseAddress", Address=ip)
         if c["request"]["PoolID"].startswith(f"{LOCAL}/")],
    ]  # fmt: skip
    assert all(len(step) == 1 for step in steps), (eid, steps)
    indexes = [step[0]["index"] for step in steps]
    assert indexes == sorted(indexes), (eid, indexes)


def check_last_task_gone(local: list[Call], endpoint: tuple[str, str], gateway: str) -> None:
    """A node's last task removed (``local``: that node's calls in the local space): the
    task's calls, then the network's (gateway, pool, network), nothing else."""
    assert methods(local) == [
        "RevokeExternalConnectivity", "Leave", "DeleteEndpoint", "ReleaseAddress",
        "ReleaseAddress", "ReleasePool", "DeleteNetwork",
    ], brief(local)  # fmt: skip
    check_removal(local, *endpoint)
    assert released(local, LOCAL)[1] == gateway.split("/")[0]


def all_ok(calls: list[Call]) -> None:
    wrong = [c for c in calls if c["status"] != 200 or c["error"] or c["violations"]]
    assert wrong == [], wrong


def discovered(calls: list[Call], method: str = "DiscoverNew") -> list[dict[str, Any]]:
    return [c["request"]["DiscoveryData"] for c in named(calls, method, DiscoveryType=1)]


def check_cluster(pairs: list[tuple[Node, ManagedPlugin]], pool: str, gateway: str) -> None:
    """Every running replica has its fake's address, no address is on two nodes, and the
    manager holds each of them in the global space (with the gateway and the VIP)."""
    manager_plugin = pairs[0][1]
    seen: list[str] = []
    for node, plugin in pairs:
        seen += check_replicas(node, plugin, "svc", pool)
    assert len(seen) == len(set(seen)), seen  # no address on two nodes
    vip = service_vip(pairs[0][0])
    assert held_addresses(manager_plugin, GLOBAL) == {*seen, vip, gateway.split("/")[0]}


def service_vip(manager: Node) -> str:
    found = manager.docker("service", "inspect", "svc", "--format", "{{json .Endpoint.VirtualIPs}}")
    (vip,) = json.loads(found)
    return str(vip["Addr"]).split("/")[0]


def scale(manager: Node, plugins: list[ManagedPlugin], replicas: int) -> list[str]:
    """Scale ``svc`` and wait until it settled; the host names its tasks run on."""
    manager.docker("service", "scale", "--detach", f"svc={replicas}")
    return settle(manager, plugins, replicas)


def settle(manager: Node, plugins: list[ManagedPlugin], replicas: int) -> list[str]:
    running = until(
        f"{replicas} replicas of svc, and the fakes settled",
        lambda: (tasks := converged(manager, "svc", replicas))
        and settled(plugins, plugins[0], replicas)
        and tasks,
        timeout=90,
    )
    return sorted(host for host, _ in running)


def global_grants(calls: list[Call]) -> set[str]:
    """The task and VIP addresses the manager granted in the global space."""
    return {
        c["response"]["Address"].split("/")[0]
        for c in named(calls, "RequestAddress", Options=SERIAL)
    }


def released(calls: list[Call], space: str) -> list[str]:
    return [
        c["request"]["Address"]
        for c in named(calls, "ReleaseAddress")
        if c["request"]["PoolID"].startswith(f"{space}/")
    ]


def create_service(manager: Node, replicas: int) -> None:
    manager.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", "svc",
        "--network", "swnet", "--replicas", str(replicas), "--stop-grace-period", "1s",
        IMAGE, "sleep", "3600",
    )  # fmt: skip


def remove_network(node: Node, plugin: ManagedPlugin, nid: str, pool: str, gateway: str) -> None:
    """``network rm``: FreeNetwork, then the global gateway and pool released."""
    mark, pid = len(plugin.calls()), f"{GLOBAL}/{pool}"
    node.docker("network", "rm", "swnet")
    until("network rm's calls", lambda: len(changes(plugin.calls()[mark:])) >= 3)
    sent = changes(plugin.calls()[mark:])
    assert [(c["method"], c["request"]) for c in sent] == [
        ("NetworkDriver.FreeNetwork", {"NetworkID": nid}),
        ("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": gateway.split("/")[0]}),
        ("IpamDriver.ReleasePool", {"PoolID": pid}),
    ], brief(sent)


def as_self(node: Node) -> dict[str, Any]:
    return {"Address": node.address, "BindAddress": node.address, "Self": True}


def as_peer(node: Node) -> dict[str, Any]:
    return {"Address": node.address, "BindAddress": "", "Self": False}
