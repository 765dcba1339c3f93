"""A small multi-node orchestrator that drives one network plugin per node as swarm does.

The first node is the manager. Its plugin allocates the network (``RequestPool`` and the
gateway in the *global* address space, then ``AllocateNetwork``) and picks every task's
address there. A node's first task creates the network on that node (``RequestPool`` of
the allocated pool and ``RequestAddress`` of the gateway in the node's *local* space,
then ``CreateNetwork``); each task asks the node's plugin for the exact address the
manager picked, then ``CreateEndpoint``, ``Join``, ``ProgramExternalConnectivity``.
Tasks are placed round-robin over the healthy nodes. It is the code under test in
``test_rollout.py``, which runs it against fakedriver's ``fake_netdriver_cluster``.

A node that does not answer is *down*: the task being started there gets a new address
on another node, and the node's running tasks are rescheduled too. Their addresses stay
held in the global space until the node is back and cleaned (:meth:`Rollout.recover`):
the old endpoints still hold them there::

    rollout = Rollout(requests.Session(), {"node-1": "http://n1", "node-2": "http://n2"})
    rollout.create_network("web")
    rollout.scale(4)          # 2 tasks per node
    rollout.scale(0)
    rollout.remove_network()
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

SERIAL = {"com.docker.network.ipam.serial": "true"}
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
LABELS: dict[str, Any] = {"com.docker.network.portmap": []}


class PluginError(Exception):
    """A plugin refused a call: ``Err`` (or ``Error``) in its answer."""


class NodeDown(Exception):
    """A node's plugin did not answer (no connection, or no answer in time)."""

    def __init__(self, node: str) -> None:
        super().__init__(f"{node} is down")
        self.node = node


@dataclass
class Task:
    """One replica: where it runs and how far its start got on that node."""

    name: str
    node: str
    address: str  #: CIDR, picked by the manager in the global space
    endpoint_id: str
    leased: bool = False  #: the node's local space holds the address
    created: bool = False  #: the endpoint exists
    joined: bool = False


@dataclass
class NodeNetwork:
    """The network on one node: its local pool and the tasks there."""

    pool_id: str
    gateway: bool = False  #: the local space holds the gateway
    created: bool = False
    tasks: dict[str, Task] = field(default_factory=dict)


