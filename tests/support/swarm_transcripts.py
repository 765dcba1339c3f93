"""Replay what real dockerd 20.10 daemons under swarm sent a recording plugin
(``tests/data/swarm-*.txt``, see its ``PROVENANCE.md``) through a
:class:`fakedriver.Cluster`, node by node.

A transcript line is ``[n1|n2] SEQ TIME METHOD BODY -> STATUS ANSWER [fx=...]``; a line
without a node prefix is the one node's (``node-1``). Each node's ``SEQ`` starts again at
1 when its plugin restarted (a fresh plugin: a new *phase*, replayed in a fresh cluster).
The two-node transcript cut the bodies of CreateEndpoint, Join and
ProgramExternalConnectivity (they end in ``,}``); the missing keys are supplied.

The recorder's pools, PoolIDs, addresses and address-space names are mapped to the
fake's (whose pools differ on purpose) from what each answered, as
``test_dockerd_replay`` does: every address the cluster sees is one the fake handed out.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from fakedriver import Cluster, Persona

DATA = Path(__file__).resolve().parents[1] / "data"
MANAGED = DATA / "swarm-managed-plugin-transcript.txt"
TWO_NODES = DATA / "swarm-2node-transcript.txt"
LINE = re.compile(r"^(?:n(?P<node>\d+)\s+)?\s*(?P<seq>\d+) \d\d:\d\d:\d\d\.\d+ (?P<method>\S+)\s+")
#: Pools unlike the recorder's, and its own space names, so the mapping is exercised.
PERSONA = Persona(
    default_pools=(("10.77.0.0/16", 24),),
    local_address_space="FakeLocal",
    global_address_space="FakeGlobal",
)


@dataclass
class Record:
    node: str
    seq: int
    method: str
    body: dict[str, Any] | None
    answer: dict[str, Any]


@dataclass
class Phase:
    """The calls between two plugin restarts, and the capabilities the plugin announced."""

    records: list[Record] = field(default_factory=list)

    @property
    def capabilities(self) -> dict[str, Any]:
        first = next(r for r in self.records if r.method == "NetworkDriver.GetCapabilities")
        return first.answer

    @property
    def nodes(self) -> int:
        return max(int(r.node.removeprefix("node-")) for r in self.records)


def _complete(method: str, body: dict[str, Any]) -> dict[str, Any]:
    """A cut body with the keys dockerd sends (their values do not matter here)."""
    if method in ("NetworkDriver.CreateEndpoint", "NetworkDriver.Join"):
        body.setdefault("Options", {})
    if method == "NetworkDriver.Join":
        body.setdefault("SandboxKey", f"/var/run/docker/netns/{body['EndpointID']}")
    if method == "NetworkDriver.ProgramExternalConnectivity":
        body.setdefault("Options", {})
    return body


def parse(path: Path) -> list[Phase]:
    phases = [Phase()]
    for line in path.read_text().splitlines():
        match = LINE.match(line)
        if match is None:
            continue  # a ---- marker of a docker step
        node, seq, method = f"node-{match['node'] or 1}", int(match["seq"]), match["method"]
        rest = line[match.end() :]
        head, _, tail = re.match(r"(.*) -> (\d{3}) (.*)$", rest).groups()  # type: ignore[union-attr]
        answer, _ = json.JSONDecoder().raw_decode(tail)
        cut = head.endswith(",}")
        body = json.loads(head[:-2] + "}" if cut else head)
        if body is not None and cut:
            body = _complete(method, body)
        if seq == 1 and any(r.node == node for r in phases[-1].records):
            phases.append(Phase())
        phases[-1].records.append(Record(node, seq, method, body, answer))
    for phase in phases:  # each node's calls in the order its plugin served them (SEQ)
        slots: dict[str, list[int]] = {}
        for position, record in enumerate(phase.records):
            slots.setdefault(record.node, []).append(position)
        for positions in slots.values():
            ordered = sorted((phase.records[i] for i in positions), key=lambda r: r.seq)
            for position, record in zip(positions, ordered, strict=True):
                phase.records[position] = record
    return [p for p in phases if p.records]


IP = ipaddress.IPv4Address | ipaddress.IPv6Address
NET = ipaddress.IPv4Network | ipaddress.IPv6Network


class Replay:
    """Sends a phase's calls to a cluster's nodes at their URLs, in the transcript's order."""

    def __init__(self, cluster: Cluster, session: requests.Session) -> None:
        self.cluster, self.session = cluster, session
        self.spaces: dict[str, str] = {}
        self.pool_ids: dict[tuple[str, str], str] = {}  # (node, recorder's) -> fake's
        self.pools: dict[NET, NET] = {}
        self.addresses: dict[IP, IP] = {}
        self.refused: list[str] = []

    def run(self, phase: Phase) -> None:
        for record in phase.records:
            self.send(record)

    def send(self, record: Record) -> None:
        body = self.rewrite(record.node, record.method, record.body)
        url = f"{self.cluster.urls[record.node]}/{record.method}"
        data = b"" if body is None else json.dumps(body).encode()
        answer = self.session.post(url, data=data, timeout=10).json()
        if answer.get("Err") or answer.get("Error"):
            self.refused.append(f"{record.node} #{record.seq} {record.method}: {answer}")
            return
        if record.method == "IpamDriver.GetDefaultAddressSpaces":
            for key in ("LocalDefaultAddressSpace", "GlobalDefaultAddressSpace"):
                self.spaces[record.answer[key]] = answer[key]
        elif record.method == "IpamDriver.RequestPool":
            self.pool_ids[record.node, record.answer["PoolID"]] = answer["PoolID"]
            self.pools[ipaddress.ip_network(record.answer["Pool"])] = ipaddress.ip_network(
                answer["Pool"]
            )
        elif record.method == "IpamDriver.RequestAddress":
            old = ipaddress.ip_interface(record.answer["Address"]).ip
            self.addresses[old] = ipaddress.ip_interface(answer["Address"]).ip

    def map_ip(self, text: str, cidr: bool) -> str:
        iface = ipaddress.ip_interface(text)
        for old, new in self.pools.items():
            if iface.ip in old:
                offset = int(iface.ip) - int(old.network_address)
                ip = self.addresses.get(iface.ip, new.network_address + offset)
                return f"{ip}/{new.prefixlen}" if cidr else str(ip)
        return text

    def rewrite(self, node: str, method: str, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        out = copy.deepcopy(body)
        if isinstance(out.get("PoolID"), str):
            out["PoolID"] = self.pool_ids.get((node, out["PoolID"]), out["PoolID"])
        if method == "IpamDriver.RequestPool":
            out["AddressSpace"] = self.spaces.get(out["AddressSpace"], out["AddressSpace"])
            if out["Pool"]:
                out["Pool"] = str(self.pools.get(ipaddress.ip_network(out["Pool"]), out["Pool"]))
        if method in ("IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress") and out["Address"]:
            out["Address"] = self.map_ip(out["Address"], cidr=False)
        if method == "NetworkDriver.CreateEndpoint" and out["Interface"]["Address"]:
            out["Interface"]["Address"] = self.map_ip(out["Interface"]["Address"], cidr=True)
        for data in (out.get("IPv4Data") or []) + (out.get("IPv6Data") or []):
            data["AddressSpace"] = self.spaces.get(data["AddressSpace"], data["AddressSpace"])
            data["Pool"] = str(self.pools.get(ipaddress.ip_network(data["Pool"]), data["Pool"]))
            if data.get("Gateway"):
                data["Gateway"] = self.map_ip(data["Gateway"], cidr=True)
        return out


def cluster_for(phase: Phase, nodes: int | None = None) -> Cluster:
    """A cluster whose persona announces what the phase's plugin announced."""
    caps = phase.capabilities
    return Cluster(
        nodes or phase.nodes,
        PERSONA,
        scope=caps["Scope"],
        connectivity_scope=caps.get("ConnectivityScope", ""),
    )
