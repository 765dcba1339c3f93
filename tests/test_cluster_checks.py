"""The checks between the nodes of a cluster: each one caught (a test that fails without
it), none raised on what real swarms sent (``tests/data/swarm-*.txt``, replayed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from support import swarm_transcripts as st

from fakedriver import Cluster

SERIAL = {"com.docker.network.ipam.serial": "true"}
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


def call(cluster: Cluster, node: str, method: str, **body: Any) -> dict[str, Any]:
    status, answer = cluster[node].handle(f"/{method}", json.dumps(body).encode())
    assert status == 200 and not answer.get("Err") and not answer.get("Error"), answer
    return answer


class Swarm:
    """Drives a cluster as a swarm does (the two-node transcript), one step at a time."""

    def __init__(self, cluster: Cluster, nid: str = "net1") -> None:
        self.c, self.nid = cluster, nid
        pool = call(
            cluster,
            "node-1",
            "IpamDriver.RequestPool",
            AddressSpace="GlobalDefault",
            Pool="",
            SubPool="",
            Options=None,
            V6=False,
        )
        self.global_pool, self.pool = pool["PoolID"], pool["Pool"]
        self.gateway = call(
            cluster,
            "node-1",
            "IpamDriver.RequestAddress",
            PoolID=self.global_pool,
            Address="",
            Options={**GATEWAY, **SERIAL},
        )["Address"]
        self.ipam = [{"AddressSpace": "", "Gateway": self.gateway, "Pool": self.pool}]
        call(
            cluster,
            "node-1",
            "NetworkDriver.AllocateNetwork",
            NetworkID=nid,
            Options={},
            IPv4Data=self.ipam,
            IPv6Data=None,
        )
        self.local_pools: dict[str, str] = {}

    def address(self) -> str:
        """The manager picks a task's address in the global space."""
        answer = call(
            self.c,
            "node-1",
            "IpamDriver.RequestAddress",
            PoolID=self.global_pool,
            Address="",
            Options=SERIAL,
        )
        return str(answer["Address"])

    def create_network(self, node: str, ipam: list[dict[str, Any]] | None = None) -> None:
        pool = call(
            self.c,
            node,
            "IpamDriver.RequestPool",
            AddressSpace="LocalDefault",
            Pool=self.pool,
            SubPool="",
            Options=None,
            V6=False,
        )
        self.local_pools[node] = pool["PoolID"]
        call(
            self.c,
            node,
            "IpamDriver.RequestAddress",
            PoolID=pool["PoolID"],
            Address=self.gateway.split("/")[0],
            Options=GATEWAY,
        )
        data = [{**d, "AddressSpace": "LocalDefault"} for d in ipam or self.ipam]
        call(
            self.c,
            node,
            "NetworkDriver.CreateNetwork",
            NetworkID=self.nid,
            Options={"com.docker.network.generic": {}},
            IPv4Data=data,
            IPv6Data=[],
        )

    def start(self, node: str, eid: str, address: str) -> None:
        call(
            self.c,
            node,
            "IpamDriver.RequestAddress",
            PoolID=self.local_pools[node],
            Address=address.split("/")[0],
            Options=None,
        )
        call(
            self.c,
            node,
            "NetworkDriver.CreateEndpoint",
            NetworkID=self.nid,
            EndpointID=eid,
            Interface={"Address": address, "AddressIPv6": "", "MacAddress": ""},
            Options={},
        )

    def stop(self, node: str, eid: str, address: str) -> None:
        call(self.c, node, "NetworkDriver.DeleteEndpoint", NetworkID=self.nid, EndpointID=eid)
        call(
            self.c,
            node,
            "IpamDriver.ReleaseAddress",
            PoolID=self.local_pools[node],
            Address=address.split("/")[0],
        )

    def delete_network(self, node: str) -> None:
        pid = self.local_pools.pop(node)
        call(self.c, node, "IpamDriver.ReleaseAddress", PoolID=pid, Address=self.gateway[:-3])
        call(self.c, node, "IpamDriver.ReleasePool", PoolID=pid)
        call(self.c, node, "NetworkDriver.DeleteNetwork", NetworkID=self.nid)

    def free(self, released: list[str]) -> None:
        for address in released:
            call(
                self.c,
                "node-1",
                "IpamDriver.ReleaseAddress",
                PoolID=self.global_pool,
                Address=address.split("/")[0],
            )
        call(self.c, "node-1", "NetworkDriver.FreeNetwork", NetworkID=self.nid)
        call(
            self.c,
            "node-1",
            "IpamDriver.ReleaseAddress",
            PoolID=self.global_pool,
            Address=self.gateway.split("/")[0],
        )
        call(self.c, "node-1", "IpamDriver.ReleasePool", PoolID=self.global_pool)


def messages(cluster: Cluster) -> list[str]:
    return [v.message for v in cluster.violations]


