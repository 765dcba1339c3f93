"""Replay what a real dockerd sent (the captures shipped in ``fakedriver/conformance/data``)
through a fresh fake, with the package's replay engine (`fakedriver.conformance.session`,
the one ``fakedriver check`` and `fakedriver.conformance.replay()` use).

Each capture holds, in order, ``marker`` lines for the docker CLI steps and one line per
plugin request (``seq``, ``path``, ``body_raw``, ``body``, ``status``, ``response``), as
a recording plugin saw and answered them. The replay sends every request dockerd saw
succeed, with its exact bytes, to a fresh :class:`FakeNetDriver`, and checks:

* dockerd would accept every answer of the fake (``fakedriver.conformance.rules``) and
  none is an error;
* after every docker step the fake holds what the capture's calls imply (networks,
  endpoints, joins, pools, addresses), derived from the capture alone.

The fake hands out its own PoolIDs, pools and address-space names, so the engine maps
them: what the recording plugin answered to RequestPool / RequestAddress /
GetDefaultAddressSpaces is paired with what the fake answered, and later requests are
rewritten (then re-encoded as Go does) to name the fake's values.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import dockerd_versions
from werkzeug.test import Client

from fakedriver import FakeNetDriver, Persona
from fakedriver.conformance import session as engine
from fakedriver.conformance.client import go_json
from fakedriver.conformance.rules import VERSIONS, dockerd_rejects, go_field
from fakedriver.conformance.session import Step, capture
from fakedriver.conformance.session import load as load_steps
from fakedriver.conformance.session import method_of as _method

Record = dict[str, Any]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The captures: Debian's dockerd 20.10 (CI's daemon) and dockerd 28.3.3, the same 48 steps,
#: as the package ships them (their provenance: data/PROVENANCE.md).
D20, D28 = capture("20.10"), capture("28")
CAPTURES = [D20, D28]
CAPTURE_PARAMS = [pytest.param(p, id=p.name) for p in CAPTURES]


def _capture(path: Path) -> Path:
    return path


# -- what the capture implies ---------------------------------------------------------------


@dataclass
class Expected:
    """The driver state dockerd's calls imply, built from the recorded calls alone, in the
    capture's own names (NetworkIDs and EndpointIDs are dockerd's; PoolIDs the recorder's)."""

    networks: set[str] = field(default_factory=set)
    endpoints: dict[str, str] = field(default_factory=dict)  # endpoint -> network
    joins: set[str] = field(default_factory=set)
    leases: dict[str, set[IPAddress]] = field(default_factory=dict)  # pool -> addresses

    def apply(self, method: str, body: Record, answer: Record) -> None:
        nid, eid, pid = (str(body.get(key, "")) for key in ("NetworkID", "EndpointID", "PoolID"))
        if method == "NetworkDriver.CreateNetwork":
            self.networks.add(nid)
        elif method == "NetworkDriver.DeleteNetwork":
            self.networks.discard(nid)
        elif method == "NetworkDriver.CreateEndpoint":
            self.endpoints[eid] = nid
        elif method == "NetworkDriver.DeleteEndpoint":
            self.endpoints.pop(eid, None)
            self.joins.discard(eid)
        elif method == "NetworkDriver.Join":
            self.joins.add(eid)
        elif method == "NetworkDriver.Leave":
            self.joins.discard(eid)
        elif method == "IpamDriver.RequestPool":
            self.leases.setdefault(go_field(answer, "PoolID"), set())
        elif method == "IpamDriver.ReleasePool":
            self.leases.pop(pid, None)
        elif method == "IpamDriver.RequestAddress":
            address = ipaddress.ip_interface(go_field(answer, "Address")).ip
            self.leases.setdefault(pid, set()).add(address)
        elif method == "IpamDriver.ReleaseAddress":
            self.leases.get(pid, set()).discard(ipaddress.ip_address(body["Address"]))


# -- the replay: the package's engine, and the fake's state after each step -------------------


