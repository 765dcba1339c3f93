"""fakedriver as a managed plugin under a real swarm: one node, then a manager and a worker.

Each node is an isolated dockerd in a network namespace of its own (swarm_env), with the
plugin bundle of ``fakedriver plugin build`` installed as a global-scope driver and IPAM
driver (``--scope global --connectivity-scope global --links veth``). What the fakes were
sent is read from their journals over the control API, on each plugin's socket. The
assertions are what dockerd 20.10 was seen to do (README, "Swarm"); where the daemon
races (the manager's global releases trail the node's), the tests wait for the calls
they are about before the next command.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerd_env import IMAGE, Unavailable, run_name, unavailable
from swarm_env import ManagedPlugin, Node, cluster, converged, leftovers, swarm_init, swarm_join
from swarm_env import wait_until as until

pytestmark = pytest.mark.dockerd

NAME = run_name("fdswarm")
DRIVER = f"{NAME}:latest"  # swarm resolves a managed plugin by its full name only
ARGS = ("--scope", "global", "--connectivity-scope", "global", "--links", "veth", "--state",
        "/var/lib/fakedriver/state.db")  # fmt: skip
LOCAL, GLOBAL = "LocalDefault", "GlobalDefault"  # the persona's address spaces
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
SERIAL = {"com.docker.network.ipam.serial": "true"}
Call = dict[str, Any]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The managed plugin's bundle, built once for both tests."""
    folder = tmp_path_factory.mktemp("bundle") / "plugin"
    done = subprocess.run(
        [sys.executable, "-m", "fakedriver", "plugin", "build", str(folder)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture
def nodes(request: pytest.FixtureRequest) -> Iterator[list[Node]]:
    """The nodes the test is parametrized with (their host names), under a short folder
    of their own (containerd's sockets live under a daemon's exec root, and a unix socket
    path has 108 bytes at most); nothing of them is left on the host afterwards."""
    hostnames: tuple[str, ...] = request.param
    base = Path(tempfile.mkdtemp(prefix="fdsw-"))
    made: list[Node] = []
    try:
        with cluster(base, *hostnames) as made:
            yield made
    except Unavailable as exc:
        unavailable(f"no swarm here: {exc}")
    assert leftovers(made) == []
    shutil.rmtree(base)


def _named(calls: list[Call], method: str, **fields: Any) -> list[Call]:
    """The calls of ``method`` (``"RequestAddress"``) whose requests have ``fields``."""
    return [
        call
        for call in calls
        if call["method"].endswith(f".{method}")
        and all(call["request"].get(key) == value for key, value in fields.items())
    ]


def _methods(calls: list[Call]) -> list[str]:
    return [call["method"].split(".")[1] for call in calls]


def _leases(plugin: ManagedPlugin, space: str) -> set[str]:
    """The addresses the fake holds in ``space``."""
    pools = plugin.state()["pools"].values()
    return {ip for pool in pools if pool["address_space"] == space for ip in pool["leases"]}


def _endpoints(plugin: ManagedPlugin) -> dict[str, str]:
    """The fake's endpoints: id -> address (CIDR)."""
    return {eid: e["address"] for eid, e in plugin.state()["endpoints"].items()}


def _settled(plugins: list[ManagedPlugin], manager: ManagedPlugin, replicas: int) -> bool:
    """``replicas`` endpoints over the nodes, and the manager holding a global address for
    each, the service VIP and the gateway, and no more."""
    endpoints = sum(len(_endpoints(p)) for p in plugins)
    return endpoints == replicas and len(_leases(manager, GLOBAL)) == replicas + 2


def _check_replicas(node: Node, plugin: ManagedPlugin, service: str, pool: str) -> set[str]:
    """Every running task container of ``node`` has the address its fake gave the
    endpoint, in the pool; returns those addresses."""
    held = _endpoints(plugin)
    found = set()
    for container in node.containers(service):
        (attached,) = container["NetworkSettings"]["Networks"].values()
        address = f"{attached['IPAddress']}/{attached['IPPrefixLen']}"
        assert held[attached["EndpointID"]] == address, (container["Name"], held)
        assert ipaddress.ip_interface(address).ip in ipaddress.ip_network(pool)
        found.add(attached["IPAddress"])
    assert len(found) == len(held), (found, held)  # no endpoint the fake holds goes unused
    return found


def _create_network(manager: Node, plugin: ManagedPlugin, network: str) -> tuple[str, str, str]:
    """``network create --scope swarm``: on the manager, a pool and a gateway in the global
    space, then AllocateNetwork with them and the options; returns (id, pool, gateway)."""
    before = len(plugin.calls())
    manager.docker(
        "network", "create", "-d", DRIVER, "--ipam-driver", DRIVER, "--scope", "swarm",
        "--attachable", "-o", "fd.swarm=yes", network,
    )  # fmt: skip
    nid = manager.docker("network", "inspect", "-f", "{{.Id}}", network).strip()
    # the command returns once the network is in swarm's store; its allocator runs after
    until("AllocateNetwork", lambda: _named(plugin.calls()[before:], "AllocateNetwork"))
    sent = plugin.calls()[before:]
    assert _methods(sent) == ["RequestPool", "RequestAddress", "AllocateNetwork"], sent
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


def _check_node_network(calls: list[Call], nid: str, pool: str, gateway: str) -> None:
    """A node's first task on the network: the same pool and gateway asked for in the
    local space, and CreateNetwork with them and the options AllocateNetwork answered."""
    (request_pool,) = _named(calls, "RequestPool")
    assert request_pool["request"] == {
        "AddressSpace": LOCAL, "Pool": pool, "SubPool": "", "Options": None, "V6": False,
    }  # fmt: skip
    pid = request_pool["response"]["PoolID"]
    gateway_ip = gateway.split("/")[0]
    assert _named(calls, "RequestAddress", PoolID=pid, Address=gateway_ip, Options=GATEWAY)
    (create,) = _named(calls, "CreateNetwork")
    assert create["request"] == {
        "NetworkID": nid,
        "Options": {"com.docker.network.enable_ipv6": False,
                    "com.docker.network.generic": {"fd.swarm": "yes"}},
        "IPv4Data": [{"AddressSpace": LOCAL, "Gateway": gateway, "Pool": pool}],
        "IPv6Data": [],
    }  # fmt: skip
    order = _methods(calls)
    assert order.index("RequestPool") < order.index("CreateNetwork")


def _check_endpoints(calls: list[Call], granted: set[str]) -> None:
    """Every endpoint a node made has an address the manager granted in the global space,
    requested by that exact IP in the local space first."""
    for create in _named(calls, "CreateEndpoint"):
        address = create["request"]["Interface"]["Address"]
        ip = address.split("/")[0]
        assert ip in granted, (address, granted)
        asked = _named(calls, "RequestAddress", Address=ip, Options=None)
        assert asked and min(c["index"] for c in asked) < create["index"], address


def _check_removal(calls: list[Call], eid: str, address: str) -> None:
    """A removed task: RevokeExternalConnectivity, Leave, DeleteEndpoint, then its local
    address released (in that order, other endpoints' calls interleaved)."""
    ip = address.split("/")[0]
    steps = [
        _named(calls, "RevokeExternalConnectivity", EndpointID=eid),
        _named(calls, "Leave", EndpointID=eid),
        _named(calls, "DeleteEndpoint", EndpointID=eid),
        [c for c in _named(calls, "ReleaseAddress", Address=ip)
         if c["request"]["PoolID"].startswith(f"{LOCAL}/")],
    ]  # fmt: skip
    assert all(len(step) == 1 for step in steps), (eid, steps)
    indexes = [step[0]["index"] for step in steps]
    assert indexes == sorted(indexes), (eid, indexes)


def _all_ok(calls: list[Call]) -> None:
    wrong = [c for c in calls if c["status"] != 200 or c["error"] or c["violations"]]
    assert wrong == [], wrong


def _discovered(calls: list[Call], method: str = "DiscoverNew") -> list[dict[str, Any]]:
    return [c["request"]["DiscoveryData"] for c in _named(calls, method, DiscoveryType=1)]


def _check_cluster(pairs: list[tuple[Node, ManagedPlugin]], pool: str, gateway: str) -> None:
    """Every running replica has its fake's address, no address is on two nodes, and the
    manager holds each of them in the global space (with the gateway and the VIP)."""
    manager_plugin = pairs[0][1]
    seen: list[str] = []
    for node, plugin in pairs:
        seen += _check_replicas(node, plugin, "svc", pool)
    assert len(seen) == len(set(seen)), seen  # no address on two nodes
    vip = _vip(pairs[0][0])
    assert _leases(manager_plugin, GLOBAL) == {*seen, vip, gateway.split("/")[0]}


def _vip(manager: Node) -> str:
    found = manager.docker("service", "inspect", "svc", "--format", "{{json .Endpoint.VirtualIPs}}")
    (vip,) = json.loads(found)
    return str(vip["Addr"]).split("/")[0]


def _scale(manager: Node, plugins: list[ManagedPlugin], replicas: int) -> list[str]:
    """Scale ``svc`` and wait until it settled; the host names its tasks run on."""
    manager.docker("service", "scale", "--detach", f"svc={replicas}")
    return _settle(manager, plugins, replicas)


def _settle(manager: Node, plugins: list[ManagedPlugin], replicas: int) -> list[str]:
    running = until(
        f"{replicas} replicas of svc, and the fakes settled",
        lambda: (tasks := converged(manager, "svc", replicas))
        and _settled(plugins, plugins[0], replicas)
        and tasks,
        timeout=90,
    )
    return sorted(host for host, _ in running)


def _granted(calls: list[Call]) -> set[str]:
    """The task and VIP addresses the manager granted in the global space."""
    return {
        c["response"]["Address"].split("/")[0]
        for c in _named(calls, "RequestAddress", Options=SERIAL)
    }


def _released(calls: list[Call], space: str) -> list[str]:
    return [
        c["request"]["Address"]
        for c in _named(calls, "ReleaseAddress")
        if c["request"]["PoolID"].startswith(f"{space}/")
    ]


def _create_service(manager: Node, replicas: int) -> None:
    manager.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", "svc",
        "--network", "swnet", "--replicas", str(replicas), "--stop-grace-period", "1s",
        IMAGE, "sleep", "3600",
    )  # fmt: skip


def _remove_network(node: Node, plugin: ManagedPlugin, nid: str, pool: str, gateway: str) -> None:
    """``network rm``: FreeNetwork, then the global gateway and pool released."""
    mark, pid = len(plugin.calls()), f"{GLOBAL}/{pool}"
    node.docker("network", "rm", "swnet")
    until("network rm's calls", lambda: len(plugin.calls()) >= mark + 3)
    assert [(c["method"], c["request"]) for c in plugin.calls()[mark:]] == [
        ("NetworkDriver.FreeNetwork", {"NetworkID": nid}),
        ("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": gateway.split("/")[0]}),
        ("IpamDriver.ReleasePool", {"PoolID": pid}),
    ]


