"""A cluster of fakes: one driver per node of a swarm, for an orchestrator that drives many
hosts, with partitions, one merged timeline and the checks no single driver can make
(see `fakedriver.cluster.oracle`).

Each node tells the cluster of its calls through a listener, which runs under that node's
lock and takes the cluster's: so the cluster never takes a node's lock while it holds its
own, and the oracle reads only the state of the node whose call it is checking.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, SupportsIndex
from urllib.parse import urlsplit, urlunsplit

from ..core.audit import LeakError
from ..core.faults import Rule
from ..core.journal import Call, format_call, id_width, mismatches
from ..core.methods import resolve
from ..core.persona import Persona
from ..fake import FakeNetDriver, Route
from ..transports.registry import default_clients
from ..transports.route import DEFAULT_URL
from .oracle import Oracle

#: What a partitioned node does with every call: ``drop`` closes the connection unanswered
#: (the ``drop`` fault), ``hold`` keeps the call waiting until the partition heals.
MODES = ("drop", "hold")


@dataclass(frozen=True)
class NodeCall:
    """One call of the cluster's timeline: the node that served it and its journal entry.

    :param seq: its position in the timeline, from 0.
    :param node: the node's name, e.g. ``"node-2"``.
    :param call: the entry in that node's journal.
    """

    seq: int
    node: str
    call: Call

    def __str__(self) -> str:
        return self.line()

    def line(self, width: int | None = None) -> str:
        """The call on one line, hex ids cut to ``width`` (see `format_call()`)."""
        return f"@{self.seq} {self.node} {format_call(self.call, width)}"


class Timeline(list[NodeCall]):
    """Every call served by every node, in the order the nodes served them.

    A cluster adds each call with `record()`, which keeps its node and its journal entry and
    makes no object; the `NodeCall` is made when the timeline is next read or changed. So
    a node's call pays nothing for the timeline, and every read (``len``, iteration,
    indexing, ``==``, `of()`, ...) of any reference to the timeline sees every call recorded
    before it.
    """

    def __init__(self, calls: Iterable[NodeCall] = ()) -> None:
        super().__init__(calls)
        #: node, call, node, call, ...: recorded, not yet made NodeCalls
        self._recorded: list[Any] = []
        self._making = threading.Lock()  # one reader makes them at a time

    def record(self, node: str, call: Call) -> None:
        """Add ``call``, served by ``node``, at the end. One writer at a time (a cluster
        records under its lock); a reader takes no lock of the writer's: extending a list
        by a tuple is one step under the GIL, so it never sees half a record."""
        self._recorded.extend((node, call))

    def _make(self) -> None:
        """Make the NodeCalls of what was recorded, in order, at the end."""
        recorded = self._recorded
        if not recorded:
            return
        with self._making:
            count = len(recorded)  # even: see record()
            done = recorded[:count]
            del recorded[:count]  # a record() meanwhile went after them
            seq = list.__len__(self)
            made = [NodeCall(seq + i, done[2 * i], done[2 * i + 1]) for i in range(count // 2)]
            list.extend(self, made)

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        """Copied and pickled as a timeline of its calls, with nothing still recorded."""
        return Timeline, (list(self),)

    def of(self, method: str, node: str | None = None, **fields: Any) -> list[NodeCall]:
        """The calls of ``method`` (on ``node``, if given) whose request matches ``fields``
        (as [`fakedriver.Journal.of()`][fakedriver.Journal.of])."""
        name = resolve(method)
        return [
            c
            for c in self
            if c.call.method == name
            and (node is None or c.node == node)
            and not mismatches(c.call.request, fields)
        ]

    @property
    def methods(self) -> list[tuple[str, str]]:
        """``(node, method)`` of every call, in order."""
        return [(c.node, c.call.method) for c in self]

    def format(self) -> str:
        """One line per call, each with its node: the timeline of a failure report."""
        calls = self[:]  # one read: calls recorded meanwhile are not half in it
        if not calls:
            return "timeline: (none)\n"
        width = id_width(c.call for c in calls)  # the ids of every node, told apart
        return "timeline:\n" + "".join(f"  {c.line(width)}\n" for c in calls)


def _made_first(name: str) -> Any:
    """The list method ``name``, run once the timeline's recorded calls are made."""
    plain = getattr(list, name)

    def method(self: Timeline, *args: Any) -> Any:
        self._make()
        return plain(self, *args)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = plain.__doc__
    return method


# every list method that reads or changes the items (list's own C code, e.g. list(timeline)
# or ``[*timeline]``, reads them through __iter__, as of any subclass of list)
for _name in (
    "__add__", "__contains__", "__delitem__", "__eq__", "__ge__", "__getitem__", "__gt__",
    "__iadd__", "__imul__", "__iter__", "__le__", "__len__", "__lt__", "__mul__", "__ne__",
    "__repr__", "__reversed__", "__rmul__", "__setitem__", "append", "clear", "copy",
    "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort",
):  # fmt: skip
    setattr(Timeline, _name, _made_first(_name))