class Replay:
    """Feeds a capture to a fake through the package's engine (over WSGI, as a client
    would), and checks the fake's state after every step."""

    def __init__(self, fake: FakeNetDriver) -> None:
        self.fake = fake
        self.client = Client(fake)
        self.engine = engine.Replay(self.send)
        self.expected = Expected()
        self.problems: list[str] = []
        self.peak_endpoints = 0

    @property
    def sent(self) -> int:
        return self.engine.sent

    def send(self, method: str, raw: bytes, headers: list[tuple[str, str]]) -> engine.Exchange:
        response = self.client.post(f"/{method}", data=raw, headers=headers)
        served = self.fake.calls[-1]
        exchange = engine.Exchange(method, None, response.status_code, response.get_data())
        if served.violations:
            exchange.error = f"the fake tolerated a violation: {served.violations}"
        return exchange

    def run(self, steps: list[Step]) -> list[str]:
        for step in steps:
            for record in step.calls:
                sent = self.engine.call(step, record)
                if sent is not None or record["status"] == 200:
                    self.expected.apply(_method(record), record["body"] or {}, record["response"])
            self.check_state(step)
        self.problems[:0] = [str(p) for p in self.engine.problems]
        return self.problems

    def check_state(self, step: Step) -> None:
        state, expected = self.fake.state, self.expected
        self.peak_endpoints = max(self.peak_endpoints, len(expected.endpoints))
        # "pools" is every pool the fake holds (state.pools) with its leased addresses.
        actual: dict[str, Any] = {
            "networks": set(state.networks),
            "endpoints": {eid: ep.network_id for eid, ep in state.endpoints.items()},
            "joins": set(state.joins),
            "pools": {
                pid: {ipaddress.ip_interface(a).ip for a in addresses}
                for pid, addresses in state.addresses.items()
            },
        }
        wanted: dict[str, Any] = {
            "networks": expected.networks,
            "endpoints": expected.endpoints,
            "joins": expected.joins,
            "pools": {
                self.engine.pool_ids.get(pid, pid): {self.engine.map_ip(ip)[0] for ip in addresses}
                for pid, addresses in expected.leases.items()
            },
        }
        for key, value in actual.items():
            have, want = _entries(value), _entries(wanted[key])
            if have != want:
                self.problems.append(
                    f"after {step}: fake.state.{key} holds {len(have)}, the capture implies "
                    f"{len(want)}; only in the fake: {sorted(have - want)}; "
                    f"only in the capture: {sorted(want - have)}"
                )


def _entries(value: set[Any] | dict[str, Any]) -> set[str]:
    """A set or dict as comparable, printable strings (``key: value`` for a dict)."""
    if isinstance(value, dict):
        return {
            f"{k}: {sorted(map(str, v)) if isinstance(v, set) else v}" for k, v in value.items()
        }
    return {str(v) for v in value}


def replay(steps: list[Step], fake: FakeNetDriver | None = None) -> Replay:
    runner = Replay(fake if fake is not None else FakeNetDriver())
    runner.run(steps)
    return runner


# -- the capture tests -------------------------------------------------------------------------


@pytest.mark.parametrize("capture", CAPTURE_PARAMS)
def test_capture_is_well_formed(capture: Path) -> None:
    """Steps come in ``seq`` order and re-encoding a body gives dockerd's exact bytes
    (so requests the replay rewrites are sent as dockerd would have sent them)."""
    steps = load_steps(_capture(capture))
    seqs = [record["seq"] for step in steps for record in step.calls]
    assert seqs == sorted(set(seqs)), "requests overlap between steps or repeat a seq"
    for record in (r for step in steps for r in step.calls):
        expected = record["body_raw"].encode()
        assert (go_json(record["body"]) if record["body"] is not None else b"") == expected