# -- what real swarms sent is clean --------------------------------------------------------
def _phases(path: Any) -> list[st.Phase]:
    return st.parse(path)  # tests/data: always there


@pytest.mark.parametrize("path", [st.MANAGED, st.TWO_NODES], ids=lambda p: p.name)
def test_the_swarm_transcripts_replay_clean(path: Any) -> None:
    phases = _phases(path)
    replayed = 0
    for number, phase in enumerate(phases):
        with st.cluster_for(phase, nodes=3) as cluster, requests.Session() as session:
            replay = st.Replay(cluster, session)
            replay.run(phase)
        assert not replay.refused, replay.refused
        assert len(cluster.calls) == len(phase.records)
        if path == st.MANAGED and number == 0:
            continue  # outside swarm: the test below
        assert not cluster.violations, cluster.report()
        cluster.assert_clean()
        replayed += len(phase.records)
    nodes = {r.node for p in phases for r in p.records}
    assert nodes == ({"node-1"} if path == st.MANAGED else {"node-1", "node-2"})
    assert replayed > 100


def test_a_global_network_created_outside_swarm_is_flagged() -> None:
    """dockerd 20.10 sends CreateNetwork for a global-scope driver outside swarm (then
    rolls it back, and the user sees "not a swarm manager"): no node allocated it."""
    phase = _phases(st.MANAGED)[0]
    with st.cluster_for(phase) as cluster, requests.Session() as session:
        st.Replay(cluster, session).run(phase)
    assert [v.method for v in cluster.violations] == ["NetworkDriver.CreateNetwork"]
    assert "which no node allocated" in messages(cluster)[0]


def test_the_two_node_transcript_spreads_tasks_and_discovery_over_both_nodes() -> None:
    phases = _phases(st.TWO_NODES)
    swarm = phases[1]
    with st.cluster_for(swarm) as cluster, requests.Session() as session:
        replay = st.Replay(cluster, session)
        for record in swarm.records:
            replay.send(record)
            if record.method == "NetworkDriver.DiscoverNew" and record.node == "node-2":
                joined = cluster.oracle.audit()
    assert joined == []  # after the join, each node knew the other
    creates = cluster.calls.of("CreateEndpoint")
    assert {c.node for c in creates} == {"node-1", "node-2"}
    assert cluster.calls.of("AllocateNetwork", node="node-2") == []
    assert cluster.calls.of("DiscoverDelete")[-1].node == "node-1"


# -- each check between nodes, caught -------------------------------------------------------------
def test_an_address_handed_out_on_two_nodes_is_caught() -> None:
    cluster = Cluster(3)
    swarm = Swarm(cluster)
    swarm.create_network("node-2")
    swarm.create_network("node-3")
    address = swarm.address()
    swarm.start("node-2", "e1", address)
    assert not cluster.violations
    swarm.start("node-3", "e2", address)  # each node alone finds nothing wrong
    assert messages(cluster) == [
        f"address {address[:-3]} of network net1 handed out twice: endpoint e2 on node-3 "
        "and endpoint e1 on node-2"
    ]
    assert cluster["node-3"].violations == []
    assert any("handed out twice" in leak for leak in cluster.leaks())


def local_network(cluster: Cluster, nid: str, v4: str, v6: str) -> None:
    """``nid`` on every node of a local-scope cluster, with an IPv4 and an IPv6 pool."""
    for node in cluster:
        call(
            cluster,
            node,
            "NetworkDriver.CreateNetwork",
            NetworkID=nid,
            IPv4Data=[{"AddressSpace": "LocalDefault", "Pool": v4}],
            IPv6Data=[{"AddressSpace": "LocalDefault", "Pool": v6}],
        )


def endpoint(cluster: Cluster, node: str, nid: str, eid: str, v4: str, v6: str = "") -> None:
    interface = {"Address": v4, "AddressIPv6": v6, "MacAddress": ""}
    call(cluster, node, "NetworkDriver.CreateEndpoint", NetworkID=nid, EndpointID=eid,
         Interface=interface)  # fmt: skip


def test_an_ipv6_address_handed_out_on_two_nodes_is_caught_and_shown_as_text() -> None:
    cluster = Cluster(3, scope="local")
    local_network(cluster, "n", "10.0.0.0/24", "fd00::/64")
    endpoint(cluster, "node-1", "n", "e1", "10.0.0.2/24", "fd00::2/64")
    endpoint(cluster, "node-3", "n", "e3", "10.0.0.3/24", "fd00:0:0::2/64")  # the same IPv6
    assert messages(cluster) == [
        "address fd00::2 of network n handed out twice: endpoint e3 on node-3 and endpoint "
        "e1 on node-1"
    ]