def _self(node: Node) -> dict[str, Any]:
    return {"Address": node.address, "BindAddress": node.address, "Self": True}


def _peer(node: Node) -> dict[str, Any]:
    return {"Address": node.address, "BindAddress": "", "Self": False}


# -- one node ---------------------------------------------------------------------------------
@pytest.mark.parametrize("nodes", [("solo",)], indirect=True)
def test_one_node_swarm(nodes: list[Node], bundle: Path) -> None:
    (node,) = nodes
    plugin = ManagedPlugin(node, NAME)
    plugin.install(bundle, *ARGS)
    swarm_init(node)
    until("DiscoverNew at swarm init", lambda: _discovered(plugin.calls()))
    assert _discovered(plugin.calls()) == [_self(node)]

    nid, pool, gateway = _create_network(node, plugin, "swnet")
    mark = len(plugin.calls())
    _create_service(node, 3)
    _settle(node, [plugin], 3)
    calls = plugin.calls()[mark:]
    _check_node_network(calls, nid, pool, gateway)
    assert len(_named(calls, "RequestAddress", Options=SERIAL)) == 4  # 3 tasks and the VIP
    _check_endpoints(calls, _granted(calls))
    _check_cluster([(node, plugin)], pool, gateway)

    _scale(node, [plugin], 5)
    calls = plugin.calls()[mark:]
    _check_endpoints(calls, _granted(calls))
    _check_cluster([(node, plugin)], pool, gateway)

    before, scaled = _endpoints(plugin), len(plugin.calls())
    _scale(node, [plugin], 1)
    calls = plugin.calls()[scaled:]
    removed = {eid: address for eid, address in before.items() if eid not in _endpoints(plugin)}
    assert len(removed) == 4
    for eid, address in removed.items():
        _check_removal(calls, eid, address)
    removed_ips = sorted(address.split("/")[0] for address in removed.values())
    assert sorted(_released(calls, LOCAL)) == sorted(_released(calls, GLOBAL)) == removed_ips
    assert "DeleteNetwork" not in _methods(calls)
    _check_cluster([(node, plugin)], pool, gateway)

    # service rm: the VIP released at once; the last task leaves the node, and with it
    # the network (local pool and gateway first); the manager releases the task's address
    (last,) = _endpoints(plugin).items()
    vip, mark = _vip(node), len(plugin.calls())
    node.docker("service", "rm", "svc")
    until(
        "the node's network deleted, the manager's addresses released",
        lambda: not plugin.state()["networks"] and len(_leases(plugin, GLOBAL)) == 1,
    )
    calls = plugin.calls()[mark:]
    local = [c for c in calls if not c["request"].get("PoolID", LOCAL).startswith(GLOBAL)]
    assert _methods(local) == [
        "RevokeExternalConnectivity", "Leave", "DeleteEndpoint", "ReleaseAddress",
        "ReleaseAddress", "ReleasePool", "DeleteNetwork",
    ]  # fmt: skip
    _check_removal(calls, *last)
    assert _released(local, LOCAL)[1] == gateway.split("/")[0]
    assert _released(calls, GLOBAL) == [vip, last[1].split("/")[0]]
    assert calls[0]["request"] == {"PoolID": f"{GLOBAL}/{pool}", "Address": vip}

    _remove_network(node, plugin, nid, pool, gateway)

    mark = len(plugin.calls())
    node.docker("swarm", "leave", "--force")
    assert plugin.calls()[mark:] == []  # nothing on the manager's own leave
    assert plugin.leaks() == []
    _all_ok(plugin.calls())


