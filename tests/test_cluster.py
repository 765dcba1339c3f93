"""The cluster of fakes: nodes at their own URLs, the merged timeline, partitions, the
fixture and its failure report (the checks between nodes: ``test_cluster_checks.py``)."""

from __future__ import annotations

import copy
import pickle
import sys
import threading

import httpx
import pytest
import requests
from support import rawhttp

import fakedriver
from fakedriver import Cluster, Persona, Timeline

pytest_plugins = ["pytester"]


# -- nodes, URLs, the timeline ---------------------------------------------------------------
def test_nodes_are_named_each_has_its_url_and_the_first_is_the_manager() -> None:
    cluster = Cluster(4, connectivity_scope="global")
    assert list(cluster) == ["node-1", "node-2", "node-3", "node-4"] == list(cluster.nodes)
    assert cluster.urls["node-2"] == "http://node-2.fake-netdriver"
    assert cluster.manager is cluster["node-1"] is not cluster["node-2"]
    assert cluster.name_of(cluster["node-3"]) == "node-3"
    assert {f.persona for f in cluster.nodes.values()} == {cluster.persona}
    assert (cluster.persona.scope, cluster.persona.connectivity_scope) == ("global", "global")
    with pytest.raises(KeyError, match="node-1, node-2, node-3, node-4"):
        cluster["node-9"]
    with pytest.raises(ValueError, match="at least one node"):
        Cluster(0)


def test_every_node_is_served_at_its_own_url_by_every_client() -> None:
    with Cluster(3) as cluster, requests.Session() as session, httpx.Client() as client:
        for name, url in cluster.urls.items():
            assert session.post(f"{url}/Plugin.Activate", timeout=5).status_code == 200
            caps = client.post(f"{url}/NetworkDriver.GetCapabilities", timeout=5).json()
            assert caps["Scope"] == "global"
            assert cluster[name].url == url
        for fake in cluster.nodes.values():
            assert fake.calls.methods == ["Plugin.Activate", "NetworkDriver.GetCapabilities"]
    with pytest.raises(requests.ConnectionError):  # no longer routed
        requests.post(f"{cluster.urls['node-1']}/Plugin.Activate", timeout=5)


def test_the_timeline_merges_every_node_in_serving_order() -> None:
    cluster = Cluster(3)
    for name in ("node-2", "node-1", "node-3", "node-2"):
        cluster[name].handle("/Plugin.Activate", b"")
    cluster["node-3"].handle("/NetworkDriver.Bogus", b"")
    assert cluster.calls.methods == [
        ("node-2", "Plugin.Activate"),
        ("node-1", "Plugin.Activate"),
        ("node-3", "Plugin.Activate"),
        ("node-2", "Plugin.Activate"),
        ("node-3", "NetworkDriver.Bogus"),
    ]
    assert [c.seq for c in cluster.calls] == [0, 1, 2, 3, 4]
    assert [c.call.index for c in cluster.calls.of("Plugin.Activate", node="node-2")] == [0, 1]
    text = cluster.calls.format()
    assert "  @3 node-2 #1 Plugin.Activate\n" in text
    assert "@4 node-3 #1 NetworkDriver.Bogus  !! 404" in text


def test_calls_from_many_threads_keep_one_order_per_node() -> None:
    cluster = Cluster(3)

    def hammer(name: str) -> None:
        for _ in range(50):
            cluster[name].handle("/Plugin.Activate", b"")

    threads = [threading.Thread(target=hammer, args=(n,)) for n in cluster]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(cluster.calls) == 150
    for name in cluster:
        mine = [c.call.index for c in cluster.calls if c.node == name]
        assert mine == list(range(50))


