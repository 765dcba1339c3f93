"""Swarm nodes on one machine, for the real-swarm tests.

A :class:`Node` is a network namespace of its own (``ip netns add``, loopback up) with an
isolated dockerd started inside it under a host name of its own (``nsenter --net`` then
``unshare --uts``: ``ip netns exec`` would remount ``/sys`` and leave dockerd without a
devices cgroup). Swarm's ports (2377, 7946, 4789) are then the namespace's, so two runs
on one host never meet. Nodes reach each other over a veth pair made inside their
namespaces (10.123.0.1/24, 10.123.0.2/24); a lone node keeps both ends of its pair.

:func:`cluster` makes the nodes and always takes everything down again (swarm left,
plugins removed, daemons stopped, namespaces and links deleted), whatever failed;
:func:`leftovers` says what of them is still on the host. :meth:`Node.plugin` puts the
plugin bundle on a node (a ``dockerd_env.ManagedPlugin``); :func:`swarm_init`,
:func:`swarm_join` and :func:`converged` drive the swarm, with :func:`wait_until`
(polling, never a blind sleep).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .dockerd_env import Dockerd, ManagedPlugin, Unavailable, run_name

T = TypeVar("T")

SUBNET = "10.123.0"


def wait_until(what: str, probe: Callable[[], T], timeout: float = 60) -> T:
    """Poll ``probe`` until it answers something true (a non-empty list, ``True``, ...);
    fail with ``what`` (and the last answer) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (last: {answer!r})"
            )
        time.sleep(0.2)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; a failure is an :class:`Unavailable` naming the command."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise Unavailable(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


class Node:
    """A swarm node: a network namespace and an isolated dockerd inside it.

    :param hostname: the node's host name (what ``docker node ls`` shows).
    :param base: the folder for the daemon's data root, exec root, pid file and socket.
    :param address: the node's address on the cluster link, e.g. ``10.123.0.1``.
    """

    def __init__(self, hostname: str, base: Path, address: str) -> None:
        self.hostname, self.address = hostname, address
        self.netns = run_name(f"fdsw-{hostname}-")
        base.mkdir(parents=True, exist_ok=True)
        self.dockerd = Dockerd(
            base,
            wrapper=[
                "nsenter",
                f"--net=/run/netns/{self.netns}",
                "unshare",
                "--uts",
                "--",
                "sh",
                "-c",
                'hostname "$0" && exec "$@"',
                hostname,
            ],
        )
        self.plugins: list[ManagedPlugin] = []
        self.link = ""  # its end of the cluster link, inside its namespace
        self.stragglers: list[str] = []  # processes still in the namespace at teardown

    def plugin(self, name: str) -> ManagedPlugin:
        """A managed plugin on this node (removed at teardown), not yet installed."""
        plugin = ManagedPlugin(self.dockerd, name)
        self.plugins.append(plugin)
        return plugin

    def create_namespace(self) -> None:
        ip("netns", "add", self.netns)
        ip("-n", self.netns, "link", "set", "lo", "up")

    def start(self) -> None:
        """Start the daemon (the namespace and its links must exist) and import ``bb:local``."""
        self.dockerd.start()
        self.dockerd.import_busybox()

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """``docker ARGS`` against this node's daemon; its stdout."""
        return self.dockerd.docker(*args, check=check, timeout=timeout).stdout

    def containers(self, service: str) -> list[dict[str, Any]]:
        """``docker inspect`` of this node's running task containers of ``service``."""
        ids = self.docker(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}"
        ).split()
        return json.loads(self.docker("inspect", *ids)) if ids else []

    def teardown(self) -> None:
        """Leave the swarm, remove the plugins, stop the daemon, delete the namespace.
        Every step runs whatever the others did."""
        if self.dockerd.process is not None:
            with contextlib.suppress(Exception):
                self.docker("swarm", "leave", "--force", check=False, timeout=60)
            for plugin in self.plugins:
                with contextlib.suppress(Exception):
                    plugin.remove()
            with contextlib.suppress(Exception):
                self.dockerd.stop()
        for point in mounts_under(self.dockerd.base):  # dockerd may leave ingress_sbox
            subprocess.run(["umount", point], capture_output=True, timeout=30, check=False)
        self.stragglers = ip("netns", "pids", self.netns, check=False).stdout.split()
        if self.link:  # gone with the namespace, unless a straggler keeps it alive
            ip("-n", self.netns, "link", "del", self.link, check=False)
        ip("netns", "delete", self.netns, check=False)


