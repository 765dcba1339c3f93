"""fakedriver as a managed plugin under a real swarm: one node, then a manager and a worker.

Each node is an isolated dockerd in a network namespace of its own (swarm_env), with the
plugin bundle of ``fakedriver plugin build`` installed as a global-scope driver and IPAM
driver (``--scope global --connectivity-scope global --links veth``). What the fakes were
sent is read from their journals over the control API, on each plugin's socket. The
assertions are what dockerd 20.10 was seen to do (docs/cluster.md, "Under a real swarm"),
and 26.1 and 28 do alike but where their version says otherwise (``dockerd_versions``);
where the daemon races (the manager's global releases trail the node's), the tests wait
for the calls they are about before the next command. Whatever a test made (services,
networks, plugins, daemons, namespaces, links) goes with its cluster, however it ends.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dockerd_env import IMAGE, Unavailable, unavailable
from support.dockerd_versions import expect
from support.swarm_checks import (
    ARGS,
    GLOBAL,
    LOCAL,
    NAME,
    SERIAL,
    all_ok,
    as_peer,
    as_self,
    changes,
    check_cluster,
    check_endpoints,
    check_last_task_gone,
    check_node_network,
    check_removal,
    create_network,
    create_service,
    discovered,
    fake_endpoints,
    global_grants,
    held_addresses,
    methods,
    named,
    quiet,
    released,
    remove_network,
    scale,
    service_vip,
    settle,
    settled,
)
from support.swarm_env import Node, cluster, leftovers, swarm_init, swarm_join
from support.swarm_env import wait_until as until

pytestmark = pytest.mark.dockerd


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


# -- one node ---------------------------------------------------------------------------------
@pytest.mark.parametrize("nodes", [("solo",)], indirect=True)
def test_one_node_swarm(nodes: list[Node], bundle: Path) -> None:
    (node,) = nodes
    plugin = node.plugin(NAME)
    plugin.install(bundle, *ARGS)
    swarm_init(node)
    until("DiscoverNew at swarm init", lambda: discovered(plugin.calls()))
    assert discovered(plugin.calls()) == [as_self(node)]

    nid, pool, gateway = create_network(node, plugin, "swnet")
    mark = len(plugin.calls())
    create_service(node, 3)
    settle(node, [plugin], 3)
    calls = plugin.calls()[mark:]
    check_node_network(calls, nid, pool, gateway, expect(node.dockerd.version()))
    assert len(named(calls, "RequestAddress", Options=SERIAL)) == 4  # 3 tasks and the VIP
    check_endpoints(calls, global_grants(calls))
    check_cluster([(node, plugin)], pool, gateway)

    scale(node, [plugin], 5)
    calls = plugin.calls()[mark:]
    check_endpoints(calls, global_grants(calls))
    check_cluster([(node, plugin)], pool, gateway)

    before, scaled = fake_endpoints(plugin), len(plugin.calls())
    scale(node, [plugin], 1)
    calls = plugin.calls()[scaled:]
    removed = {eid: address for eid, address in before.items() if eid not in fake_endpoints(plugin)}
    assert len(removed) == 4
    for eid, address in removed.items():
        check_removal(calls, eid, address)
    removed_ips = sorted(address.split("/")[0] for address in removed.values())
    assert sorted(released(calls, LOCAL)) == sorted(released(calls, GLOBAL)) == removed_ips
    assert "DeleteNetwork" not in methods(calls)
    check_cluster([(node, plugin)], pool, gateway)

    # service rm: the VIP released at once; the last task leaves the node, and with it
    # the network (local pool and gateway first); the manager releases the task's address
    (last,) = fake_endpoints(plugin).items()
    vip, mark = service_vip(node), len(plugin.calls())
    node.docker("service", "rm", "svc")
    until(
        "the node's network deleted, the manager's addresses released",
        lambda: not plugin.state()["networks"] and len(held_addresses(plugin, GLOBAL)) == 1,
    )
    calls = changes(plugin.calls()[mark:])
    local = [c for c in calls if not c["request"].get("PoolID", LOCAL).startswith(GLOBAL)]
    check_last_task_gone(local, last, gateway)
    assert released(calls, GLOBAL) == [vip, last[1].split("/")[0]]
    assert calls[0]["request"] == {"PoolID": f"{GLOBAL}/{pool}", "Address": vip}

    remove_network(node, plugin, nid, pool, gateway)

    mark = len(plugin.calls())
    node.docker("swarm", "leave", "--force")
    quiet(plugin, mark)  # nothing on the manager's own leave
    assert plugin.leaks() == []
    all_ok(plugin.calls())
    assert (plugin.data / "state.db").is_file()  # --state on the plugin's host folder


# -- two nodes --------------------------------------------------------------------------------
@pytest.mark.parametrize("nodes", [("manager", "worker")], indirect=True)
def test_two_node_swarm(nodes: list[Node], bundle: Path) -> None:
    manager, worker = nodes
    on_manager, on_worker = manager.plugin(NAME), worker.plugin(NAME)
    both = [on_manager, on_worker]
    pairs = [(manager, on_manager), (worker, on_worker)]
    for plugin in both:
        plugin.install(bundle, *ARGS)
    assert on_manager.socket != on_worker.socket  # one instance per daemon

    # discovery: init tells the manager itself; a join tells the worker itself and the
    # manager, and the manager the worker
    swarm_init(manager)
    until("DiscoverNew at swarm init", lambda: discovered(on_manager.calls()))
    swarm_join(worker, manager)
    until(
        "DiscoverNew at swarm join",
        lambda: all(len(discovered(p.calls())) == 2 for p in both),
    )
    assert discovered(on_manager.calls()) == [as_self(manager), as_peer(worker)]
    assert discovered(on_worker.calls()) == [as_self(worker), as_peer(manager)]

    mark_worker = len(on_worker.calls())
    nid, pool, gateway = create_network(manager, on_manager, "swnet")
    quiet(on_worker, mark_worker)  # the network is the manager's business

    marks = [len(p.calls()) for p in both]
    create_service(manager, 4)
    assert settle(manager, both, 4) == ["manager"] * 2 + ["worker"] * 2
    granted = global_grants(on_manager.calls()[marks[0] :])
    assert len(granted) == 5  # 4 tasks and the VIP, all picked by the manager
    does = expect(manager.dockerd.version())
    for plugin, mark in zip(both, marks, strict=True):
        check_node_network(plugin.calls()[mark:], nid, pool, gateway, does)
        check_endpoints(plugin.calls()[mark:], granted)
    check_cluster(pairs, pool, gateway)

    assert scale(manager, both, 6) == ["manager"] * 3 + ["worker"] * 3
    granted = global_grants(on_manager.calls()[marks[0] :])
    for plugin, mark in zip(both, marks, strict=True):
        check_endpoints(plugin.calls()[mark:], granted)
    check_cluster(pairs, pool, gateway)

    before = [fake_endpoints(p) for p in both]
    scaled = [len(p.calls()) for p in both]
    assert scale(manager, both, 2) == ["manager", "worker"]
    let_go: list[str] = []
    for plugin, held, mark in zip(both, before, scaled, strict=True):
        calls = plugin.calls()[mark:]
        gone = {eid: a for eid, a in held.items() if eid not in fake_endpoints(plugin)}
        for eid, address in gone.items():
            check_removal(calls, eid, address)
        assert sorted(released(calls, LOCAL)) == sorted(a.split("/")[0] for a in gone.values())
        let_go += released(calls, LOCAL)
    # the manager releases in the global space every removed task's address, the worker's too
    assert sorted(released(on_manager.calls()[scaled[0] :], GLOBAL)) == sorted(let_go)
    check_cluster(pairs, pool, gateway)

    # the network is attachable: a plain container on the worker gets an address the
    # manager grants (not on a drained worker: the manager gives it no attachment, and
    # docker run fails after 20 s with "attaching to network failed")
    marks = [len(p.calls()) for p in both]
    shown = worker.docker("run", "--rm", "--network", "swnet", IMAGE, "ip", "-o", "addr")
    until("the container's address released", lambda: settled(both, on_manager, 2))
    attached = changes(on_worker.calls()[marks[1] :])
    on_manager_now = on_manager.calls()[marks[0] :]
    (create,) = named(attached, "CreateEndpoint")
    address = create["request"]["Interface"]["Address"]
    assert f"inet {address}" in shown, shown
    ip = address.split("/")[0]
    assert global_grants(on_manager_now) == {ip}
    assert released(on_manager_now, GLOBAL) == released(attached, LOCAL) == [ip]
    check_endpoints(attached, {ip})
    check_removal(attached, create["request"]["EndpointID"], address)

    # drain: the worker's task moves to the manager; the worker's instance is left empty
    (moved,) = fake_endpoints(on_worker).items()
    marks = [len(p.calls()) for p in both]
    manager.docker("node", "update", "--availability", "drain", "worker")
    until("the worker's network deleted", lambda: not on_worker.state()["networks"])
    assert settle(manager, both, 2) == ["manager", "manager"]
    on_worker_now = changes(on_worker.calls()[marks[1] :])
    check_last_task_gone(on_worker_now, moved, gateway)
    on_manager_now = on_manager.calls()[marks[0] :]
    assert released(on_manager_now, GLOBAL) == [moved[1].split("/")[0]]
    check_endpoints(on_manager_now, global_grants(on_manager_now))
    assert len(named(on_manager_now, "CreateEndpoint")) == 1
    check_cluster(pairs, pool, gateway)

    manager.docker("service", "rm", "svc")
    until(
        "the manager's network deleted, its addresses released",
        lambda: not on_manager.state()["networks"] and len(held_addresses(on_manager, GLOBAL)) == 1,
    )
    mark_worker = len(on_worker.calls())
    remove_network(manager, on_manager, nid, pool, gateway)
    quiet(on_worker, mark_worker)

    # the worker never hears of the swarm's allocation, nor of the global address space
    everything = on_worker.calls()
    assert not named(everything, "AllocateNetwork") + named(everything, "FreeNetwork")
    assert {c["request"]["AddressSpace"] for c in named(everything, "RequestPool")} == {LOCAL}
    pool_ids = {c["request"]["PoolID"] for c in everything if "PoolID" in c["request"]}
    assert pool_ids == {f"{LOCAL}/{pool}"}

    # the worker leaves: the manager hears of it; nothing on the manager's own leave
    mark_worker = len(on_worker.calls())
    worker.docker("swarm", "leave")
    until("DiscoverDelete", lambda: discovered(on_manager.calls(), "DiscoverDelete"))
    assert discovered(on_manager.calls(), "DiscoverDelete") == [as_peer(worker)]
    quiet(on_worker, mark_worker)
    mark = len(on_manager.calls())
    manager.docker("swarm", "leave", "--force")
    quiet(on_manager, mark)
    for plugin in both:
        assert plugin.leaks() == []
        all_ok(plugin.calls())
        assert (plugin.data / "state.db").is_file()  # its state, in its node's own folder
