"""Sessions: what a dockerd sent a plugin, as JSON lines, and their replay against any
plugin (`Replay`), the fake included (`replay()`).

A session is a capture of this project's (``data/``, see its ``PROVENANCE.md``) or a
recording of ``fakedriver record`` (docs: "Recording"): one JSON object a line, either
an exchange (``seq``, ``path``, ``headers``, ``body_raw``, ``body``, ``status``,
``response``, ...) or a ``marker`` (``begin``/``end`` of a docker step, ``note``,
``session``). `load()` reads both into `Step` s.

The replay sends every request dockerd saw succeed to the plugin, in order, with its
exact bytes unless a value in it must be mapped, and checks the plugin's answers under
dockerd's rules (`rules`). A plugin hands out its own PoolIDs, pools, addresses and
address-space names, so what the session's plugin answered to RequestPool,
RequestAddress and GetDefaultAddressSpaces is paired with what this plugin answers, and
later requests are rewritten (then encoded again as Go does) to name this plugin's
values. The kit maps more (`Mapping`): the session's NetworkIDs and EndpointIDs to ids of
its own, and the session's subnets into its own ``--subnet``.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import Exchange, go_json
from .rules import DEFAULT_DOCKERD, dockerd_rejects, go_field, rollback

if TYPE_CHECKING:
    from ..fake import FakeNetDriver

Record = dict[str, Any]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Sends one request: method, raw body, headers in order -> what came back.
Send = Callable[[str, bytes, list[tuple[str, str]]], Exchange]

#: The captures shipped with the package: dockerd version -> file name in ``data/``.
CAPTURES = {"20.10": "scenario-rec.jsonl", "28": "scenario-rec-d28.jsonl"}


def capture(dockerd: str) -> Path:
    """The shipped capture of dockerd ``dockerd`` (``"20.10"`` or ``"28"``): the same 48
    docker steps under each (``data/PROVENANCE.md``)."""
    found = resources.files(__package__).joinpath("data", CAPTURES[dockerd])
    return Path(str(found))


class SessionError(Exception):
    """A session file that cannot be read; the message says where and why."""


# -- reading a session ------------------------------------------------------------------


@dataclass
class Step:
    """One docker step of a session (or, without markers, the whole session): its
    requests in ``seq`` order and its ``end`` marker."""

    number: int
    desc: str
    calls: list[Record] = field(default_factory=list)
    end: Record = field(default_factory=dict)

    def __str__(self) -> str:
        return f"step {self.number} ({self.desc})" if self.number else self.desc


def load(path: str | Path) -> list[Step]:
    """The steps of the session in ``path``.

    :raises SessionError: a line that is not a JSON object, or an exchange without its
        ``path``, ``status`` or ``seq``.
    """
    steps = [Step(0, "before the first step")]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read session {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise SessionError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise SessionError(f"{path}:{number}: not a JSON object")
        marker = record.get("marker")
        if marker == "begin":
            steps.append(Step(int(record.get("step", len(steps))), str(record.get("desc", ""))))
        elif marker == "end":
            steps[-1].end = record
        elif marker is None:
            missing = [key for key in ("seq", "path", "status") if key not in record]
            if missing:
                raise SessionError(f"{path}:{number}: an exchange without {', '.join(missing)}")
            steps[-1].calls.append(record)
    for step in steps:
        step.calls.sort(key=lambda r: r["seq"])
    return [s for s in steps if s.number or s.calls]


def method_of(record: Record) -> str:
    return str(record["path"]).lstrip("/")


def request_bytes(record: Record) -> bytes:
    """The request's body as it was sent."""
    raw = record.get("body_raw")
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    body = record.get("body")
    return b"" if body is None else go_json(body)


def failed_in_session(record: Record, step: Step) -> bool:
    """Whether the session itself shows the call failing: a non-200, an error key in the
    answer, or a docker step that failed or made dockerd log something."""
    response = record.get("response")
    error_key = isinstance(response, dict) and any(
        k.lower() in ("err", "error") and v for k, v in response.items()
    )
    return (
        record["status"] != 200
        or error_key
        or bool(step.end.get("rc"))
        or bool(step.end.get("daemon_log"))
    )


# -- what the kit maps beyond the plugin's answers ---------------------------------------