# -- two nodes --------------------------------------------------------------------------------
@pytest.mark.parametrize("nodes", [("manager", "worker")], indirect=True)
def test_two_node_swarm(nodes: list[Node], bundle: Path) -> None:
    manager, worker = nodes
    on_manager, on_worker = ManagedPlugin(manager, NAME), ManagedPlugin(worker, NAME)
    both = [on_manager, on_worker]
    pairs = [(manager, on_manager), (worker, on_worker)]
    for plugin in both:
        plugin.install(bundle, *ARGS)
    assert on_manager.socket != on_worker.socket  # one instance per daemon

    # discovery: init tells the manager itself; a join tells the worker itself and the
    # manager, and the manager the worker
    swarm_init(manager)
    until("DiscoverNew at swarm init", lambda: _discovered(on_manager.calls()))
    swarm_join(worker, manager)
    until(
        "DiscoverNew at swarm join",
        lambda: all(len(_discovered(p.calls())) == 2 for p in both),
    )
    assert _discovered(on_manager.calls()) == [_self(manager), _peer(worker)]
    assert _discovered(on_worker.calls()) == [_self(worker), _peer(manager)]

    mark_worker = len(on_worker.calls())
    nid, pool, gateway = _create_network(manager, on_manager, "swnet")
    assert on_worker.calls()[mark_worker:] == []  # the network is the manager's business

    marks = [len(p.calls()) for p in both]
    _create_service(manager, 4)
    assert _settle(manager, both, 4) == ["manager"] * 2 + ["worker"] * 2
    granted = _granted(on_manager.calls()[marks[0] :])
    assert len(granted) == 5  # 4 tasks and the VIP, all picked by the manager
    for plugin, mark in zip(both, marks, strict=True):
        _check_node_network(plugin.calls()[mark:], nid, pool, gateway)
        _check_endpoints(plugin.calls()[mark:], granted)
    _check_cluster(pairs, pool, gateway)

    assert _scale(manager, both, 6) == ["manager"] * 3 + ["worker"] * 3
    granted = _granted(on_manager.calls()[marks[0] :])
    for plugin, mark in zip(both, marks, strict=True):
        _check_endpoints(plugin.calls()[mark:], granted)
    _check_cluster(pairs, pool, gateway)

    before = [_endpoints(p) for p in both]
    scaled = [len(p.calls()) for p in both]
    assert _scale(manager, both, 2) == ["manager", "worker"]
    released: list[str] = []
    for plugin, held, mark in zip(both, before, scaled, strict=True):
        calls = plugin.calls()[mark:]
        gone = {eid: a for eid, a in held.items() if eid not in _endpoints(plugin)}
        for eid, address in gone.items():
            _check_removal(calls, eid, address)
        assert sorted(_released(calls, LOCAL)) == sorted(a.split("/")[0] for a in gone.values())
        released += _released(calls, LOCAL)
    # the manager releases in the global space every removed task's address, the worker's too
    assert sorted(_released(on_manager.calls()[scaled[0] :], GLOBAL)) == sorted(released)
    _check_cluster(pairs, pool, gateway)

    # drain: the worker's task moves to the manager; the worker's instance is left empty
    (moved,) = _endpoints(on_worker).items()
    marks = [len(p.calls()) for p in both]
    manager.docker("node", "update", "--availability", "drain", "worker")
    until("the worker's network deleted", lambda: not on_worker.state()["networks"])
    assert _settle(manager, both, 2) == ["manager", "manager"]
    on_worker_now = on_worker.calls()[marks[1] :]
    assert _methods(on_worker_now) == [
        "RevokeExternalConnectivity", "Leave", "DeleteEndpoint", "ReleaseAddress",
        "ReleaseAddress", "ReleasePool", "DeleteNetwork",
    ]  # fmt: skip
    _check_removal(on_worker_now, *moved)
    assert _released(on_worker_now, LOCAL)[1] == gateway.split("/")[0]
    on_manager_now = on_manager.calls()[marks[0] :]
    assert _released(on_manager_now, GLOBAL) == [moved[1].split("/")[0]]
    _check_endpoints(on_manager_now, _granted(on_manager_now))
    assert len(_named(on_manager_now, "CreateEndpoint")) == 1
    _check_cluster(pairs, pool, gateway)

    manager.docker("service", "rm", "svc")
    until(
        "the manager's network deleted, its addresses released",
        lambda: not on_manager.state()["networks"] and len(_leases(on_manager, GLOBAL)) == 1,
    )
    mark_worker = len(on_worker.calls())
    _remove_network(manager, on_manager, nid, pool, gateway)
    assert on_worker.calls()[mark_worker:] == []

    # the worker never hears of the swarm's allocation, nor of the global address space
    everything = on_worker.calls()
    assert not _named(everything, "AllocateNetwork") + _named(everything, "FreeNetwork")
    assert {c["request"]["AddressSpace"] for c in _named(everything, "RequestPool")} == {LOCAL}
    pool_ids = {c["request"]["PoolID"] for c in everything if "PoolID" in c["request"]}
    assert pool_ids == {f"{LOCAL}/{pool}"}

    # the worker leaves: the manager hears of it; nothing on the manager's own leave
    worker.docker("swarm", "leave")
    until("DiscoverDelete", lambda: _discovered(on_manager.calls(), "DiscoverDelete"))
    assert _discovered(on_manager.calls(), "DiscoverDelete") == [_peer(worker)]
    mark = len(on_manager.calls())
    manager.docker("swarm", "leave", "--force")
    assert on_manager.calls()[mark:] == []
    for plugin in both:
        assert plugin.leaks() == []
        _all_ok(plugin.calls())