def test_a_timeline_held_from_before_has_every_call_made_since() -> None:
    """The timeline makes its NodeCalls when read: through any reference, every read
    (length, truth, indexing, iteration, ``==``, ``in``) sees every call served before it."""
    cluster = Cluster(2)
    timeline = cluster.calls
    assert not timeline and timeline == [] and len(timeline) == 0
    cluster["node-2"].handle("/Plugin.Activate", b"")
    assert timeline and len(timeline) == 1
    cluster["node-1"].handle("/Plugin.Activate", b"")
    assert timeline[1].seq == 1 and timeline[-1].node == "node-1"
    cluster["node-2"].handle("/NetworkDriver.GetCapabilities", b"")
    assert [c.node for c in reversed(timeline)] == ["node-2", "node-1", "node-2"]
    cluster["node-1"].handle("/NetworkDriver.GetCapabilities", b"")
    assert [c.seq for c in timeline] == [0, 1, 2, 3] and timeline is cluster.calls
    copied = copy.copy(timeline)
    cluster["node-1"].handle("/Plugin.Activate", b"")
    assert type(copied) is Timeline and len(copied) == 4 and copied == timeline[:4]
    assert timeline[4] in timeline and timeline[4] not in copied
    assert pickle.loads(pickle.dumps(timeline)).methods == timeline.methods