class Mapping:
    """The kit's own values for the session's: each 64-hex NetworkID or EndpointID gets one
    of ``prefix`` + a hash of it and ``nonce`` (so two runs never share an id), and each
    subnet of the session a block of the same size inside ``subnets`` (one IPv4 and one
    IPv6 network), in the order met.

    :raises ValueError: a subnet of ``subnets`` too small for the session's.
    """

    def __init__(self, prefix: str, nonce: str, subnets: Collection[IPNetwork]) -> None:
        self.prefix, self.nonce = prefix, nonce
        self.bases = {net.version: net for net in subnets}
        self.ids: dict[str, str] = {}
        self.nets: dict[IPNetwork, IPNetwork] = {}
        self._next: dict[int, int] = {v: int(n.network_address) for v, n in self.bases.items()}

    def id(self, original: str) -> str:
        """The kit's id for the session's ``original``."""
        if original not in self.ids:
            digest = hashlib.sha256(f"{self.nonce}:{original}".encode()).hexdigest()
            self.ids[original] = (self.prefix + digest)[:64]
        return self.ids[original]

    def fork(self, label: str) -> Mapping:
        """A mapping of ids of its own (for another session), whose subnets come from the
        same bases, after this one's."""
        other = Mapping(self.prefix, f"{self.nonce}:{label}", ())
        other.bases, other._next = self.bases, self._next  # one allocation of blocks
        return other

    def learn_subnets(self, steps: list[Step]) -> None:
        """Give every subnet the session names a block of the kit's, largest first."""
        found: set[IPNetwork] = set()
        for record in (r for s in steps for r in s.calls):
            found |= set(_subnets_in(method_of(record), record.get("body"), record.get("response")))
        tops = [n for n in found if not any(_inside(n, o) for o in found)]
        for net in sorted(tops, key=lambda n: (n.version, n.prefixlen, int(n.network_address))):
            self.nets[net] = self.block(net)

    def block(self, net: IPNetwork) -> IPNetwork:
        """A fresh block of ``net``'s size (only its prefix length counts) in the base of
        its family."""
        base = self.bases.get(net.version)
        if base is None:
            raise ValueError(f"the session uses IPv{net.version} subnets: give --subnet one too")
        size = net.num_addresses
        start = -(-self._next[net.version] // size) * size  # aligned
        block = ipaddress.ip_network((start, net.prefixlen))
        if not block.subnet_of(base):  # type: ignore[arg-type]
            raise ValueError(
                f"--subnet {base} is too small for the session's subnets (no room for a "
                f"/{net.prefixlen} after {len(self.nets)} others): give a larger one"
            )
        self._next[net.version] = start + size
        return block


def _inside(net: IPNetwork, other: IPNetwork) -> bool:
    """Whether ``net`` is a subnet of ``other`` (and not it)."""
    return net != other and net.version == other.version and net.subnet_of(other)  # type: ignore[arg-type]


def _subnets_in(method: str, body: Any, answer: Any) -> Iterator[IPNetwork]:
    def net(text: Any) -> IPNetwork | None:
        try:
            return ipaddress.ip_network(text, strict=False) if isinstance(text, str) else None
        except ValueError:
            return None

    values: list[Any] = []
    if isinstance(body, dict):
        if method in ("NetworkDriver.CreateNetwork", "NetworkDriver.AllocateNetwork"):
            for data in (body.get("IPv4Data") or []) + (body.get("IPv6Data") or []):
                if isinstance(data, dict):
                    values.append(data.get("Pool"))
        if method == "IpamDriver.RequestPool":
            values += [body.get("Pool"), body.get("SubPool")]
    if method == "IpamDriver.RequestPool" and isinstance(answer, dict):
        values.append(go_field(answer, "Pool"))
    for value in values:
        found = net(value)
        if found is not None and found.prefixlen > 0:
            yield found


# -- the replay ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Where a replay went wrong: the session's step and exchange, and what happened."""

    step: Step
    record: Record
    message: str
    exchange: Exchange | None = None

    def __str__(self) -> str:
        return f"{self.step}, seq {self.record['seq']} {method_of(self.record)}: {self.message}"


class Replay:
    """Feeds a session to a plugin through ``send``, mapping the session's plugin's
    answers to this plugin's.

    :param dockerd: the rule set the answers are judged by.
    :param implements: the subsystems the plugin implements (``NetworkDriver``,
        ``IpamDriver``): calls of the others are not sent. ``None``: all.
    :param mapping: the kit's ids and subnets for the session's (``None``: as recorded).
    :param exact: an IPAM request for a given pool or address must be answered with it.
    """

    def __init__(
        self,
        send: Send,
        *,
        dockerd: str = DEFAULT_DOCKERD,
        implements: Collection[str] | None = None,
        mapping: Mapping | None = None,
        exact: bool = True,
    ) -> None:
        self.send, self.dockerd, self.mapping, self.exact = send, dockerd, mapping, exact
        self.implements = set(implements) if implements is not None else None
        self.spaces: dict[str, str] = {}  # the session's address-space name -> this plugin's
        self.pool_ids: dict[str, str] = {}  # the session's PoolID -> this plugin's
        # the session's pool -> this plugin's (the kit's blocks first, then the answers)
        self.pools: dict[IPNetwork, IPNetwork] = dict(mapping.nets) if mapping else {}
        self.addresses: dict[IPAddress, IPAddress] = {}  # the session's answer -> this plugin's
        self.problems: list[Problem] = []
        self.exchanges: list[Exchange] = []
        self.sent = 0

    def run(
        self, steps: list[Step], after: Callable[[Step], None] | None = None, stop: bool = False
    ) -> list[Problem]:
        """Replay ``steps``, calling ``after`` after each; with ``stop``, stop at the first
        problem. The problems found."""
        for step in steps:
            for record in step.calls:
                self.call(step, record)
                if stop and self.problems:
                    return self.problems
            if after is not None:
                after(step)
        return self.problems

    def wanted(self, record: Record) -> bool:
        """Whether the call is one for this plugin (of a subsystem it implements)."""
        subsystem = method_of(record).partition(".")[0]
        return self.implements is None or subsystem == "Plugin" or subsystem in self.implements

    def call(self, step: Step, record: Record) -> Exchange | None:
        """Send one of the session's requests, mapped; judge the answer. ``None`` when
        the call is not sent (dockerd saw it fail, or it is not for this plugin)."""
        if not self.wanted(record):
            return None
        method, recorded = method_of(record), record.get("response")
        refused = dockerd_rejects(method, record.get("body"), record["status"], recorded)
        served_anyway = refused is not None and bool(rollback(method, refused, self.dockerd))
        if refused is not None and not served_anyway:
            return None  # dockerd saw this call fail: it changed nothing, skip it
        request = self.rewrite(method, record.get("body"))
        raw = request_bytes(record) if request == record.get("body") else go_json(request)
        headers = [
            (str(k), str(v))
            for k, v in (record.get("header_list") or list((record.get("headers") or {}).items()))
            if str(k).lower() not in ("content-length", "host")
        ]
        exchange = self.send(method, raw, headers)
        exchange.request = request
        self.exchanges.append(exchange)
        self.sent += 1
        if served_anyway:  # dockerd refused the session's answer after it was served
            return exchange
        why = self.judge(method, request, exchange)
        if why is not None:
            self.problems.append(Problem(step, record, why, exchange))
        elif isinstance(recorded, dict):
            self.learn(method, recorded, exchange.answer)
        return exchange

    def judge(self, method: str, request: Any, exchange: Exchange) -> str | None:
        """Why the plugin's answer to a call dockerd needs is wrong, or ``None``."""
        if exchange.error is not None:
            return exchange.error
        why = dockerd_rejects(method, request, exchange.status, exchange.body, self.dockerd)
        if why is not None:
            return f"dockerd would refuse the answer: {why}: {exchange.brief()}"
        answer = exchange.answer
        if not self.exact or not isinstance(request, dict):
            return None
        if method == "IpamDriver.RequestPool" and request.get("Pool"):
            asked = ipaddress.ip_network(request["Pool"], strict=False)
            got = go_field(answer, "Pool")
            if ipaddress.ip_network(got, strict=False) != asked:
                return f"asked for pool {asked}, answered {got}: {exchange.brief()}"
        if method == "IpamDriver.RequestAddress" and request.get("Address"):
            got = ipaddress.ip_interface(go_field(answer, "Address")).ip
            if got != ipaddress.ip_address(request["Address"]):
                return f"asked for address {request['Address']}, answered {got}"
        return None

    # -- mapping the session's plugin's names to this plugin's --------------------------------
    def learn(self, method: str, recorded: Record, answer: Any) -> None:
        if not isinstance(answer, dict):
            return
        if method == "IpamDriver.GetDefaultAddressSpaces":
            for key in ("LocalDefaultAddressSpace", "GlobalDefaultAddressSpace"):
                if go_field(recorded, key):
                    self.spaces[go_field(recorded, key)] = go_field(answer, key)
        elif method == "IpamDriver.RequestPool":
            self.pool_ids[go_field(recorded, "PoolID")] = go_field(answer, "PoolID")
            old = ipaddress.ip_network(go_field(recorded, "Pool"), strict=False)
            self.addresses = {a: b for a, b in self.addresses.items() if a not in old}
            self.pools[old] = ipaddress.ip_network(go_field(answer, "Pool"), strict=False)
        elif method == "IpamDriver.RequestAddress":
            old_ip = ipaddress.ip_interface(go_field(recorded, "Address")).ip
            self.addresses[old_ip] = ipaddress.ip_interface(go_field(answer, "Address")).ip

    def map_ip(self, ip: IPAddress) -> tuple[IPAddress, IPNetwork | None]:
        """An address inside one of the session's pools: this plugin's answer for it,
        else the same offset in this plugin's pool; with that pool (``None`` when it is
        in none). The innermost pool wins (an ``--ip-range`` inside a subnet)."""
        inside = [(o, n) for o, n in self.pools.items() if ip.version == o.version and ip in o]
        if not inside:
            return ip, None
        old, new = max(inside, key=lambda pair: pair[0].prefixlen)
        offset = int(ip) - int(old.network_address)
        return self.addresses.get(ip, new.network_address + offset), new

    def map_text(self, text: str, cidr: bool) -> str:
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            return text
        ip, pool = self.map_ip(iface.ip)
        if pool is None:
            return text
        return f"{ip}/{iface.network.prefixlen}" if cidr else str(ip)

    def map_pool(self, text: str) -> str:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return text
        if net in self.pools:
            return str(self.pools[net])
        ip, pool = self.map_ip(net.network_address)
        return text if pool is None else f"{ip}/{net.prefixlen}"

    def rewrite(self, method: str, body: Any) -> Any:
        """``body`` with the session's ids, pool ids, pools, addresses and spaces
        replaced by this plugin's."""
        if not isinstance(body, dict):
            return body
        out = copy.deepcopy(body)
        if self.mapping is not None:
            for key in ("NetworkID", "EndpointID"):
                if _is_id(out.get(key)):
                    out[key] = self.mapping.id(out[key])
        subsystem = method.partition(".")[0]
        if subsystem == "IpamDriver" and isinstance(out.get("PoolID"), str):
            out["PoolID"] = self.pool_ids.get(out["PoolID"], out["PoolID"])
        if method == "IpamDriver.RequestPool":
            if isinstance(out.get("AddressSpace"), str):
                out["AddressSpace"] = self.spaces.get(out["AddressSpace"], out["AddressSpace"])
            for key in ("Pool", "SubPool"):
                if isinstance(out.get(key), str) and out[key]:
                    out[key] = self.map_pool(out[key])
        address_call = method in ("IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress")
        if address_call and isinstance(out.get("Address"), str):
            out["Address"] = self.map_text(out["Address"], cidr=False)
        if method == "NetworkDriver.CreateEndpoint" and isinstance(out.get("Interface"), dict):
            for key in ("Address", "AddressIPv6"):
                if isinstance(out["Interface"].get(key), str):
                    out["Interface"][key] = self.map_text(out["Interface"][key], cidr=True)
        if method in ("NetworkDriver.CreateNetwork", "NetworkDriver.AllocateNetwork"):
            for data in (out.get("IPv4Data") or []) + (out.get("IPv6Data") or []):
                if isinstance(data, dict):
                    self.rewrite_ipam_data(data)
        return out

    def rewrite_ipam_data(self, data: Record) -> None:
        if isinstance(data.get("AddressSpace"), str):
            data["AddressSpace"] = self.spaces.get(data["AddressSpace"], data["AddressSpace"])
        if isinstance(data.get("Pool"), str):
            data["Pool"] = self.map_pool(data["Pool"])
        if isinstance(data.get("Gateway"), str):
            data["Gateway"] = self.map_text(data["Gateway"], cidr=True)
        aux = data.get("AuxAddresses") or {}
        for name, value in aux.items():
            aux[name] = self.map_text(value, cidr=True) if isinstance(value, str) else value


def _is_id(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


# -- against the fake ---------------------------------------------------------------------


class ReplayError(AssertionError):
    """A replay met a refusal: the message names the session's step and the call."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def fake_sender(fake: FakeNetDriver, timeout: float = 5.0) -> Send:
    """Sends to ``fake`` in-process, with its fault rules, as its transports do."""

    def send(method: str, raw: bytes, headers: list[tuple[str, str]]) -> Exchange:
        reply = fake.respond("/" + method, raw, timeout=timeout)
        exchange = Exchange(method, None, reply.status, reply.body)
        if reply.drop is not None or reply.timed_out:
            exchange.error = f"no answer: {reply.why}"
        return exchange

    return send


def replay(fake: FakeNetDriver, session: str | Path, *, dockerd: str = DEFAULT_DOCKERD) -> Replay:
    """Replay the session in the file ``session`` against ``fake``, in-process, and fail
    on the first refusal with [`ReplayError`][fakedriver.conformance.ReplayError], which
    names the session's step and call::

        from fakedriver import FakeNetDriver
        from fakedriver.conformance import replay

        replay(FakeNetDriver(), "my-daemon.jsonl")

    Every request dockerd saw succeed is sent with its bytes (ids as recorded; the
    session's pools, PoolIDs and addresses mapped to the fake's answers) and the fake's
    answer must be one dockerd accepts (``dockerd``: its rule set). Returns the replay
    (its ``exchanges``, ``pools``, ...)."""
    runner = Replay(fake_sender(fake), dockerd=dockerd)
    problems = runner.run(load(session), stop=True)
    if problems:
        raise ReplayError(problems[0])
    return runner