#: The default fake, and one whose pools and address-space names differ from the
#: recorder's, so the mapping of pools, PoolIDs, addresses and spaces is really exercised.
PERSONAS = {
    "default": Persona(),
    "other-pools": Persona(
        default_pools=(("10.77.0.0/16", 24), ("fd00:77::/48", 64)),
        local_address_space="FakeLocal",
        global_address_space="FakeGlobal",
        seed=7,
    ),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("capture", CAPTURE_PARAMS)
def test_replay_capture_through_the_fake(capture: Path, persona: str) -> None:
    steps = load_steps(_capture(capture))
    runner = replay(steps, FakeNetDriver(PERSONAS[persona]))
    assert not runner.problems, "\n".join(runner.problems)
    # All of it: every request dockerd saw succeed was sent (a rejected one changed nothing).
    succeeded = [
        r
        for s in steps
        for r in s.calls
        if dockerd_rejects(_method(r), r["body"], r["status"], r["response"]) is None
    ]
    assert runner.sent == len(succeeded) > 0, f"{capture.name}: {runner.sent} replayed"
    if any(_method(r) == "NetworkDriver.CreateEndpoint" for s in steps for r in s.calls):
        assert runner.peak_endpoints, "the capture creates endpoints, the check never saw one"
    # The state matched the capture after every step; and explicitly: every network the
    # capture deleted is gone at the end.
    deleted = {
        r["body"]["NetworkID"]
        for step in steps
        for r in step.calls
        if _method(r) == "NetworkDriver.DeleteNetwork"
    }
    assert not deleted & set(runner.fake.state.networks)


# -- what differs by daemon version (docs/dockerd.md) ------------------------------------------


def _methods(steps: list[Step]) -> list[str]:
    return [_method(r) for s in steps for r in s.calls]


def _bodies(steps: list[Step], method: str) -> list[Record]:
    return [r["body"] or {} for s in steps for r in s.calls if _method(r) == method]


@pytest.mark.parametrize("capture", [pytest.param(c, id=c) for c in dockerd_versions.CAPTURES])
def test_each_capture_shows_what_its_version_does(capture: str) -> None:
    """The same 48 steps under dockerd 20.10.24 and 28.3.3: each capture shows what
    dockerd_versions (docs/dockerd.md's table) says its daemon's version does, where a
    capture can show it; the fake takes both (the replays above)."""
    steps = load_steps(_capture(D20.parent / capture))  # the shipped captures
    does = dockerd_versions.expect(dockerd_versions.CAPTURES[capture])
    assert does.capture == capture  # each capture is its own generation's
    for step in steps:  # GetDefaultAddressSpaces where this version sends it, and only there
        assert _methods([step]) == [
            _method(r) for r in dockerd_versions.retime(step.calls, does.spaces)
        ], step
    hosts = {r["headers"].get("Host") for s in steps for r in s.calls}
    assert hosts == {does.host_header}
    networks = _bodies(steps, "NetworkDriver.CreateNetwork")
    assert {"com.docker.network.enable_ipv4" in b["Options"] for b in networks} == {
        does.enable_ipv4
    }
    programs = _bodies(steps, "NetworkDriver.ProgramExternalConnectivity")
    key = "com.docker.network.driver.private.no_proxy_6to4"
    assert {key in b["Options"] for b in programs} == {does.no_proxy_6to4}
    starts = [s for s in steps if s.number in (14, 29)]  # one network: start, run -d
    assert [s.desc.split()[0] for s in starts] == ["start", "run"]
    for step in starts:
        oper_info = _methods([step]).count("NetworkDriver.EndpointOperInfo")
        assert oper_info == does.oper_info_per_start, step


def test_retime_moves_every_address_space_query() -> None:
    """Each capture re-timed as another version asks GetDefaultAddressSpaces: no other
    call moves, and the queries land where that version sends them (the live scenario of
    26.1.5 is the 20.10 capture so re-timed)."""
    spaces, pool = dockerd_versions.SPACES, "IpamDriver.RequestPool"
    for path, timing, count in (
        (D20, dockerd_versions.PER_CREATE, lambda m, creates: creates),
        (D20, dockerd_versions.PER_POOL, lambda m, creates: creates + m.count(pool)),
        (D28, dockerd_versions.AT_ACTIVATION, lambda m, c: m.count("IpamDriver.GetCapabilities")),
    ):
        steps = load_steps(_capture(path))
        moved = [_method(r) for s in steps for r in dockerd_versions.retime(s.calls, timing)]
        before = _methods(steps)
        assert [m for m in moved if m != spaces] == [m for m in before if m != spaces]
        creates = len([s for s in steps if pool in _methods([s])])
        assert moved.count(spaces) == count(before, creates) > 0, (path.name, timing)


# -- the replay check can fail ------------------------------------------------------------------


def _scenario() -> list[Step]:
    return load_steps(_capture(D20))


def _join_unknown_endpoint(steps: list[Step]) -> list[Step]:
    """The first Join names an endpoint nobody created."""
    steps = copy.deepcopy(steps)
    join = next(r for s in steps for r in s.calls if _method(r) == "NetworkDriver.Join")
    join["body_raw"] = join["body_raw"].replace(join["body"]["EndpointID"], "f" * 64)
    join["body"] = json.loads(join["body_raw"])
    return steps


def bare_address_fake() -> FakeNetDriver:
    """Answers RequestAddress with a bare IP, which dockerd refuses (protocol.md §6)."""
    fake = FakeNetDriver()
    fake.fail("RequestAddress", kind="answer", answer={"Address": "10.200.0.2"})
    return fake


Mutation = Callable[[list[Step]], list[Step]]


@pytest.mark.parametrize(
    ("mutate", "make_fake", "expected"),
    [
        pytest.param(
            _join_unknown_endpoint, FakeNetDriver, "refuse the answer: remote:", id="error"
        ),
        pytest.param(
            _join_unknown_endpoint,
            lambda: FakeNetDriver(strict=False),
            "fake.state.joins",
            id="state-diverges",
        ),
        pytest.param(lambda s: s, bare_address_fake, "invalid CIDR address", id="rules-reject"),
    ],
)
def test_replay_check_can_fail(
    mutate: Mutation, make_fake: Callable[[], FakeNetDriver], expected: str
) -> None:
    runner = replay(mutate(_scenario()), make_fake())
    assert any(expected in problem for problem in runner.problems), runner.problems


# -- dockerd_rules itself ----------------------------------------------------------------------

ND, IPAM = "NetworkDriver.", "IpamDriver."
CAPS, CE, JOIN = ND + "GetCapabilities", ND + "CreateEndpoint", ND + "Join"
INFO = ND + "EndpointOperInfo"
POOL, ADDR, SPACES = IPAM + "RequestPool", IPAM + "RequestAddress", IPAM + "GetDefaultAddressSpaces"
IDS = {"NetworkID": "n" * 64, "EndpointID": "e" * 64}
V4_ONLY = {**IDS, "Interface": {"Address": "10.0.0.2/24", "AddressIPv6": "", "MacAddress": ""}}
V4_V6 = {**IDS, "Interface": {"Address": "10.0.0.2/24", "AddressIPv6": "fd00::2/64"}}
WITH_MAC = {**IDS, "Interface": {"Address": "10.0.0.2/24", "MacAddress": "02:42:0a:00:00:02"}}
NO_ADDRESS = {**IDS, "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ""}}
ROUTE = {"Destination": "10.1.0.0/16", "RouteType": 0, "NextHop": "10.0.0.254"}
MAC = "02:ec:d4:08:41:d1"


def iface(**fields: str) -> Record:
    return {"Interface": fields}


def route(**fields: object) -> Record:
    return {"StaticRoutes": [{**ROUTE, **fields}]}


# fmt: off
ACCEPTED: list[tuple[str, Record | None, int, object]] = [
    # status and body decoding (§1.4)
    (ND + "Leave", IDS, 200, {}),
    (ND + "Leave", IDS, 200, None),
    (ND + "Leave", IDS, 200, b' {"Err":""}\n{"trailing": "ignored"'),
    ("/" + ND + "ProgramExternalConnectivity", IDS, 404, b"404 page not found\n"),
    (ND + "RevokeExternalConnectivity", IDS, 404, {}),
    # error fields: the other subsystem's key is ignored (§1.4.3)
    (ND + "CreateNetwork", IDS, 200, {"Error": "not NetworkDriver's key"}),
    (IPAM + "ReleasePool", {"PoolID": "p"}, 200, {"Err": "not IPAM's key"}),
    # Plugin.Activate (§1.2)
    ("Plugin.Activate", None, 200, {"Implements": ["NetworkDriver", "IpamDriver"]}),
    ("Plugin.Activate", None, 200, {"implements": ["VolumeDriver", "IpamDriver"]}),
    # GetCapabilities (§2.1); keys match case-insensitively, U+017F folds to "s"
    (CAPS, None, 200, {"Scope": "local"}),
    (CAPS, None, 200, {"SCOPE": "global", "ConnectivityScope": ""}),
    (CAPS, None, 200, {"\u017fcope": "local", "foo": 5}),
    (IPAM + "GetCapabilities", None, 200, {"RequiresMACAddress": True}),
    # CreateEndpoint (§3.2)
    (CE, V4_ONLY, 200, {"Interface": None}),
    (CE, V4_ONLY, 200, iface(Address="")),
    (CE, V4_ONLY, 200, iface(MacAddress=MAC)),
    (CE, V4_ONLY, 200, {"interface": {"macaddress": "02-EC-D4-08-41-D1"}}),
    (CE, V4_ONLY, 200, iface(AddressIPv6="fd00::2/64")),
    (CE, NO_ADDRESS, 200, iface(Address="10.0.0.9/24")),
    # Join (§3.3)
    (JOIN, IDS, 200, {"InterfaceName": None}),
    (JOIN, IDS, 200, {"InterfaceName": {"SrcName": "", "DstPrefix": "eth"}, "Gateway": "10.0.0.1"}),
    (JOIN, IDS, 200, {"GatewayIPv6": "fd00::1", "DisableGatewayService": True}),
    (JOIN, IDS, 200, {"StaticRoutes": [ROUTE, {**ROUTE, "RouteType": 1, "NextHop": ""}]}),
    # IPAM (§6)
    (SPACES, None, 200, {"LocalDefaultAddressSpace": "L", "GlobalDefaultAddressSpace": "G"}),
    (POOL, {}, 200, {"PoolID": "p", "Pool": "10.0.0.0/24", "Data": None}),
    (POOL, {}, 200, {"PoolID": "p", "Pool": "fd00::/64", "Data": {"k": "v"}}),
    (ADDR, {}, 200, {"Address": "10.0.0.2/24", "Data": {}}),
    # EndpointOperInfo (§2.7)
    (INFO, IDS, 200, {"Value": {"any": [1, {"json": None}]}}),
    (INFO, IDS, 200, {"Value": None}),
]

REJECTED: list[tuple[str, Record | None, int, object, str]] = [
    # status and body decoding (§1.4)
    (JOIN, IDS, 500, {"Err": "boom"}, "HTTP 500"),
    (ND + "CreateNetwork", IDS, 201, {}, "HTTP 201"),
    (INFO, IDS, 404, b"404 page not found\n", "HTTP 404"),
    (ND + "Leave", IDS, 200, b"", "EOF"),
    (ND + "Leave", IDS, 200, b"ok", "error reading plugin resp"),
    (ND + "Leave", IDS, 200, [], "JSON object"),
    (ND + "Leave", IDS, 200, "ok", "JSON object"),
    # error fields, matched case-insensitively (§1.4.3)
    (ND + "CreateNetwork", IDS, 200, {"Err": "no"}, "remote: no"),
    (ND + "CreateNetwork", IDS, 200, {"eRR": "no"}, "remote: no"),
    (ND + "Leave", IDS, 200, {"Err": 5}, "cannot unmarshal number"),
    (IPAM + "ReleaseAddress", {}, 200, {"Error": "no"}, "remote: no"),
    (POOL, {}, 200, {"error": "no", "PoolID": "p", "Pool": "10.0.0.0/24"}, "remote: no"),
    # Plugin.Activate (§1.2)
    ("Plugin.Activate", None, 200, {}, "does not implement"),
    ("Plugin.Activate", None, 200, {"Implements": ["VolumeDriver"]}, "does not implement"),
    ("Plugin.Activate", None, 200, {"Implements": "NetworkDriver"}, "cannot unmarshal string"),
    # GetCapabilities (§2.1)
    (CAPS, None, 200, {}, "got ''"),
    (CAPS, None, 200, {"Scope": "Local"}, "got 'Local'"),
    (CAPS, None, 200, {"Scope": 5}, "cannot unmarshal number"),
    (CAPS, None, 200, {"Scope": "local", "ConnectivityScope": "swarm"}, "ConnectivityScope"),
    # CreateEndpoint (§3.2): the address family picks the slot
    (CE, V4_ONLY, 200, iface(Address="10.0.0.2/24"), "IPv4 slot is set"),
    (CE, V4_V6, 200, iface(AddressIPv6="fd00::3/64"), "IPv6 slot is set"),
    (CE, V4_V6, 200, iface(Address="fd00::3/64"), "IPv6 slot is set"),
    (CE, V4_ONLY, 200, iface(AddressIPv6="::ffff:10.0.0.3/120"), "IPv4 slot is set"),
    (CE, NO_ADDRESS, 200, iface(Address="10.0.0.2"), "invalid CIDR"),
    (CE, NO_ADDRESS, 200, iface(Address="10.0.0.2/255.255.255.0"), "invalid CIDR"),
    (CE, V4_ONLY, 200, iface(MacAddress="02:ec:d4:08:41"), "invalid MAC"),
    (CE, WITH_MAC, 200, iface(MacAddress=MAC), "MAC address"),
    (CE, V4_ONLY, 200, {"Interface": "eth0"}, "cannot unmarshal string"),
    # Join (§3.3)
    (JOIN, IDS, 200, {"Gateway": "10.0.0.1/24"}, "unable to parse Gateway"),
    (JOIN, IDS, 200, {"GatewayIPv6": "fe80::1%eth0"}, "unable to parse GatewayIPv6"),
    (JOIN, IDS, 200, route(Destination=""), "empty Destination"),
    (JOIN, IDS, 200, {"StaticRoutes": [None]}, "empty Destination"),
    (JOIN, IDS, 200, route(Destination="10.1.0.0"), "invalid CIDR"),
    (JOIN, IDS, 200, route(NextHop="10.0.0.254/24"), "nexthop"),
    (JOIN, IDS, 200, route(RouteType="0"), "cannot unmarshal string"),
    (JOIN, IDS, 200, route(RouteType=True), "cannot unmarshal boolean"),
    (JOIN, IDS, 200, {"InterfaceName": "eth0"}, "cannot unmarshal string"),
    # IPAM (§6)
    (POOL, {}, 200, {"PoolID": "", "Pool": "10.0.0.0/24"}, "empty PoolID"),
    (POOL, {}, 200, {"Err": "x"}, "invalid CIDR address: "),  # as dockerd 20.10 said it
    (POOL, {}, 200, {"PoolID": "p", "Pool": ""}, "invalid CIDR"),
    (POOL, {}, 200, {"PoolID": "p", "Pool": "10.0.0.0"}, "invalid CIDR"),
    (POOL, {}, 200, {"PoolID": "p", "Pool": "10.0.0.1/24"}, "host bits"),
    (POOL, {}, 200, {"PoolID": "p", "Pool": "10.0.0.0/24", "Data": {"k": 1}}, "unmarshal number"),
    (ADDR, {}, 200, {"Address": ""}, "no address returned"),
    (ADDR, {}, 200, {"Address": "10.0.0.2"}, "invalid CIDR"),
    (SPACES, None, 200, {"LocalDefaultAddressSpace": 1}, "cannot unmarshal number"),
    # EndpointOperInfo (§2.7)
    (INFO, IDS, 200, {"Value": []}, "cannot unmarshal array"),
    (INFO, IDS, 200, {"Value": "x"}, "cannot unmarshal string"),
]
# fmt: on


@pytest.mark.parametrize(("method", "request_", "status", "answer"), ACCEPTED)
def test_dockerd_accepts(method: str, request_: Record | None, status: int, answer: object) -> None:
    for rules in VERSIONS:
        assert dockerd_rejects(method, request_, status, answer, rules) is None


@pytest.mark.parametrize(("method", "request_", "status", "answer", "why"), REJECTED)
def test_dockerd_rejects(
    method: str, request_: Record | None, status: int, answer: object, why: str
) -> None:
    reason = dockerd_rejects(method, request_, status, answer, "20.10")  # CI's daemon
    assert reason is not None and why in reason, reason
    assert "§" in reason, f"the reason should cite protocol.md: {reason}"


# -- the fake's answers beyond the capture: persona-made Join routes ---------------------------

# fmt: off
ROUTES_DOCKERD_TAKES = [
    ROUTE,
    {"Destination": "0.0.0.0/0", "RouteType": 1, "NextHop": ""},
    {"Destination": "fd00:1::/64", "RouteType": 0, "NextHop": "fe80::1"},
]
ROUTES_DOCKERD_REFUSES = [
    pytest.param({**ROUTE, "Destination": ""}, id="empty-destination"),
    pytest.param({**ROUTE, "Destination": "10.1.0.0"}, id="bare-destination"),
    pytest.param({**ROUTE, "NextHop": "10.0.0.254/24"}, id="cidr-nexthop"),
    pytest.param({**ROUTE, "Destination": "10.1.0.0/255.255.0.0"}, id="netmask-destination"),
    pytest.param({**ROUTE, "NextHop": "fe80::1%eth0"}, id="zoned-nexthop"),
    pytest.param({**ROUTE, "RouteType": True}, id="bool-routetype"),
    pytest.param({**ROUTE, "NextHop": 5}, id="number-nexthop"),
]
# fmt: on


def _join_through_wire(fake: FakeNetDriver) -> tuple[int, bytes]:
    client, nid, eid = Client(fake), "n" * 64, "e" * 64
    pool = {"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24", "Gateway": "10.0.0.1/24"}
    calls = [
        ("CreateNetwork", {"NetworkID": nid, "Options": {}, "IPv4Data": [pool], "IPv6Data": []}),
        ("CreateEndpoint", {**V4_ONLY, "NetworkID": nid, "EndpointID": eid, "Options": {}}),
        ("Join", {"NetworkID": nid, "EndpointID": eid, "SandboxKey": "/k", "Options": {}}),
    ]
    for name, body in calls:
        response = client.post(f"/NetworkDriver.{name}", data=go_json(body))
    return response.status_code, response.get_data()


@pytest.mark.parametrize("static_route", ROUTES_DOCKERD_TAKES)
def test_persona_routes_dockerd_takes(static_route: Record) -> None:
    status, body = _join_through_wire(FakeNetDriver(static_routes=(static_route,)))
    assert dockerd_rejects(JOIN, None, status, body) is None, body


@pytest.mark.parametrize("static_route", ROUTES_DOCKERD_REFUSES)
def test_persona_refuses_routes_dockerd_refuses(static_route: Record) -> None:
    """``Persona`` checks static routes "as Docker parses it from Join" (_persona.py): a
    route dockerd refuses (as dockerd_rules has it) must be refused up front, never
    answered from Join."""
    answer = {"InterfaceName": {"SrcName": "", "DstPrefix": "eth"}, "StaticRoutes": [static_route]}
    assert dockerd_rejects(JOIN, None, 200, go_json(answer)) is not None, "not a refused route"
    with pytest.raises((ValueError, TypeError)):
        FakeNetDriver(static_routes=(static_route,))
