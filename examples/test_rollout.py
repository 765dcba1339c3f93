"""Testing ``rollout.py`` against fakedriver's ``fake_netdriver_cluster`` fixture.

The fixture gives three node fakes (``node-1``, the manager, to ``node-3``), each routed
at its own URL: the orchestrator runs unchanged, with real ``requests`` calls. The
cluster checks what no single plugin can see (an address handed out on two nodes, a
network missing on a node, what the manager allocated) and ``cluster.partition(...)``
cuts a node off in the middle of a rollout.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from rollout import Rollout, Task

from fakedriver import Cluster


@pytest.fixture
def rollout(fake_netdriver_cluster: Cluster) -> Iterator[Rollout]:
    with requests.Session() as session:
        rollout = Rollout(session, fake_netdriver_cluster.urls)
        rollout.create_network("web")
        yield rollout


def nodes_of(rollout: Rollout) -> list[str]:
    return [task.node for task in rollout.tasks.values()]


@pytest.mark.fake_netdriver_cluster(audit=True)
def test_a_rollout_spreads_tasks_over_three_nodes(rollout, fake_netdriver_cluster):
    rollout.scale(6)

    assert nodes_of(rollout) == ["node-1", "node-2", "node-3"] * 2
    for name, node in fake_netdriver_cluster.nodes.items():
        assert len(node.state.endpoints) == 2, name
    fake_netdriver_cluster["node-2"].calls.assert_sequence(
        "RequestPool", "RequestAddress", "CreateNetwork",  # the node's first task
        "RequestAddress", "CreateEndpoint", "Join", "ProgramExternalConnectivity",
    )
    assert fake_netdriver_cluster.calls.of("AllocateNetwork", node="node-2") == []
    assert fake_netdriver_cluster.violations == []

    rollout.scale(0)
    rollout.remove_network()  # the audit runs at teardown: every node clean


@pytest.mark.fake_netdriver_cluster(audit=True)
def test_a_partition_mid_rollout_is_recovered(rollout, fake_netdriver_cluster):
    rollout.scale(3)  # one task per node
    with fake_netdriver_cluster.partition("node-3"):
        rollout.scale(6)  # the 6th task goes to node-3, which does not answer

        assert rollout.down == {"node-3"}
        assert sorted(nodes_of(rollout)) == ["node-1"] * 3 + ["node-2"] * 3
        lost = fake_netdriver_cluster.calls.of("RequestAddress", node="node-3")[-1]
        assert lost.call.fault == "partition of node-3"
        assert len(fake_netdriver_cluster["node-3"].state.endpoints) == 1  # the lost task's

    rollout.recover("node-3")  # back: the lost task is cleaned there
    fake_netdriver_cluster["node-3"].assert_clean()
    assert fake_netdriver_cluster.violations == []  # no address was ever on two nodes
    rollout.scale(0)
    rollout.remove_network()


class Hasty(Rollout):
    """A bug: a lost task's address is released at once, while its endpoint still holds
    it on the node that went down."""

    def _lose(self, node: str, failed: Task) -> None:
        super()._lose(node, failed)
        for task in self.lost:
            self._release(self.manager, self.pool_id, task.address)
        self.lost.clear()


def test_releasing_a_lost_tasks_address_at_once_is_caught(fake_netdriver_cluster):
    with requests.Session() as session:
        hasty = Hasty(session, fake_netdriver_cluster.urls)
        hasty.create_network("web")
        hasty.scale(3)
        with fake_netdriver_cluster.partition("node-3"):
            hasty.scale(6)

    (violation,) = fake_netdriver_cluster.violations
    assert violation.node in ("node-1", "node-2")
    assert "handed out twice" in violation.message and "on node-3" in violation.message