def test_an_address_on_another_network_or_given_back_first_is_no_finding() -> None:
    """Each network's addresses are its own, and an address the endpoint holding it gave
    back (DeleteEndpoint) may go to another node; the endpoint still holding it counts."""
    cluster = Cluster(3, scope="local")
    local_network(cluster, "a", "10.0.0.0/24", "fd00::/64")
    local_network(cluster, "b", "10.0.0.0/24", "fd00::/64")
    endpoint(cluster, "node-1", "a", "e1", "10.0.0.2/24", "fd00::2/64")
    endpoint(cluster, "node-2", "b", "e2", "10.0.0.2/24", "fd00::2/64")
    call(cluster, "node-1", "NetworkDriver.DeleteEndpoint", NetworkID="a", EndpointID="e1")
    endpoint(cluster, "node-3", "a", "e3", "10.0.0.2/24")
    assert messages(cluster) == []
    endpoint(cluster, "node-1", "b", "e4", "10.0.0.9/24", "fd00::2/64")
    endpoint(cluster, "node-2", "a", "e5", "10.0.0.2/24")
    assert messages(cluster) == [
        "address fd00::2 of network b handed out twice: endpoint e4 on node-1 and endpoint "
        "e2 on node-2",
        "address 10.0.0.2 of network a handed out twice: endpoint e5 on node-2 and endpoint "
        "e3 on node-3",
    ]


def test_an_endpoint_on_a_node_without_the_network_is_caught() -> None:
    cluster = Cluster(3)
    swarm = Swarm(cluster)
    swarm.create_network("node-2")
    _, answer = cluster["node-3"].handle(
        "/NetworkDriver.CreateEndpoint",
        json.dumps({"NetworkID": "net1", "EndpointID": "e1", "Interface": {}}).encode(),
    )
    assert answer == {"Err": "network net1 not found"}  # the node itself refuses
    assert messages(cluster) == [
        "CreateEndpoint on node-3 for network net1, which node-3 does not have (node-2 has "
        "it): CreateNetwork must come first on every node"
    ]


def test_create_network_must_carry_what_the_manager_allocated() -> None:
    cluster = Cluster(2)
    swarm = Swarm(cluster)
    wrong = [
        {"AddressSpace": "", "Gateway": swarm.gateway.replace(".1/", ".9/"), "Pool": swarm.pool}
    ]
    swarm.create_network("node-2", ipam=wrong)
    (message,) = messages(cluster)
    assert message.startswith("CreateNetwork on node-2 of network net1 with pools/gateways")
    assert f"node-1 allocated [{swarm.pool} gw {swarm.gateway}]" in message
    cluster["node-1"].handle(
        "/NetworkDriver.CreateNetwork", json.dumps({"NetworkID": "x"}).encode()
    )
    assert "global-scope network x, which no node allocated" in messages(cluster)[-1]


def test_a_local_network_needs_no_allocation() -> None:
    cluster = Cluster(2, scope="local")
    call(cluster, "node-2", "NetworkDriver.CreateNetwork", NetworkID="x", IPv4Data=[])
    assert not cluster.violations


def test_an_exact_local_address_the_global_space_never_gave_is_caught() -> None:
    cluster = Cluster(2)
    swarm = Swarm(cluster)
    swarm.create_network("node-2")
    given = swarm.address()
    swarm.start("node-2", "e1", given)
    assert not cluster.violations  # the gateway and the given address were handed out
    stray = given.replace(given.split(".")[-1].split("/")[0] + "/", "77/")
    swarm.start("node-2", "e2", stray)
    assert messages(cluster) == [
        f"RequestAddress on node-2 for {stray[:-3]} in its local pool {swarm.pool}, which "
        "the global space (GlobalDefault) never handed out"
    ]
    pool = swarm.local_pools["node-2"]
    _, refused = cluster["node-2"].handle(  # the same again: refused by the node, not flagged
        "/IpamDriver.RequestAddress",
        json.dumps({"PoolID": pool, "Address": stray.split("/")[0]}).encode(),
    )
    assert "already allocated" in refused["Error"]
    call(cluster, "node-2", "IpamDriver.RequestAddress", PoolID=pool, Address="")  # not exact
    assert len(cluster.violations) == 1


def test_an_address_given_under_a_rewritten_answer_is_known_as_given() -> None:
    """The views follow what a call changed, not its answer as sent: an ``answer`` fault
    rewrote the address the manager's RequestAddress answered, the global space handed
    out the address all the same, and a node taking it by name is not flagged (the oracle
    read the answer, missed the lease, and flagged it)."""
    cluster = Cluster(2)
    swarm = Swarm(cluster)
    swarm.create_network("node-2")
    manager = cluster["node-1"]
    manager.fail("RequestAddress", kind="answer", answer={"Address": "192.0.2.9/24"})
    body = {"PoolID": swarm.global_pool, "Address": "", "Options": SERIAL}
    reply = manager.respond("/IpamDriver.RequestAddress", json.dumps(body).encode())
    assert json.loads(reply.body)["Address"] == "192.0.2.9/24"  # what the manager was told ...
    given = manager.state.addresses[swarm.global_pool][-1]  # ... and what it leased
    swarm.start("node-2", "e1", given)
    assert not cluster.violations


