"""The kit's frame: a check (`Check`, registered with `check()`), what a check runs with
(`Context`: the plugin's client, the ids and subnets of the run, what the handshake
found, the calls of the check), what it leaves behind (`Ledger`, undone after each
check), and a run's outcome (`Report`, one `Result` per check).

The checks themselves are in ``checks.py`` and ``sequences.py``; ``run.py`` runs them.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .client import Client, Exchange
from .rules import dockerd_rejects, go_field
from .session import IPNetwork, Mapping

#: The groups of checks, in the order they run.
GROUPS = ("handshake", "answers", "sequences", "semantics", "hygiene")
#: The ids and subnets the kit uses unless told (``--network-prefix``, ``--subnet``).
DEFAULT_PREFIX = "fdc0"
DEFAULT_SUBNETS = ("10.160.0.0/12", "fd5c:c0de::/32")

ND, IPAM = "NetworkDriver", "IpamDriver"
PORTS: dict[str, list[Any]] = {
    "com.docker.network.endpoint.exposedports": [],
    "com.docker.network.portmap": [],
}


class Failed(Exception):
    """The check fails: the message says why."""


class Skipped(Exception):
    """The check does not apply to this plugin: the message says why."""


# -- what the kit leaves behind ----------------------------------------------------------


@dataclass
class Ledger:
    """What the plugin holds for the kit, from the calls it accepted: undone by
    `cleanup()`, in dockerd's order (Leave, DeleteEndpoint, DeleteNetwork, FreeNetwork,
    then ReleaseAddress, ReleasePool)."""

    networks: dict[str, None] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)  # endpoint -> network
    joins: set[str] = field(default_factory=set)
    allocations: dict[str, None] = field(default_factory=dict)
    pools: dict[str, None] = field(default_factory=dict)
    addresses: dict[tuple[str, str], None] = field(default_factory=dict)  # (pool, bare ip)
    #: What probes on unknown ids may have made: undone too, but the plugin may well
    #: hold nothing of it, so a refusal to undo it is not a leak.
    tentative: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, method: str, body: Any, answer: Any, probe: bool = False) -> None:
        """Take in a call the plugin accepted (``answer``: its decoded answer); a
        ``probe``'s (a call on unknown ids) is tentative."""
        body = body if isinstance(body, dict) else {}
        nid, eid, pid = (str(body.get(k, "")) for k in ("NetworkID", "EndpointID", "PoolID"))
        name = method.partition(".")[2]
        with self.lock:
            if probe:
                self.tentative |= {nid, eid, pid} - {""}
            if name == "CreateNetwork":
                self.networks[nid] = None
            elif name == "DeleteNetwork":
                self.networks.pop(nid, None)
            elif name == "AllocateNetwork":
                self.allocations[nid] = None
            elif name == "FreeNetwork":
                self.allocations.pop(nid, None)
            elif name == "CreateEndpoint":
                self.endpoints[eid] = nid
            elif name == "DeleteEndpoint":
                self.endpoints.pop(eid, None)
                self.joins.discard(eid)
            elif name == "Join":
                self.joins.add(eid)
            elif name == "Leave":
                self.joins.discard(eid)
            elif method == "IpamDriver.RequestPool" and isinstance(answer, dict):
                self.pools[str(go_field(answer, "PoolID"))] = None
            elif method == "IpamDriver.ReleasePool":
                self.pools.pop(pid, None)
                for key in [k for k in self.addresses if k[0] == pid]:
                    del self.addresses[key]
            elif method == "IpamDriver.RequestAddress" and isinstance(answer, dict):
                address = _bare(go_field(answer, "Address"))
                if address:
                    self.addresses[(pid, address)] = None
            elif method == "IpamDriver.ReleaseAddress":
                self.addresses.pop((pid, _bare(body.get("Address"))), None)

    def __bool__(self) -> bool:
        return bool(
            self.networks or self.endpoints or self.allocations or self.pools or self.addresses
        )

    def cleanup(self, call: Callable[[str, Any], Exchange]) -> list[str]:
        """Undo everything held, through ``call``; what could not be undone, one line each
        (then forgotten: a later check does not try again)."""
        left: list[str] = []

        def undo(method: str, body: dict[str, Any], what: str) -> None:
            exchange = call(method, body)
            if refused(exchange) and not set(body.values()) & self.tentative:
                left.append(f"{what}: {exchange.brief()}")

        for eid in sorted(self.joins):
            call(f"{ND}.Leave", {"NetworkID": self.endpoints.get(eid, ""), "EndpointID": eid})
        for eid, nid in sorted(self.endpoints.items()):
            undo(f"{ND}.DeleteEndpoint", {"NetworkID": nid, "EndpointID": eid}, f"endpoint {eid}")
        for nid in list(self.networks):
            undo(f"{ND}.DeleteNetwork", {"NetworkID": nid}, f"network {nid}")
        for nid in list(self.allocations):
            undo(f"{ND}.FreeNetwork", {"NetworkID": nid}, f"allocation {nid}")
        for pid, address in list(self.addresses):
            body = {"PoolID": pid, "Address": address}
            undo(f"{IPAM}.ReleaseAddress", body, f"address {address} of pool {pid}")
        for pid in list(self.pools):
            undo(f"{IPAM}.ReleasePool", {"PoolID": pid}, f"pool {pid}")
        with self.lock:
            self.networks.clear()
            self.endpoints.clear()
            self.joins.clear()
            self.allocations.clear()
            self.pools.clear()
            self.addresses.clear()
            self.tentative.clear()
        return left