# -- a cluster ----------------------------------------------------------------------------
@contextlib.contextmanager
def cluster(base: Path, *hostnames: str) -> Iterator[list[Node]]:
    """One or two nodes, linked, each daemon running (no swarm yet); everything is taken
    down when the block ends, however it ends (see :func:`leftovers`)."""
    if not 1 <= len(hostnames) <= 2:
        raise ValueError("a cluster here has one node or two (one veth pair)")
    if os.geteuid() != 0:
        raise Unavailable("network namespaces and dockerd need root")
    nodes = [Node(name, base / name, f"{SUBNET}.{i + 1}") for i, name in enumerate(hostnames)]
    try:
        for node in nodes:
            node.create_namespace()
        _link(nodes)
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in reversed(nodes):  # workers leave before the manager
            node.teardown()


def _link(nodes: list[Node]) -> None:
    """The cluster link, made inside the namespaces (no name is taken on the host)."""
    link = run_name("fdsw")
    first = nodes[0]
    # a lone node keeps both ends (a dummy link needs a module a container may not have)
    peer, peer_name = (nodes[1].netns, link) if len(nodes) == 2 else (first.netns, f"{link}p")
    ip("-n", first.netns, "link", "add", link, "type", "veth", "peer", "name", peer_name,
       "netns", peer)  # fmt: skip
    if len(nodes) == 1:
        ip("-n", first.netns, "link", "set", peer_name, "up")
    for node in nodes:
        node.link = link
        ip("-n", node.netns, "addr", "add", f"{node.address}/24", "dev", link)
        ip("-n", node.netns, "link", "set", link, "up")


def leftovers(nodes: list[Node]) -> list[str]:
    """What of these nodes is still on the host: namespaces, processes that were left in
    them, daemons, plugin socket folders, mounts under their folders."""
    found: list[str] = []
    namespaces = set(ip("netns", "list").stdout.split())
    for node in nodes:
        if node.netns in namespaces:
            found.append(f"network namespace {node.netns}")
        found += [f"process {pid} of {node.netns}" for pid in node.stragglers
                  if Path(f"/proc/{pid}").exists()]  # fmt: skip
        pidfile = node.dockerd.base / "docker.pid"
        if node.dockerd.process is not None or (pidfile.exists() and _alive(pidfile)):
            found.append(f"dockerd of {node.hostname}")
        found += [f"plugin socket folder {p.socket.parent}" for p in node.plugins
                  if p.socket.name and p.socket.parent.exists()]  # fmt: skip
        found += [f"mount {point}" for point in mounts_under(node.dockerd.base)]
    return found


def mounts_under(base: Path) -> list[str]:
    """The mount points below ``base``, deepest first."""
    lines = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(f"{base}/")), key=len, reverse=True)


def _alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (ValueError, ProcessLookupError):
        return False
    return True


# -- swarm ----------------------------------------------------------------------------------
def swarm_init(manager: Node) -> None:
    manager.docker("swarm", "init", "--advertise-addr", manager.address)


def swarm_join(worker: Node, manager: Node) -> None:
    """Join ``worker`` with the worker token; wait until the manager sees it ready."""
    token = manager.docker("swarm", "join-token", "-q", "worker").strip()
    worker.docker(
        "swarm", "join", "--token", token, "--advertise-addr", worker.address,
        f"{manager.address}:2377",
    )  # fmt: skip
    wait_until(f"{worker.hostname} ready in the swarm", lambda: _ready(manager, worker.hostname))


def _ready(manager: Node, hostname: str) -> bool:
    table = manager.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
    return f"{hostname} Ready" in table.splitlines()


def tasks(manager: Node, service: str) -> list[tuple[str, str]]:
    """The service's tasks that should run and do: (node host name, task id)."""
    table = manager.docker(
        "service", "ps", service, "--filter", "desired-state=running",
        "--format", "{{.Node}} {{.ID}} {{.CurrentState}}",
    )  # fmt: skip
    rows = [line.split() for line in table.splitlines()]
    return [(row[0], row[1]) for row in rows if len(row) > 2 and row[2] == "Running"]


def converged(manager: Node, service: str, replicas: int) -> list[tuple[str, str]] | None:
    """The running tasks once there are exactly ``replicas`` of them, else ``None``."""
    running = tasks(manager, service)
    return running if len(running) == replicas else None