def test_free_network_while_a_node_still_has_it_is_caught() -> None:
    cluster = Cluster(3)
    swarm = Swarm(cluster)
    swarm.create_network("node-2")
    swarm.create_network("node-3")
    swarm.delete_network("node-2")
    swarm.free([])
    assert messages(cluster) == [
        "FreeNetwork of net1 on node-1 while node-3 still has it "
        "(DeleteNetwork on every node first)"
    ]


def test_a_legal_swarm_sequence_leaves_a_clean_cluster() -> None:
    cluster = Cluster(3)
    swarm = Swarm(cluster)
    addresses = [swarm.address() for _ in range(3)]
    for number, (node, address) in enumerate(
        zip(["node-1", "node-2", "node-3"], addresses, strict=True)
    ):
        swarm.create_network(node)
        swarm.start(node, f"e{number}", address)
    for number, (node, address) in enumerate(
        zip(["node-1", "node-2", "node-3"], addresses, strict=True)
    ):
        swarm.stop(node, f"e{number}", address)
        swarm.delete_network(node)
    swarm.free(addresses)
    assert cluster.violations == []
    cluster.assert_clean()


def discover(
    cluster: Cluster, node: str, address: str, *, self: bool, delete: bool = False
) -> None:
    data = {"Address": address, "BindAddress": address if self else "", "Self": self}
    method = "NetworkDriver.DiscoverDelete" if delete else "NetworkDriver.DiscoverNew"
    call(cluster, node, method, DiscoveryType=1, DiscoveryData=data)


def test_discovery_fan_out_is_audited() -> None:
    cluster = Cluster(3, connectivity_scope="global")
    discover(cluster, "node-1", "10.0.0.1", self=True)
    discover(cluster, "node-2", "10.0.0.2", self=True)
    discover(cluster, "node-2", "10.0.0.1", self=False)
    assert cluster.oracle.audit() == [
        "node-1 (10.0.0.1) was never told of node-2 (10.0.0.2) by DiscoverNew"
    ]
    discover(cluster, "node-1", "10.0.0.2", self=False)
    discover(cluster, "node-3", "10.0.0.1", self=False)
    assert cluster.oracle.audit() == [
        "node-3 was told of peers but never of itself (Self DiscoverNew)"
    ]
    discover(cluster, "node-3", "10.0.0.3", self=True)
    discover(cluster, "node-3", "10.0.0.2", self=False)
    discover(cluster, "node-1", "10.0.0.3", self=False)
    discover(cluster, "node-2", "10.0.0.3", self=False)
    assert cluster.oracle.audit() == []
    discover(cluster, "node-1", "10.0.0.3", self=False, delete=True)  # node-3 leaves
    assert cluster.leaks() == [
        "discovery: node-2 (10.0.0.2) still knows 10.0.0.3, which left (DiscoverDelete on node-1)"
    ]
    discover(cluster, "node-2", "10.0.0.3", self=False, delete=True)
    cluster.assert_clean()


def test_findings_name_the_nodes_in_cluster_order_whichever_was_called_first() -> None:
    cluster = Cluster(3, connectivity_scope="global")
    discover(cluster, "node-3", "10.0.0.1", self=False)
    discover(cluster, "node-2", "10.0.0.1", self=False)
    assert cluster.oracle.audit() == [
        "node-2 was told of peers but never of itself (Self DiscoverNew)",
        "node-3 was told of peers but never of itself (Self DiscoverNew)",
    ]


def test_discovery_is_not_audited_with_local_connectivity() -> None:
    cluster = Cluster(2, connectivity_scope="local")
    discover(cluster, "node-1", "10.0.0.1", self=True)
    discover(cluster, "node-2", "10.0.0.2", self=True)
    cluster.assert_clean()


def test_reset_forgets_every_node_the_timeline_and_the_findings() -> None:
    cluster = Cluster(2)
    swarm = Swarm(cluster)
    swarm.create_network("node-2")
    call(cluster, "node-1", "NetworkDriver.CreateNetwork", NetworkID="stray")
    cluster.partition("node-2", mode="hold")
    assert cluster.violations and cluster.calls and cluster.leaks()
    cluster.reset()
    assert cluster.calls == [] and cluster.violations == [] and cluster.partitions == {}
    assert cluster.leaks() == []
    call(cluster, "node-2", "NetworkDriver.CreateNetwork", NetworkID="net1")
    assert "which no node allocated" in cluster.violations[0].message  # the old view is gone