def test_reading_the_timeline_while_nodes_serve_loses_and_repeats_no_call() -> None:
    cluster = Cluster(3)
    done = threading.Event()
    seen: list[int] = []
    wrong: list[list[int]] = []

    def serve(name: str) -> None:
        for _ in range(300):
            cluster[name].handle("/Plugin.Activate", b"")

    def read() -> None:  # each read one snapshot: numbered from 0, nothing twice or left out
        while not done.is_set():
            calls = cluster.calls[:]
            seen.append(len(calls))
            if [c.seq for c in calls[-5:]] != list(range(len(calls)))[-5:]:
                wrong.append([c.seq for c in calls[-5:]])

    servers = [threading.Thread(target=serve, args=(n,)) for n in cluster]
    readers = [threading.Thread(target=read) for _ in range(4)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can: races show
    try:
        for thread in readers + servers:
            thread.start()
        for thread in servers:
            thread.join(timeout=30)
    finally:
        done.set()
        for thread in readers:
            thread.join(timeout=30)
        sys.setswitchinterval(switch)
    assert [c.seq for c in cluster.calls] == list(range(900))
    for name in cluster:
        assert [c.call.index for c in cluster.calls if c.node == name] == list(range(300))
    assert wrong == [] and seen and max(seen) <= 900


# -- partitions ----------------------------------------------------------------------------------
def test_a_dropping_partition_cuts_one_node_off_until_healed() -> None:
    with Cluster(3) as cluster, requests.Session() as session:
        url = cluster.urls["node-2"]
        body = {"NetworkID": "n", "Options": {}, "IPv4Data": [], "IPv6Data": []}
        cluster["node-2"].fail("CreateNetwork", message="user rule", times=5)
        with cluster.partition("node-2"):
            assert cluster.partitions["node-2"][0] == "drop"
            with pytest.raises(requests.ConnectionError, match="partition of node-2"):
                session.post(f"{url}/NetworkDriver.CreateNetwork", json=body, timeout=5)
            assert session.post(f"{cluster.urls['node-3']}/Plugin.Activate", timeout=5).ok
        assert "n" not in cluster["node-2"].state.networks
        assert cluster.partitions == {}
        cluster["node-2"].faults.rules.clear()
        assert session.post(f"{url}/NetworkDriver.CreateNetwork", json=body, timeout=5).json() == {}
        assert "n" in cluster["node-2"].state.networks
        dropped = cluster.calls[0]
        assert (dropped.node, dropped.call.fault, dropped.call.ok) == (
            "node-2",
            "partition of node-2",
            False,
        )


def test_a_holding_partition_serves_the_held_calls_on_heal() -> None:
    with Cluster(2) as cluster, requests.Session() as session:
        answers: list[int] = []
        url = f"{cluster.urls['node-2']}/Plugin.Activate"
        held = cluster.partition("node-2", mode="hold")
        thread = threading.Thread(
            target=lambda: answers.append(session.post(url, timeout=10).status_code), daemon=True
        )
        thread.start()
        assert held.wait_held(1, timeout=5)
        assert session.post(f"{cluster.urls['node-1']}/Plugin.Activate", timeout=5).ok
        assert answers == [] and cluster["node-2"].calls == []
        held.heal()
        thread.join(timeout=5)
        assert answers == [200]
        assert cluster.calls.methods == [
            ("node-1", "Plugin.Activate"),
            ("node-2", "Plugin.Activate"),
        ]


@pytest.mark.socket
def test_partitions_through_a_real_socket() -> None:
    cluster = Cluster(2)
    request = (
        b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n"
    )
    with fakedriver.serving(cluster["node-2"]) as served:
        with cluster.partition("node-2"):
            assert rawhttp.exchange(served.socket_path, request) == b""
        assert rawhttp.exchange(served.socket_path, request).startswith(b"HTTP/1.1 200")
        got: list[bytes] = []
        with cluster.partition("node-2", mode="hold") as held:
            thread = threading.Thread(
                target=lambda: got.append(rawhttp.exchange(served.socket_path, request))
            )
            thread.start()
            assert held.wait_held(1, timeout=5)
            assert got == []
        thread.join(timeout=5)
        assert got[0].startswith(b"HTTP/1.1 200")
    assert [c.call.ok for c in cluster.calls] == [False, True, True]


def test_a_bad_partition_changes_nothing() -> None:
    cluster = Cluster(2)
    with pytest.raises(ValueError, match="mode must be one of drop, hold"):
        cluster.partition("node-2", mode="slow")
    with pytest.raises(KeyError, match="no node 'node-7'"):
        cluster.partition("node-2", "node-7")
    assert cluster.partitions == {} and cluster["node-2"].faults.rules == []
    cluster.partition("node-2")
    with pytest.raises(ValueError, match="node-2 is already partitioned"):
        cluster.partition("node-1", "node-2")
    assert list(cluster.partitions) == ["node-2"] and cluster["node-1"].faults.rules == []
    cluster.heal()
    assert cluster["node-2"].faults.rules == []


# -- the fixture ---------------------------------------------------------------------------------
def test_the_fixture_gives_three_routed_global_nodes(fake_netdriver_cluster: Cluster) -> None:
    assert len(fake_netdriver_cluster) == 3
    assert fake_netdriver_cluster.persona.scope == "global"
    for url in fake_netdriver_cluster.urls.values():
        assert requests.post(f"{url}/Plugin.Activate", timeout=5).ok


@pytest.mark.fake_netdriver_cluster(nodes=5, connectivity_scope="global", seed=3)
def test_the_marker_configures_the_cluster(fake_netdriver_cluster: Cluster) -> None:
    assert len(fake_netdriver_cluster) == 5
    assert fake_netdriver_cluster.persona == Persona(
        scope="global", connectivity_scope="global", seed=3
    )
    assert requests.post(f"{fake_netdriver_cluster.urls['node-5']}/Plugin.Activate", timeout=5).ok


INNER = """
import json, threading, requests, pytest

HELD = []

def test_fails(fake_netdriver_cluster):
    fake_netdriver_cluster["node-2"].handle("/NetworkDriver.DiscoverNew", json.dumps(
        {"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.9", "Self": False}}).encode())
    fake_netdriver_cluster["node-3"].handle("/Plugin.Activate", b"")
    assert False, "on purpose"

@pytest.mark.fake_netdriver_cluster(audit=True)
def test_leaks(fake_netdriver_cluster):
    node = fake_netdriver_cluster["node-1"]
    node.handle("/NetworkDriver.CreateNetwork", b'{"NetworkID": "left"}')

def test_holds(fake_netdriver_cluster):
    held = fake_netdriver_cluster.partition("node-1", mode="hold")
    url = fake_netdriver_cluster.urls["node-1"] + "/Plugin.Activate"
    thread = threading.Thread(target=lambda: HELD.append(requests.post(url).status_code))
    thread.start()
    HELD.append(thread)
    assert held.wait_held(1, timeout=5)

def test_teardown_released_the_held_call():
    HELD[0].join(timeout=5)
    assert HELD[1:] == [200]
"""


def test_a_failing_test_reports_the_timeline_and_the_audit(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*- fake_netdriver_cluster timeline -*",
            "cluster of 3 nodes (manager node-1, seed 0, strict=True)",
            "timeline:",
            "  @0 node-2 #0 NetworkDriver.DiscoverNew",
            "  @1 node-3 #0 Plugin.Activate",
            "audit:",
            "  - discovery: node-2 was told of peers but never of itself (Self DiscoverNew)",
        ]
    )
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*", "*node-1: network left*"])