@dataclass(frozen=True)
class ClusterViolation:
    """A rule between nodes that a call broke, as the oracle saw it (never a refusal)."""

    node: str
    call: int
    method: str
    message: str

    def __str__(self) -> str:
        return f"{self.node} call #{self.call} {self.method}: {self.message}"


@dataclass
class Cut:
    """When a node was cut off (the shading of a picture's lane): from ``start`` to
    ``end`` (``time.time()``; ``None`` while it still is)."""

    node: str
    mode: str
    start: float
    end: float | None = None


@dataclass
class Partition:
    """Nodes cut off by [`Cluster.partition()`][fakedriver.Cluster.partition]; ``heal()`` (or the
    end of a ``with`` block) joins them again. In ``hold`` mode,
    [`wait_held()`][fakedriver.Partition.wait_held] waits
    for held calls."""

    cluster: Cluster
    nodes: tuple[str, ...]
    mode: str

    def wait_held(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait (in real time) until ``count`` calls are held on each partitioned node
        (``False`` at once in ``drop`` mode: nothing is held)."""
        rules = [self.cluster.partitions[node][1] for node in self.nodes]
        return all(r.wait_held(count, timeout) for r in rules) if self.mode == "hold" else False

    def heal(self) -> None:
        """Heal these nodes (held calls go on and are served)."""
        self.cluster.heal(*self.nodes)

    def __enter__(self) -> Partition:
        return self

    def __exit__(self, *exc: object) -> None:
        self.heal()


def node_url(base: str, name: str) -> str:
    """``http://node-2.fake-netdriver`` for ``base`` ``http://fake-netdriver``."""
    scheme, sep, rest = base.rstrip("/").partition("://")
    if sep and "@" not in rest:  # the usual case, without parsing the URL
        return f"{scheme}://{name}.{rest}"
    parts = urlsplit(base.rstrip("/"))
    return urlunsplit(parts._replace(netloc=f"{name}.{parts.netloc}"))


class Cluster:
    """``nodes`` fake drivers, one per node of a swarm, sharing one persona (global scope
    unless told otherwise), named ``node-1`` ... ``node-N``; ``node-1`` is the manager.

    Each node is a [`FakeNetDriver`][fakedriver.FakeNetDriver] with a URL of its own
    (``http://node-2.fake-netdriver``), where its calls are served in-process while the
    cluster is routed (``with cluster:`` or [`route()`][fakedriver.Cluster.route]), and it can be
    served on a real socket with [`fakedriver.serving()`][fakedriver.serving]. Every call is added
    to `calls`, one timeline of all nodes, and checked against the other nodes (`violations`).

    :param nodes: how many nodes.
    :param persona: the nodes' persona; ``options`` override its fields.
    :param url: the base the node URLs are made from.
    :param clients: which client libraries to route (default: every one installed).
    :param options: persona fields, e.g. ``connectivity_scope="global"``.
    """

    def __init__(
        self,
        nodes: int = 3,
        persona: Persona | None = None,
        *,
        url: str = DEFAULT_URL,
        clients: Iterable[str] | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(nodes, int) or isinstance(nodes, bool) or nodes < 1:
            raise ValueError(f"a cluster has at least one node, not {nodes!r}")
        if persona is None:
            persona = Persona(**{"scope": "global", **options})
        elif options:
            persona = dataclasses.replace(persona, **options)
        self.persona = persona
        #: The nodes by name, in order; the first is the manager.
        self.nodes: dict[str, FakeNetDriver] = {}
        self.calls = Timeline()
        self.violations: list[ClusterViolation] = []
        #: The partitioned nodes: name -> (mode, the fault rule cutting it off).
        self.partitions: dict[str, tuple[str, Rule]] = {}
        #: Every partition, healed or not, oldest first (for a failing test's picture).
        self.cuts: list[Cut] = []
        self._lock = threading.Lock()
        self._routes: list[Route] = []
        # what every node shares is found once: the clients, where the URLs are made from
        clients = default_clients() if clients is None else tuple(clients)
        for number in range(1, nodes + 1):
            name = f"node-{number}"
            fake = FakeNetDriver(persona)
            fake.listeners.append(partial(self._observe, name, fake))
            self.nodes[name] = fake
            self._routes.append(Route(fake, node_url(url, name), clients=clients))
        self.oracle = Oracle(persona, self.nodes)

    # -- the nodes --------------------------------------------------------------------------
    def __getitem__(self, name: str) -> FakeNetDriver:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r}; the nodes are {', '.join(self.nodes)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def manager(self) -> FakeNetDriver:
        """The first node's driver: the swarm manager's (AllocateNetwork goes there)."""
        return next(iter(self.nodes.values()))

    @property
    def urls(self) -> dict[str, str]:
        """Each node's base URL, by name (served there while the cluster is routed)."""
        return {name: route.url for (name, _), route in self._pairs()}

    def name_of(self, fake: FakeNetDriver) -> str:
        """The name of the node whose driver is ``fake``."""
        for name, node in self.nodes.items():
            if node is fake:
                return name
        raise ValueError("that driver is not a node of this cluster")

    def reset(self) -> None:
        """Heal every partition, then reset every node (see
        [`fakedriver.FakeNetDriver.reset()`][fakedriver.FakeNetDriver.reset]) and forget the
        timeline and violations.
        Reset the cluster, not one node: the checks keep a view of every node."""
        self.heal()
        for fake in self.nodes.values():  # never a node's lock under the cluster's
            fake.reset()
        with self._lock:
            self.calls.clear()
            self.violations.clear()
            self.cuts.clear()
            self.oracle = Oracle(self.persona, self.nodes)

    def _pairs(self) -> Iterator[tuple[tuple[str, FakeNetDriver], Route]]:
        return zip(self.nodes.items(), self._routes, strict=True)

    # -- routing ------------------------------------------------------------------------------
    def route(self) -> None:
        """Serve each node's calls at its URL in-process until
        [`close()`][fakedriver.Cluster.close]."""
        for route in self._routes:
            route.start()

    def close(self) -> None:
        """Heal every partition (held calls go on) and stop routing."""
        self.heal()
        for route in self._routes:
            route.stop()

    def __enter__(self) -> Cluster:
        self.route()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- partitions ---------------------------------------------------------------------------
    def partition(self, *names: str, mode: str = "drop") -> Partition:
        """Cut ``names`` off: every call to them is dropped (``mode="drop"``: the
        connection closes unanswered, the call is not served) or held (``"hold"``: served
        once healed). Ahead of the node's own fault rules; journaled with the fault
        ``partition of <node>``. Returns a [`Partition`][fakedriver.Partition] (a context manager
        that heals)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if not names:
            raise ValueError("name the nodes to partition")
        for name in names:
            self[name]  # an unknown name raises KeyError here, before anything changes
            if name in self.partitions:
                raise ValueError(f"{name} is already partitioned ({self.partitions[name][0]})")
        for name in names:
            fake = self.nodes[name]
            rule = Rule("*", mode, message=f"{name} is partitioned", name=f"partition of {name}")
            fake.add_rules([rule], first=True)  # no other rule decides its calls
            self.partitions[name] = (mode, rule)
            self.cuts.append(Cut(name, mode, time.time()))
        return Partition(self, tuple(names), mode)

    def heal(self, *names: str) -> None:
        """Join ``names`` (every partitioned node when none is named) again: held calls
        go on and are served, new calls are served."""
        for name in names:
            self[name]  # an unknown name raises KeyError here, before anything changes
        for name in names or list(self.partitions):
            if name not in self.partitions:
                continue
            _, rule = self.partitions.pop(name)
            self.nodes[name].remove_rule(rule)
            for cut in self.cuts:
                if cut.node == name and cut.end is None:
                    cut.end = time.time()

    # -- the timeline and the checks -------------------------------------------------------------
    def _observe(self, name: str, fake: FakeNetDriver, call: Call) -> None:
        """A node's listener: runs under that node's lock, reads only that node's state."""
        with self._lock:
            self.calls.record(name, call)  # its NodeCall is made when the timeline is read
            for message in self.oracle.observe(name, fake.state, call, fake.changes):
                self.violations.append(ClusterViolation(name, call.index, call.method, message))

    def leaks(self) -> list[str]:
        """Every node's leaks (each named with its node), every cluster violation, and
        what the discovery audit finds now (see
        [`fakedriver.FakeNetDriver.leaks()`][fakedriver.FakeNetDriver.leaks])."""
        found = [f"{name}: {leak}" for name, fake in self.nodes.items() for leak in fake.leaks()]
        with self._lock:
            found += [f"cluster violation: {v}" for v in self.violations]
            found += [f"discovery: {finding}" for finding in self.oracle.audit()]
        return found

    def assert_clean(self) -> None:
        """Fail with [`fakedriver.LeakError`][fakedriver.LeakError] when
        [`leaks()`][fakedriver.Cluster.leaks] finds anything."""
        __tracebackhide__ = True
        found = self.leaks()
        if found:
            raise LeakError(found)

    def report(self) -> str:
        """The merged timeline, the violations and the audit: a failing test's report."""
        with self._lock:
            timeline = self.calls.format()
        leaks = self.leaks()
        audit = "".join(f"  - {leak}\n" for leak in leaks) if leaks else "  (clean)\n"
        head = f"cluster of {len(self)} nodes (manager {next(iter(self.nodes))}, seed "
        head += f"{self.persona.seed}, strict={self.persona.strict})"
        return f"{head}\n{timeline}audit:\n{audit}"