def _bare(text: Any) -> str:
    """The address of ``text`` (``10.0.0.2/24`` or ``10.0.0.2``) without a prefix."""
    if not isinstance(text, str) or not text:
        return ""
    try:
        return str(ipaddress.ip_interface(text).ip)
    except ValueError:
        return text


def refused(exchange: Exchange) -> bool:
    """Whether the plugin meant to refuse the call: no answer, a status other than 200, or
    a non-empty error key of either dialect (dockerd may read the wrong one as success:
    that is for the dialect checks to say)."""
    if exchange.error is not None or exchange.status != 200:
        return True
    answer = exchange.answer
    if not isinstance(answer, dict):
        return False
    return any(k.lower() in ("err", "error") and v for k, v in answer.items())


# -- a check and what it runs with ---------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check: ``group/name``, what it asks of a plugin and why (``doc``, with the
    moby source it rests on), and the function that runs it."""

    name: str
    doc: str
    run: Callable[[Context], None]
    needs: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.name.partition("/")[0]


CHECKS: list[Check] = []


def check(name: str, needs: Iterable[str] = ()) -> Callable[[Callable[[Context], None]], Any]:
    """Register the decorated function as the check ``name`` (its docstring is the
    check's ``doc``); ``needs``: the subsystems the plugin must implement, else it is
    skipped."""

    def register(function: Callable[[Context], None]) -> Callable[[Context], None]:
        if any(c.name == name for c in CHECKS):
            raise ValueError(f"two checks named {name}")
        CHECKS.append(Check(name, (function.__doc__ or "").strip(), function, tuple(needs)))
        return function

    return register


@dataclass
class Info:
    """What the handshake found."""

    implements: set[str] = field(default_factory=set)
    scope: str = ""
    connectivity_scope: str = ""
    gw_alloc_checker: bool = False
    requires_mac: bool = False
    requires_replay: bool = False
    spaces: tuple[str, str] = ("LocalDefault", "GlobalDefault")
    refused: dict[str, str] = field(default_factory=dict)  # subsystem -> why dockerd can't use it
    exchanges: dict[str, Exchange] = field(default_factory=dict)  # the handshake's calls


class Context:
    """What a check runs with: calls to the plugin (each kept as the check's ``calls``
    and taken in by the ledger), the run's ids and subnets, what the handshake found."""

    def __init__(
        self,
        client: Client,
        *,
        dockerd: str,
        strict: bool,
        prefix: str,
        subnets: Iterable[IPNetwork],
        parallel: int,
    ) -> None:
        self.client, self.dockerd, self.strict, self.parallel = client, dockerd, strict, parallel
        self.nonce = secrets.token_hex(8)
        self.space = Mapping(prefix, self.nonce, list(subnets))
        self.info = Info()
        self.ledger = Ledger()
        self.calls: list[Exchange] = []
        self._count = 0
        self._lock = threading.Lock()

    # -- calling ------------------------------------------------------------------------
    def call(self, method: str, body: Any = None, probe: bool = False) -> Exchange:
        """Call the plugin; the exchange is kept, and the ledger notes an accepted call
        (tentatively for a ``probe``, a call on ids nobody created)."""
        exchange = self.client.call(method, body)
        with self._lock:
            self.calls.append(exchange)
        if not refused(exchange):
            self.ledger.note(method, body, exchange.answer, probe)
        return exchange

    def send(self, method: str, raw: bytes, headers: list[tuple[str, str]]) -> Exchange:
        """A session's request as it was (the replay's way in): kept and noted alike."""
        exchange = self.client.send(method, raw, headers)
        with self._lock:
            self.calls.append(exchange)
        return exchange

    def need(self, method: str, body: Any = None) -> dict[str, Any]:
        """Call; fail the check unless dockerd accepts the answer. The answer."""
        exchange = self.call(method, body)
        if exchange.error is not None:
            raise Failed(f"{method}: {exchange.error}")
        why = dockerd_rejects(method, body, exchange.status, exchange.body, self.dockerd)
        if why is not None:
            raise Failed(f"{method}: dockerd refuses the answer: {why}")
        answer = exchange.answer
        return answer if isinstance(answer, dict) else {}

    # -- the run's names ------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh 64-hex id of this run (``--network-prefix`` first)."""
        with self._lock:
            self._count += 1
            return self.space.id(f"kit-{self._count}")

    def subnet(self, prefixlen: int, version: int = 4) -> IPNetwork:
        """A fresh subnet of the run's ``--subnet``."""
        family = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        with self._lock:
            return self.space.block(family((0, prefixlen)))

    # -- the common calls, as dockerd makes them -----------------------------------------------
    def network_options(self, v6: bool = False, internal: bool = False) -> dict[str, Any]:
        options: dict[str, Any] = {
            "com.docker.network.enable_ipv6": v6,
            "com.docker.network.generic": {},
        }
        if self.dockerd == "28":
            options["com.docker.network.enable_ipv4"] = True
        if internal:
            options["com.docker.network.internal"] = True
        return options

    def create_network(
        self, pool: IPNetwork | None = None, nid: str | None = None, **options: Any
    ) -> Net:
        """``CreateNetwork`` of a fresh network (or ``nid``) on ``pool`` (a fresh /24 when
        omitted), its gateway the pool's first address, as dockerd's own IPAM gives it;
        the call must succeed."""
        pool = pool or self.subnet(24)
        net = Net(nid or self.new_id(), pool)
        data = {"AddressSpace": "LocalDefault", "Gateway": net.cidr(1), "Pool": str(pool)}
        body = {
            "NetworkID": net.id,
            "Options": self.network_options(**options),
            "IPv4Data": [data],
            "IPv6Data": [],
        }
        self.need(f"{ND}.CreateNetwork", body)
        return net

    def endpoint_body(self, net: Net, eid: str, mac: str = "") -> dict[str, Any]:
        return {
            "NetworkID": net.id,
            "EndpointID": eid,
            "Interface": {"Address": net.cidr(net.take()), "AddressIPv6": "", "MacAddress": mac},
            "Options": dict(PORTS),
        }

    def join_body(self, net: Net, eid: str) -> dict[str, Any]:
        return {
            "NetworkID": net.id,
            "EndpointID": eid,
            "SandboxKey": f"/var/run/docker/netns/{eid[-12:]}",
            "Options": dict(PORTS),
        }

    def request_pool(self, pool: str = "", v6: bool = False) -> tuple[str, str]:
        """``RequestPool`` in the local space; it must succeed: (PoolID, Pool)."""
        body = {
            "AddressSpace": self.info.spaces[0],
            "Pool": pool,
            "SubPool": "",
            "Options": {},
            "V6": v6,
        }
        answer = self.need(f"{IPAM}.RequestPool", body)
        return str(go_field(answer, "PoolID")), str(go_field(answer, "Pool"))

    def address_body(self, pool_id: str, address: str = "") -> dict[str, Any]:
        options = None
        if self.info.requires_mac:
            options = {"com.docker.network.endpoint.macaddress": random_mac()}
        return {"PoolID": pool_id, "Address": address, "Options": options}


def random_mac() -> str:
    return "02:42:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))


@dataclass
class Net:
    """A network the kit made: its id and pool, and the next address to hand out."""

    id: str
    pool: IPNetwork
    next: int = 2

    def take(self) -> int:
        self.next += 1
        return self.next - 1

    def cidr(self, offset: int) -> str:
        return f"{self.pool.network_address + offset}/{self.pool.prefixlen}"


# -- the run -----------------------------------------------------------------------------


@dataclass
class Result:
    """One check's outcome: ``"pass"``, ``"fail"`` or ``"skip"``, why (for a failure or a
    skip), and the calls it made (a failure's evidence)."""

    name: str
    outcome: str
    reason: str = ""
    calls: list[Exchange] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        """``PASS group/name``, ``FAIL group/name: reason (calls: ...)``, ``SKIP ...: why``."""
        if self.outcome == "pass":
            return f"PASS {self.name}"
        if self.outcome == "skip":
            return f"SKIP {self.name}: {self.reason}"
        shown = [c.brief() for c in self.calls[-3:]]
        calls = f" (calls: {'; '.join(shown)})" if shown else ""
        return f"FAIL {self.name}: {self.reason}{calls}"


@dataclass
class Report:
    """The outcome of a run: one `Result` per check, in order, and what the kit made and
    could not undo (``not_cleaned``: one line each)."""

    target: str
    dockerd: str
    results: list[Result] = field(default_factory=list)
    not_cleaned: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.outcome == "fail"]

    @property
    def ok(self) -> bool:
        """Nothing failed."""
        return not self.failed

    def result(self, name: str) -> Result:
        return next(r for r in self.results if r.name == name)

    def summary(self) -> str:
        counts = {o: sum(r.outcome == o for r in self.results) for o in ("pass", "fail", "skip")}
        text = (
            f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
            f"({self.target}, dockerd {self.dockerd} rules, {self.seconds:.1f} s)"
        )
        if self.not_cleaned:
            text += f"; could not clean {len(self.not_cleaned)}: " + "; ".join(self.not_cleaned)
        return text