class Rollout:
    """Runs the tasks of one service on one swarm-scope network over several nodes.

    :param session: the HTTP session (the tests route it to a cluster of fakes).
    :param urls: each node's plugin URL, by node name; the first is the manager.
    :param new_id: makes network and endpoint ids.
    """

    def __init__(
        self,
        session: requests.Session,
        urls: dict[str, str],
        new_id: Callable[[], str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.session, self.urls, self.timeout = session, urls, timeout
        self.manager = next(iter(urls))
        counter = itertools.count(1)
        self.new_id = new_id or (lambda: f"{next(counter):064x}")
        self.network_id = ""
        self.pool_id = self.pool = self.gateway = ""
        self.nodes: dict[str, NodeNetwork] = {}
        self.tasks: dict[str, Task] = {}  #: running, by name
        self.lost: list[Task] = []  #: on a node that went down, to clean when it is back
        self.down: set[str] = set()
        self._next = 0
        self._names = (f"task-{n}" for n in itertools.count(1))

    # -- the manager --------------------------------------------------------------------
    def create_network(self, name: str) -> None:
        pool = self._call(self.manager, "IpamDriver.RequestPool", AddressSpace="GlobalDefault",
                          Pool="", SubPool="", Options=None, V6=False)
        self.pool_id, self.pool = pool["PoolID"], pool["Pool"]
        gateway = self._call(self.manager, "IpamDriver.RequestAddress", PoolID=self.pool_id,
                             Address="", Options={**GATEWAY, **SERIAL})
        self.gateway, self.network_id = gateway["Address"], self.new_id()
        self._call(self.manager, "NetworkDriver.AllocateNetwork", NetworkID=self.network_id,
                   Options={"name": name}, IPv4Data=self._ipam(""), IPv6Data=None)

    def remove_network(self) -> None:
        """Free the network once no node has it."""
        if self.nodes:
            raise RuntimeError(f"the network is still on {', '.join(sorted(self.nodes))}")
        self._call(self.manager, "NetworkDriver.FreeNetwork", NetworkID=self.network_id)
        self._release(self.manager, self.pool_id, self.gateway)
        self._call(self.manager, "IpamDriver.ReleasePool", PoolID=self.pool_id)

    def _ipam(self, space: str) -> list[dict[str, str]]:
        return [{"AddressSpace": space, "Pool": self.pool, "Gateway": self.gateway}]

    # -- scaling ------------------------------------------------------------------------
    def scale(self, replicas: int) -> None:
        """Start or stop tasks until ``replicas`` run (the newest stop first)."""
        while len(self.tasks) < replicas:
            self._start(next(self._names))
        while len(self.tasks) > replicas:
            task = list(self.tasks.values())[-1]
            self._stop(task)
            del self.tasks[task.name]
            self._release(self.manager, self.pool_id, task.address)

    def _place(self) -> str:
        healthy = [node for node in self.urls if node not in self.down]
        if not healthy:
            raise RuntimeError("no healthy node")
        node = healthy[self._next % len(healthy)]
        self._next += 1
        return node

    def _start(self, name: str) -> None:
        while True:
            node = self._place()
            answer = self._call(self.manager, "IpamDriver.RequestAddress", PoolID=self.pool_id,
                                Address="", Options=SERIAL)
            task = Task(name, node, answer["Address"], self.new_id())
            try:
                self._run(task)
            except NodeDown:
                self._lose(node, task)
                continue
            self.tasks[name] = task
            return

    def _run(self, task: Task) -> None:
        here = self.nodes.get(task.node)
        if here is None:
            pool = self._call(task.node, "IpamDriver.RequestPool", AddressSpace="LocalDefault",
                              Pool=self.pool, SubPool="", Options=None, V6=False)
            here = self.nodes[task.node] = NodeNetwork(pool["PoolID"])
            self._call(task.node, "IpamDriver.RequestAddress", PoolID=here.pool_id,
                       Address=_bare(self.gateway), Options=GATEWAY)
            here.gateway = True
        if not here.created:
            self._call(task.node, "NetworkDriver.CreateNetwork", NetworkID=self.network_id,
                       Options={"com.docker.network.generic": {}},
                       IPv4Data=self._ipam("LocalDefault"), IPv6Data=[])
            here.created = True
        here.tasks[task.name] = task
        self._call(task.node, "IpamDriver.RequestAddress", PoolID=here.pool_id,
                   Address=_bare(task.address), Options=None)
        task.leased = True
        ids = {"NetworkID": self.network_id, "EndpointID": task.endpoint_id}
        interface = {"Address": task.address, "AddressIPv6": "", "MacAddress": ""}
        self._call(task.node, "NetworkDriver.CreateEndpoint", **ids, Interface=interface,
                   Options=LABELS)
        task.created = True
        self._call(task.node, "NetworkDriver.Join", **ids, SandboxKey=f"/var/run/docker/netns/"
                   f"{task.endpoint_id[:12]}", Options=LABELS)
        task.joined = True
        self._call(task.node, "NetworkDriver.ProgramExternalConnectivity", **ids, Options=LABELS)

    def _lose(self, node: str, failed: Task) -> None:
        """``node`` is down: the task that failed there and every task running there are
        rescheduled; their addresses stay held until the node is cleaned."""
        self.down.add(node)
        self.lost.append(failed)
        for task in [t for t in self.tasks.values() if t.node == node]:
            del self.tasks[task.name]
            self.lost.append(task)

    def _stop(self, task: Task) -> None:
        """Undo on the task's node what its start did there; the node's network goes with
        its last task."""
        ids = {"NetworkID": self.network_id, "EndpointID": task.endpoint_id}
        if task.joined:
            self._call(task.node, "NetworkDriver.RevokeExternalConnectivity", **ids)
            self._call(task.node, "NetworkDriver.Leave", **ids)
        if task.created:
            self._call(task.node, "NetworkDriver.DeleteEndpoint", **ids)
        here = self.nodes[task.node]
        if task.leased:
            self._release(task.node, here.pool_id, task.address)
        here.tasks.pop(task.name, None)
        if not here.tasks:
            if here.gateway:
                self._release(task.node, here.pool_id, self.gateway)
            self._call(task.node, "IpamDriver.ReleasePool", PoolID=here.pool_id)
            if here.created:
                self._call(task.node, "NetworkDriver.DeleteNetwork", NetworkID=self.network_id)
            del self.nodes[task.node]

    def recover(self, node: str) -> None:
        """``node`` is back: clean what its lost tasks left there, then release their
        addresses in the global space, and place tasks there again."""
        for task in [t for t in self.lost if t.node == node]:
            if task.node in self.nodes:
                self._stop(task)
            self.lost.remove(task)
            self._release(self.manager, self.pool_id, task.address)
        self.down.discard(node)

    # -- the wire -------------------------------------------------------------------------
    def _release(self, node: str, pool_id: str, address: str) -> None:
        self._call(node, "IpamDriver.ReleaseAddress", PoolID=pool_id, Address=_bare(address))

    def _call(self, node: str, method: str, **body: Any) -> dict[str, Any]:
        try:
            response = self.session.post(f"{self.urls[node]}/{method}", data=json.dumps(body),
                                         timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NodeDown(node) from exc
        answer: dict[str, Any] = response.json()
        error = answer.get("Err") or answer.get("Error")
        if error:
            raise PluginError(f"{node} {method}: {error}")
        return answer


def _bare(cidr: str) -> str:
    return cidr.split("/")[0]
