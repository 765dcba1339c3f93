"""Property-based fuzzing of ``FakeNetDriver``.

Every request goes through :func:`serve`, which checks the properties that hold for any
input, on any route, in strict and lenient mode alike:

* the status is never 500 (and is one of 200, 400, 404);
* the answer is a JSON object; a 200 without an error key is a success, and every refusal
  is ``{<key>: <non-empty text>}`` with the subsystem's key (``Error`` for ``IpamDriver``,
  ``Err`` otherwise) and nothing else;
* a refused call leaves the state snapshot byte-for-byte unchanged;
* the journal grows by exactly one entry, which agrees with the answer.

The fuzz tests feed it arbitrary bytes, arbitrary JSON and, mostly, near-valid bodies:
well-shaped requests whose fields are randomly replaced, deleted or added, sent to a fake
that already holds networks, endpoints, a join, pools and leases, with ids drawn from small
sets so that lookups hit both known and unknown ids. On top of :func:`serve`, :func:`run`
checks that unknown methods are 404, that an unmutated request is never refused as
malformed, that every success is an answer dockerd would accept, that read-only calls
change nothing, that in strict mode every success has its effect (and no address is handed
out twice), and that the networks' address and MAC indexes stay whole.

``test_malformed_field_is_refused_as_bad_request`` is an oracle: one field of a good
request replaced by a value of the wrong type or shape must be refused with 400.
``TestLifecycle`` drives valid docker call sequences against a reference model.

Bugs in the fake found by this file are pinned by the ``test_bug_*`` tests at the end;
the regressions section above them keeps the ones that were fixed meanwhile.
"""
from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)
from werkzeug.test import Client

from fakedriver import METHODS, FakeNetDriver
from fakedriver.core.state import indexes

# -- settings -----------------------------------------------------------------------------
# Deterministic (derandomize, no example database) so CI sees the same examples every run.
# No deadline: the fake answers in microseconds, but a loaded 2-core CI runner can stall a
# single example for longer than hypothesis' 200 ms default; the file's total runtime is
# what we budget instead.
FUZZ = settings(max_examples=500, derandomize=True, database=None, deadline=None)
LIGHT = settings(FUZZ, max_examples=200)

# -- the seeded state -----------------------------------------------------------------------
NET, NET2, NET_UNKNOWN = "a" * 64, "b" * 64, "c" * 64
EP1, EP2, EP_NEW = "1" * 64, "2" * 64, "3" * 64
SANDBOX1, SANDBOX2 = "/var/run/docker/netns/5a1d0b0x0001", "/var/run/docker/netns/5a1d0b0x0002"
MAC1 = "02:42:0a:00:00:02"
POOL4 = "LocalDefault/10.0.0.0/24"
POOL6 = "LocalDefault/fd00:1::/64"
POOL_SUB = "LocalDefault/10.2.0.0/16/10.2.1.0/24"
POOL_FULL = "LocalDefault/10.3.0.0/30"
POOL_EMPTY = "LocalDefault/10.6.0.0/24"  # no address leased: ReleasePool may take it
POOL_UNKNOWN = "LocalDefault/10.9.0.0/24"
NODE = "10.9.0.1"
MAC_OPTION = "com.docker.network.endpoint.macaddress"
GATEWAY_OPTIONS = {"RequestAddressType": "com.docker.network.gateway"}

Body = dict[str, Any]
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def pool_request(pool: str, sub: str = "", v6: bool = False) -> Body:
    return {"AddressSpace": "LocalDefault", "Pool": pool, "SubPool": sub, "Options": {},
            "V6": v6}


def address_request(pool_id: str, address: str = "", gateway: bool = False) -> Body:
    options = GATEWAY_OPTIONS if gateway else {MAC_OPTION: "02:42:00:00:00:01"}
    return {"PoolID": pool_id, "Address": address, "Options": dict(options)}


def network_request(nid: str, pool: str, gateway: str, v6: tuple[str, str] | None = None,
                    aux: dict[str, str] | None = None) -> Body:
    v4_data: Body = {"AddressSpace": "LocalDefault", "Pool": pool, "Gateway": gateway}
    if aux:
        v4_data["AuxAddresses"] = aux
    v6_data = [{"AddressSpace": "LocalDefault", "Pool": v6[0], "Gateway": v6[1]}] if v6 else []
    return {"NetworkID": nid, "Options": {"com.docker.network.generic": {}},
            "IPv4Data": [v4_data], "IPv6Data": v6_data}


def endpoint_request(nid: str, eid: str, address: str, v6: str = "", mac: str = "") -> Body:
    return {"NetworkID": nid, "EndpointID": eid, "Options": {},
            "Interface": {"Address": address, "AddressIPv6": v6, "MacAddress": mac}}


def ids(nid: str, eid: str) -> Body:
    return {"NetworkID": nid, "EndpointID": eid}


IPAM_SETUP: list[tuple[str, Body | None]] = [
    ("IpamDriver.GetCapabilities", None),
    ("IpamDriver.GetDefaultAddressSpaces", None),
    ("IpamDriver.RequestPool", pool_request("10.0.0.0/24")),
    ("IpamDriver.RequestAddress", address_request(POOL4, gateway=True)),  # 10.0.0.1
    ("IpamDriver.RequestAddress", address_request(POOL4)),  # 10.0.0.2
    ("IpamDriver.RequestAddress", address_request(POOL4)),  # 10.0.0.3
    ("IpamDriver.RequestPool", pool_request("fd00:1::/64", v6=True)),
    ("IpamDriver.RequestAddress", address_request(POOL6, gateway=True)),  # fd00:1::1
    ("IpamDriver.RequestAddress", address_request(POOL6)),  # fd00:1::2
    ("IpamDriver.RequestPool", pool_request("10.2.0.0/16", "10.2.1.0/24")),
    ("IpamDriver.RequestAddress", address_request(POOL_SUB)),
    ("IpamDriver.RequestPool", pool_request("10.3.0.0/30")),
    ("IpamDriver.RequestAddress", address_request(POOL_FULL)),
    ("IpamDriver.RequestAddress", address_request(POOL_FULL)),  # the /30 is now exhausted
    ("IpamDriver.RequestPool", pool_request("10.6.0.0/24")),
]
NETWORK_SETUP: list[tuple[str, Body | None]] = [
    ("NetworkDriver.GetCapabilities", None),
    ("NetworkDriver.CreateNetwork", network_request(
        NET, "10.0.0.0/24", "10.0.0.1/24", ("fd00:1::/64", "fd00:1::1/64"),
        {"aux": "10.0.0.250/24"})),
    ("NetworkDriver.CreateNetwork", network_request(NET2, "10.1.0.0/24", "10.1.0.1/24")),
    ("NetworkDriver.CreateEndpoint", endpoint_request(
        NET, EP1, "10.0.0.2/24", "fd00:1::2/64", MAC1)),
    ("NetworkDriver.CreateEndpoint", endpoint_request(NET, EP2, "10.0.0.3/24")),
    ("NetworkDriver.Join", {**ids(NET, EP1), "SandboxKey": SANDBOX1, "Options": {}}),
    ("NetworkDriver.ProgramExternalConnectivity", {**ids(NET, EP1), "Options": {}}),
    ("NetworkDriver.DiscoverNew", {"DiscoveryType": 1,
                                   "DiscoveryData": {"Address": NODE, "BindAddress": "",
                                                     "Self": False}}),
]

#: Personas the fuzz tests run against: strict and lenient, local and global, with and
#: without the IPAM capabilities that change the rules, and a network-only plugin.
PERSONAS: list[dict[str, Any]] = [
    {"strict": True},
    {"strict": False},
    {"strict": True, "scope": "global", "gw_alloc_checker": True},
    {"strict": False, "scope": "global", "requires_mac_address": True,
     "requires_request_replay": True},
    {"strict": True, "ipam": False},
]


def error_key(path: str) -> str:
    """The error key of the subsystem a path belongs to."""
    return "Error" if path.lstrip("/").partition(".")[0] == "IpamDriver" else "Err"


def snapshot(fake: FakeNetDriver) -> str:
    return json.dumps(fake.state.snapshot(), sort_keys=True)


def seeded(persona: dict[str, Any]) -> FakeNetDriver:
    """A fake already holding networks, endpoints, a join, pools and leases."""
    fake = FakeNetDriver(**persona)
    steps: list[tuple[str, Body | None]] = [("Plugin.Activate", None)]
    if fake.persona.ipam:
        steps += IPAM_SETUP
    steps += NETWORK_SETUP
    if fake.persona.scope == "global":
        steps.append(("NetworkDriver.AllocateNetwork", {
            "NetworkID": NET, "Options": {"k": "v"}, "IPv6Data": None,
            "IPv4Data": [{"AddressSpace": "", "Pool": "10.0.0.0/24", "Gateway": "10.0.0.1/24"}],
        }))
    for method, body in steps:
        raw = b"" if body is None else json.dumps(body).encode()
        status, answer = fake.handle(f"/{method}", raw)
        assert status == 200 and not answer.get(error_key(method)), (method, answer)
    return fake


# -- the universal properties --------------------------------------------------------------
@dataclass
class Served:
    status: int
    answer: dict[str, Any]
    refused: bool

    @property
    def error(self) -> str:
        return str(next(iter(self.answer.values()))) if self.refused else ""


def serve(fake: FakeNetDriver, path: str, raw: bytes) -> Served:
    """Send one call and check every property that holds for any input."""
    before, count = snapshot(fake), len(fake.calls)
    status, answer = fake.handle(path, raw)

    assert status != 500, answer
    assert status in (200, 400, 404), (status, answer)
    assert isinstance(answer, dict), answer
    json.dumps(answer, allow_nan=False)  # the answer is plain JSON

    key = error_key(path)
    wrong = "Err" if key == "Error" else "Error"
    refused = key in answer
    assert wrong not in answer, (path, answer)
    if refused:
        assert set(answer) == {key}, (path, answer)
        assert isinstance(answer[key], str) and answer[key], answer
        assert snapshot(fake) == before, f"refused {path} changed the state: {answer}"
    else:
        assert status == 200, (status, answer)

    assert len(fake.calls) == count + 1
    call = fake.calls[-1]
    assert (call.index, call.status, call.response) == (count, status, answer)
    assert call.error == (answer[key] if refused else None)
    assert call.ok is not refused
    return Served(status, answer, refused)


def encode(body: Any, ascii_only: bool = True, newline: bool = True) -> bytes:
    """JSON as dockerd would send it (compact, trailing newline); ``None`` is no body."""
    if body is None:
        return b""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass") + (b"\n" if newline else b"")


# -- routes --------------------------------------------------------------------------------
ROUTES = [f"/{method}" for method in METHODS]
UNKNOWN_PATHS = [
    "", "/", "/Plugin", "/Plugin.Deactivate", "/NetworkDriver", "/NetworkDriver.",
    "/NetworkDriver.Nope", "/networkdriver.createnetwork", "/NetworkDriver.Join/extra",
    "/IpamDriver", "/IpamDriver.", "/IpamDriver.RequestPools", "/IpamDriver.GetCapabilities.x",
    "/VolumeDriver.Create", "/.", "/NetworkDriver.CreateNetwork ", "/ipamdriver.RequestPool",
]
paths = st.one_of(
    st.sampled_from(ROUTES),
    st.sampled_from(UNKNOWN_PATHS),
    st.text(max_size=30).map(lambda s: "/" + s),
)


def check_route(fake: FakeNetDriver, path: str, served: Served) -> None:
    """Unknown methods are 404; known ones are 404 only when the persona lacks the subsystem."""
    subsystem = path.lstrip("/").partition(".")[0]
    implemented = {"Plugin": True, "NetworkDriver": fake.persona.network,
                   "IpamDriver": fake.persona.ipam}
    if path in UNKNOWN_PATHS:
        assert served.status == 404 and served.refused, (path, served)
    elif path in ROUTES:
        assert (served.status == 404) is not implemented[subsystem], (path, served)


# -- JSON values ---------------------------------------------------------------------------
WIRE_KEYS = [
    "NetworkID", "EndpointID", "Interface", "Address", "AddressIPv6", "MacAddress", "IPv4Data",
    "IPv6Data", "AddressSpace", "Pool", "Gateway", "AuxAddresses", "SandboxKey", "Options",
    "PoolID", "V6", "SubPool", "DiscoveryType", "DiscoveryData", "BindAddress", "Self",
]
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(WIRE_KEYS) | st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=16,
)


# -- near-valid request bodies ---------------------------------------------------------------
V4_NETS = ["10.0.0.0/24", "10.1.0.0/24", "10.2.1.0/24", "10.3.0.0/30", "10.4.0.0/24"]
V6_NETS = ["fd00:1::/64", "fd00:2::/64"]
V4_SUBNETS = [*V4_NETS, "10.2.0.0/16", "10.200.0.0/24", "192.168.0.0/20", "10.0.0.0/8"]
V6_SUBNETS = [*V6_NETS, "fd00:fa4e::/64", "fd00:1::/60"]


@functools.cache
def interface_in(subnet: str) -> st.SearchStrategy[IPInterface]:
    """A host of ``subnet`` with its prefix length, favouring the first, taken addresses."""
    net = ipaddress.ip_network(subnet)
    last = min(net.num_addresses - 1, 1 << 16)
    offsets = st.integers(0, min(last, 5)) | st.integers(0, last)
    return offsets.map(lambda offset: ipaddress.ip_interface(f"{net[offset]}/{net.prefixlen}"))


cidr4 = st.one_of([interface_in(n) for n in V4_NETS]).map(str)
cidr6 = st.one_of([interface_in(n) for n in V6_NETS]).map(str)
ip4 = st.one_of([interface_in(n) for n in V4_NETS]).map(lambda i: str(i.ip))
ip6 = st.one_of([interface_in(n) for n in V6_NETS]).map(lambda i: str(i.ip))
macs = st.sampled_from([MAC1, "02:42:0a:00:00:03"]) | st.lists(
    st.integers(0, 255), min_size=6, max_size=6).map(lambda o: ":".join(f"{x:02x}" for x in o))
network_ids = st.sampled_from([NET, NET2, NET_UNKNOWN])
endpoint_ids = st.sampled_from([EP1, EP2, EP_NEW])
pool_ids = st.sampled_from([POOL4, POOL6, POOL_SUB, POOL_FULL, POOL_EMPTY, POOL_UNKNOWN])
option_keys = st.sampled_from([
    "com.docker.network.enable_ipv6", "com.docker.network.internal",
    "com.docker.network.endpoint.exposedports", "com.docker.network.portmap",
    "com.docker.network.endpoint.macaddress", "io.kubernetes.label",
]) | st.text(max_size=8).filter(lambda k: k != "com.docker.network.generic")
# The generic option is the one option here whose shape the fake checks: an object (or
# null); enable_ipv4 and no_proxy_6to4, booleans, are not drawn (test_options_28.py).
options = st.tuples(
    st.dictionaries(option_keys, json_values, max_size=3),
    st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=2),
).map(lambda t: t[0] if t[1] is None else {**t[0], "com.docker.network.generic": t[1]})
string_options = st.dictionaries(option_keys, st.text(max_size=10), max_size=3)
no_arguments: st.SearchStrategy[Body | None] = st.sampled_from([None, {}])


@st.composite
def ipam_entries(draw: st.DrawFn, version: int) -> Body:
    """An IPAMData object with its gateway and aux addresses inside its pool."""
    pool = draw(st.sampled_from(V4_NETS if version == 4 else V6_NETS))
    entry: Body = {"AddressSpace": draw(st.sampled_from(["LocalDefault", "GlobalDefault", ""])),
                   "Pool": pool}
    if draw(st.booleans()):
        entry["Gateway"] = str(draw(interface_in(pool)))
    if draw(st.booleans()):
        names = st.sampled_from(["aux", "router", "dns"])
        entry["AuxAddresses"] = draw(st.dictionaries(
            names, interface_in(pool).map(str) | st.just("<nil>"), max_size=2))
    return entry


@st.composite
def pool_requests(draw: st.DrawFn) -> Body:
    v6 = draw(st.booleans())
    pool = draw(st.just("") | st.sampled_from(V6_SUBNETS if v6 else V4_SUBNETS))
    sub = ""
    if pool and draw(st.booleans()):
        net = ipaddress.ip_network(pool)
        prefix = draw(st.integers(net.prefixlen, min(net.prefixlen + 4, net.max_prefixlen)))
        sub = str(next(net.subnets(new_prefix=prefix)))
    return {"AddressSpace": draw(st.sampled_from(["LocalDefault", "GlobalDefault"])),
            "Pool": pool, "SubPool": sub, "Options": draw(string_options), "V6": v6}


@st.composite
def address_requests(draw: st.DrawFn, release: bool = False) -> Body:
    """RequestAddress/ReleaseAddress with an address of the pool's family."""
    pid = draw(pool_ids)
    family = ip6 if pid == POOL6 else ip4
    if release:
        return {"PoolID": pid, "Address": draw(family)}
    chosen = draw(st.sampled_from([None, {}, GATEWAY_OPTIONS]) | macs.map(
        lambda m: {MAC_OPTION: m}))
    return {"PoolID": pid, "Address": draw(st.just("") | family),
            "Options": copy.deepcopy(chosen)}


def _ids() -> st.SearchStrategy[Body]:
    return st.fixed_dictionaries({"NetworkID": network_ids, "EndpointID": endpoint_ids})


def _with(base: st.SearchStrategy[Body], **more: st.SearchStrategy[Any]) -> st.SearchStrategy[Body]:
    return st.tuples(base, st.fixed_dictionaries(more)).map(lambda t: {**t[0], **t[1]})


discovery = st.fixed_dictionaries({
    "DiscoveryType": st.sampled_from([1, 1, 1, 2, 3]),
    "DiscoveryData": st.fixed_dictionaries({
        # Go compares parsed IPs: other spellings of one address are the same node
        "Address": st.sampled_from([NODE, "10.9.0.2", "fd00:9::1", "FD00:9::1", "fd00:9:0::1",
                                    "::ffff:10.9.0.2"]),
        "BindAddress": st.just("") | ip4 | st.just("::FFFF:10.9.0.2"),
        "Self": st.booleans(),
    }),
})

#: A valid-shaped request strategy for every method.
REQUESTS: dict[str, st.SearchStrategy[Body | None]] = {
    "Plugin.Activate": no_arguments,
    "NetworkDriver.GetCapabilities": no_arguments,
    "NetworkDriver.GwAllocCheck": st.fixed_dictionaries({"Options": options}),
    "NetworkDriver.CreateNetwork": st.fixed_dictionaries({
        "NetworkID": network_ids, "Options": options,
        "IPv4Data": st.lists(ipam_entries(4), max_size=2),
        "IPv6Data": st.lists(ipam_entries(6), max_size=1),
    }),
    "NetworkDriver.DeleteNetwork": st.fixed_dictionaries({"NetworkID": network_ids}),
    "NetworkDriver.AllocateNetwork": st.fixed_dictionaries({
        "NetworkID": network_ids, "Options": string_options,
        "IPv4Data": st.lists(ipam_entries(4), max_size=1), "IPv6Data": st.none(),
    }),
    "NetworkDriver.FreeNetwork": st.fixed_dictionaries({"NetworkID": network_ids}),
    "NetworkDriver.CreateEndpoint": _with(
        _ids(), Options=options, Interface=st.fixed_dictionaries({
            "Address": st.just("") | cidr4, "AddressIPv6": st.just("") | cidr6,
            "MacAddress": st.just("") | macs,
        })),
    "NetworkDriver.DeleteEndpoint": _ids(),
    "NetworkDriver.EndpointOperInfo": _ids(),
    "NetworkDriver.Join": _with(_ids(), SandboxKey=st.sampled_from([SANDBOX1, SANDBOX2]),
                                Options=options),
    "NetworkDriver.Leave": _ids(),
    "NetworkDriver.ProgramExternalConnectivity": _with(_ids(), Options=options),
    "NetworkDriver.RevokeExternalConnectivity": _ids(),
    "NetworkDriver.DiscoverNew": discovery,
    "NetworkDriver.DiscoverDelete": discovery,
    "IpamDriver.GetCapabilities": no_arguments,
    "IpamDriver.GetDefaultAddressSpaces": no_arguments,
    "IpamDriver.RequestPool": pool_requests(),
    "IpamDriver.ReleasePool": st.fixed_dictionaries({"PoolID": pool_ids}),
    "IpamDriver.RequestAddress": address_requests(),
    "IpamDriver.ReleaseAddress": address_requests(release=True),
}

# -- mutations -----------------------------------------------------------------------------
WRONG_TYPES: list[Any] = [
    None, True, False, 0, -1, 1, 2**63, -(2**64), 10**40, 1e308, -0.0, 0.5, [], {}, [1],
    {"a": 1}, "", " ", "\x00", "\ud800", "null", "{}",
]
BAD_ADDRESSES = [
    "10.0.0.0/33", "10.0.0.256/24", "10.0.0.1/24", "10.0.0.5", "10.0.0.5/", "/24", "10.0.0.5/-1",
    "10.0.0.5/024", " 10.0.0.5/24", "10.0.0/24", "10.0.0.0/8", "0.0.0.0/0", "10.0.0.5/24/24",
    "fd00:1::5", "fd00:1::5/64", "fd00:1::/64", "fd00:1::5/129", "fe80::1%eth0/64", "::/0",
    "::ffff:10.0.0.5/120", "10.0.0.5/255.255.255.0", "1.2.3.4.5/24", "fd00:1:::5/64",
    "٣.٣.٣.٣/24",
]
BAD_MACS = [
    "02:42:0a:00:00", "02:42:0a:00:00:02:03", "zz:42:0a:00:00:02", "02-42-0a-00-00-02",
    "0242.0a00.0002", "2:42:a:0:0:2", "02:42:0a:00:00:02 ", "02:42:0a:00:00:0g",
    "02:42:0a:00:00:02\n",
]
junk = st.one_of(
    st.sampled_from(WRONG_TYPES), st.sampled_from(BAD_ADDRESSES), st.sampled_from(BAD_MACS),
    st.sampled_from([NET, EP1, POOL4, POOL6, SANDBOX1, "10.0.0.2", "10.0.0.2/24"]),
    st.text(max_size=12), st.integers(), st.floats(), json_values,
)


def places(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) pair inside a JSON value, outermost first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield value, key
            yield from places(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield value, index
            yield from places(item)


@st.composite
def near_valid(draw: st.DrawFn, method: str) -> tuple[Body | None, int]:
    """A valid-shaped body for ``method`` with 0-3 fields replaced, deleted or added.

    Returns the body and how many mutations were applied.
    """
    body = copy.deepcopy(draw(REQUESTS[method]))
    mutations = draw(st.integers(0, 3))
    for _ in range(mutations):
        spots = list(places(body))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if action == "add" and isinstance(body, dict):
            # a fresh copy: a shared junk object mutated later could come to hold itself
            body[draw(st.sampled_from(WIRE_KEYS) | st.text(max_size=6))] = copy.deepcopy(draw(junk))
        elif spots:
            container, key = spots[draw(st.integers(0, len(spots) - 1))]
            if action == "delete":
                del container[key]
            else:
                container[key] = copy.deepcopy(draw(junk))
    return body, mutations


@dataclass(frozen=True)
class Request:
    path: str
    raw: bytes
    #: Built valid-shaped and left unmutated.
    pristine: bool = False


@st.composite
def near_valid_requests(draw: st.DrawFn, methods: list[str]) -> Request:
    method = draw(st.sampled_from(methods))
    body, mutations = draw(near_valid(method))
    raw = encode(body, ascii_only=draw(st.booleans()), newline=draw(st.booleans()))
    return Request(f"/{method}", raw, pristine=not mutations)


def effect_of_success(fake: FakeNetDriver, held: set[str]) -> None:
    """In strict mode a success is never a no-op: check the last call did what it says."""
    call, state = fake.calls[-1], fake.state
    method, b, answer = call.method, call.request or {}, call.response
    if method == "NetworkDriver.CreateNetwork":
        assert b["NetworkID"] in state.networks
    elif method == "NetworkDriver.DeleteNetwork":
        assert b["NetworkID"] not in state.networks
    elif method == "NetworkDriver.CreateEndpoint":
        assert state.endpoints[b["EndpointID"]].network_id == b["NetworkID"]
    elif method == "NetworkDriver.DeleteEndpoint":
        assert b["EndpointID"] not in state.endpoints
    elif method == "NetworkDriver.Join":
        assert state.joins[b["EndpointID"]].sandbox_key == b["SandboxKey"]
    elif method == "NetworkDriver.Leave":
        assert b["EndpointID"] not in state.joins
    elif method == "IpamDriver.RequestPool":
        assert str(state.pools[answer["PoolID"]].network) == answer["Pool"]
    elif method == "IpamDriver.ReleasePool":
        assert b["PoolID"] not in state.pools
    elif method == "IpamDriver.RequestAddress":
        leased = state.addresses[b["PoolID"]]
        assert answer["Address"] in leased
        if not fake.persona.requires_request_replay:
            assert answer["Address"] not in held, f"{answer['Address']} handed out twice"
    elif method == "IpamDriver.ReleaseAddress":
        pool = state.pools[b["PoolID"]]
        assert int(ipaddress.ip_address(b["Address"])) not in pool.leases


READ_ONLY = {
    "NetworkDriver.GetCapabilities", "NetworkDriver.GwAllocCheck", "NetworkDriver.EndpointOperInfo",
    "IpamDriver.GetCapabilities", "IpamDriver.GetDefaultAddressSpaces",
}
MAC_PATTERN = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def is_cidr(value: object) -> bool:
    try:
        return isinstance(value, str) and "/" in value and bool(ipaddress.ip_interface(value))
    except ValueError:
        return False


def is_ip(value: object) -> bool:
    try:
        return isinstance(value, str) and bool(ipaddress.ip_address(value))
    except ValueError:
        return False


def check_answer(fake: FakeNetDriver) -> None:
    """A success answer is one dockerd accepts (protocol.md §2, §3.2, §3.3, §6)."""
    call = fake.calls[-1]
    method, request, answer = call.method, call.request or {}, call.response
    if method == "NetworkDriver.GetCapabilities":
        assert answer["Scope"] in ("local", "global")
        assert answer.get("ConnectivityScope", "") in ("", "local", "global")
    elif method == "NetworkDriver.CreateEndpoint":
        interface = answer.get("Interface") or {}
        assert not interface.get("Address") and not interface.get("AddressIPv6"), answer
        if interface.get("MacAddress"):  # only when the request had none
            assert not (request.get("Interface") or {}).get("MacAddress"), answer
            assert MAC_PATTERN.fullmatch(interface["MacAddress"]), answer
    elif method == "NetworkDriver.Join":
        for key in ("Gateway", "GatewayIPv6"):
            assert key not in answer or is_ip(answer[key]), answer
        for route in answer.get("StaticRoutes") or []:
            assert is_cidr(route["Destination"]), answer
        assert isinstance(answer.get("InterfaceName") or {}, dict)
    elif method == "NetworkDriver.EndpointOperInfo":
        assert isinstance(answer["Value"], dict)
    elif method == "NetworkDriver.AllocateNetwork":
        assert all(isinstance(v, str) for v in answer["Options"].values())
    elif method == "IpamDriver.GetDefaultAddressSpaces":
        assert answer["LocalDefaultAddressSpace"] and answer["GlobalDefaultAddressSpace"]
    elif method == "IpamDriver.RequestPool":
        network = ipaddress.ip_network(answer["Pool"])  # strict: no host bits
        assert answer["PoolID"] and network.version == (6 if request.get("V6") else 4)
        if request.get("Pool"):
            assert network == ipaddress.ip_network(request["Pool"])
    elif method == "IpamDriver.RequestAddress":
        assert is_cidr(answer["Address"]), answer
        pool = fake.state.pools[request["PoolID"]]
        address = ipaddress.ip_interface(answer["Address"])
        assert address.ip in pool.network and address.network.prefixlen == pool.network.prefixlen
        if request.get("Address"):
            assert address.ip == ipaddress.ip_address(request["Address"])


def without_violations(snapshot_json: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(snapshot_json)
    state.pop("violations")
    return state


def check_indexes(fake: FakeNetDriver) -> None:
    """Each network indexes every address and MAC its endpoints hold, to an endpoint that
    holds it (in lenient mode two endpoints may share one: the first made owns it), as the
    records alone would index them."""
    state = fake.state
    for nid, network in state.networks.items():
        assert (network.addresses, network.macs, network.shared) == indexes(network), nid
        for eid, endpoint in network.endpoints.items():
            assert state.endpoints[eid] is endpoint and endpoint.network_id == nid
            held = [a.ip for a in (endpoint.address, endpoint.address_v6) if a is not None]
            for ip in held:
                owner = network.endpoints.get(network.addresses.get(ip, ""))
                assert owner is not None and ip in {
                    a.ip for a in (owner.address, owner.address_v6) if a is not None
                }, f"{ip} of endpoint {eid} is not indexed"
            if endpoint.mac:
                owner = network.endpoints.get(network.macs.get(endpoint.mac, ""))
                assert owner is not None and owner.mac == endpoint.mac, (
                    f"MAC {endpoint.mac} of endpoint {eid} is not indexed")
    assert all(ep.network_id in state.networks for ep in state.endpoints.values())


def run(fake: FakeNetDriver, requests: list[Request]) -> None:
    for request in requests:
        held = {a for leased in fake.state.addresses.values() for a in leased}
        before = snapshot(fake)
        served = serve(fake, request.path, request.raw)
        check_route(fake, request.path, served)
        if not served.refused:
            check_answer(fake)
            if fake.calls[-1].method in READ_ONLY:  # changes nothing but the violations
                assert without_violations(snapshot(fake)) == without_violations(before)
        if request.pristine:
            # A well-formed request may be refused for the state it meets, never as malformed.
            assert served.status != 400, (request, served.answer)
        if not served.refused and fake.persona.strict:
            effect_of_success(fake, held)
        check_indexes(fake)


personas = st.sampled_from(PERSONAS)


# -- the fuzz tests -----------------------------------------------------------------------
def test_every_method_has_a_request_strategy() -> None:
    assert set(REQUESTS) == set(METHODS)


@FUZZ
@given(persona=personas, calls=st.lists(st.tuples(paths, st.binary(max_size=120)),
                                        min_size=1, max_size=4))
def test_arbitrary_bytes(persona: dict[str, Any], calls: list[tuple[str, bytes]]) -> None:
    fake = seeded(persona)
    run(fake, [Request(path, raw) for path, raw in calls])


@FUZZ
@given(persona=personas, calls=st.lists(
    st.tuples(paths, json_values, st.booleans()), min_size=1, max_size=4))
def test_arbitrary_json(persona: dict[str, Any], calls: list[tuple[str, Any, bool]]) -> None:
    fake = seeded(persona)
    run(fake, [Request(path, encode(value, ascii_only=ascii_only) if value is not None
                       else b"null") for path, value, ascii_only in calls])


NETWORK_METHODS = [m for m in METHODS if not m.startswith("IpamDriver.")]
IPAM_METHODS = [m for m in METHODS if m.startswith("IpamDriver.")]


@FUZZ
@given(persona=personas, requests=st.lists(near_valid_requests(NETWORK_METHODS),
                                           min_size=1, max_size=4))
def test_near_valid_network_driver_calls(persona: dict[str, Any], requests: list[Request]) -> None:
    run(seeded(persona), requests)


@FUZZ
@given(persona=personas, requests=st.lists(near_valid_requests(IPAM_METHODS),
                                           min_size=1, max_size=4))
def test_near_valid_ipam_calls(persona: dict[str, Any], requests: list[Request]) -> None:
    run(seeded(persona), requests)


@FUZZ
@given(persona=personas, requests=st.lists(
    near_valid_requests(list(METHODS)) | st.builds(Request, paths, st.binary(max_size=40)),
    min_size=2, max_size=8))
def test_near_valid_mixed_sequences(persona: dict[str, Any], requests: list[Request]) -> None:
    """Longer mixed sequences, so later calls meet the state earlier ones left behind."""
    run(seeded(persona), requests)


# -- malformed fields must be refused as malformed ------------------------------------------
NON_STRINGS: list[Any] = [True, False, 0, 1, -1, 2**64, 1.5, [], ["x"], {}, {"a": "b"}]
NON_OBJECTS: list[Any] = [True, False, 0, 1, 2**64, 1.5, "", "x", [], [{}]]
NON_ARRAYS: list[Any] = [True, 0, 1.5, "", "x", {}, {"Pool": "10.0.0.0/24"}]
BAD_SUBNETS = [
    "10.4.0.1/24", "10.4.0.0", "10.4.0.0/33", "10.4.0.0/-1", "10.4.0/24", "10.4.0.256/24",
    "garbage", "/24", "10.4.0.0/", "10.4.0.0/24/24", " 10.4.0.0/24", "fd00:4::/64", "fd00:4::/129",
    "fd00:4::%eth0/64",
]
BAD_CIDRS = [
    "10.4.0.9", "10.4.0.9/33", "10.4.0.256/24", "10.4.0.9/", "/24", "x/24", "10.4.0.9/24/24",
    "fd00:4::9", "fd00:4::9/129", "fd00:4:::9/64", "fd00:4::g/64", "10.4.0.9/-1",
    "fd00:4::9%eth0/64",  # Go's ParseCIDR and netip.ParsePrefix refuse zones
]
BAD_IPS = ["10.4.0.9/24", "10.4.0.256", "10.4.0", "fd00:4::9/64", "x", "10.4.0.9 ", ":::1",
           "fd00:4::9%eth0"]
#: Bad value strategies, by the kind of field they replace. Each kind must be refused with
#: 400 whatever the state, so ``""``/``null`` only appear where they are not "unset" (and
#: not as the value of a ``map[string]string``, where Go would read null as "").
BAD: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["", None, *NON_STRINGS]),
    "text": st.sampled_from(NON_STRINGS),
    "object": st.sampled_from(NON_OBJECTS),
    "string_map": st.sampled_from([*NON_OBJECTS, {"k": 1}, {"k": {}}, {"k": []}, {"k": False}]),
    "array": st.sampled_from(NON_ARRAYS),
    "subnet": st.sampled_from(["", None, *NON_STRINGS, *BAD_SUBNETS]),
    "subnet_opt": st.sampled_from([*NON_STRINGS, *BAD_SUBNETS]),
    "cidr": st.sampled_from(["", None, *NON_STRINGS, *BAD_CIDRS, "10.99.0.9/24"]),
    "cidr_opt": st.sampled_from([*NON_STRINGS, *BAD_CIDRS]),
    "in_pool_opt": st.sampled_from([*NON_STRINGS, *BAD_CIDRS, "10.99.0.9/24", "fd00:99::9/64"]),
    "mac_opt": st.sampled_from([*NON_STRINGS, *BAD_MACS]),
    "ip": st.sampled_from(["", None, *NON_STRINGS, *BAD_IPS]),
    "ip_opt": st.sampled_from([*NON_STRINGS, *BAD_IPS]),
    "flag": st.sampled_from([0, 1, "true", "", [], {}, 1.5]),
    "int": st.sampled_from([1.5, 1.0, "1", True, False, [], {}, "x"]),
}


@dataclass(frozen=True)
class Template:
    """A request that succeeds on the seeded fake, and the kind of each of its fields."""

    method: str
    body: Body
    kinds: dict[tuple[str | int, ...], str] = field(default_factory=dict)

    @functools.cached_property
    def paths(self) -> list[tuple[str | int, ...]]:
        return sorted(self.kinds, key=repr)


def _ipam_data_kinds(key: str) -> dict[tuple[str | int, ...], str]:
    return {
        (key,): "array", (key, 0): "object", (key, 0, "AddressSpace"): "text",
        (key, 0, "Pool"): "subnet", (key, 0, "Gateway"): "in_pool_opt",
        (key, 0, "AuxAddresses"): "object", (key, 0, "AuxAddresses", "aux"): "cidr",
    }


ID_KINDS: dict[tuple[str | int, ...], str] = {("NetworkID",): "id", ("EndpointID",): "id"}
TEMPLATES = [
    Template("NetworkDriver.CreateNetwork", {
        "NetworkID": NET_UNKNOWN,
        "Options": {"com.docker.network.generic": {"k": "v"}},
        "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.4.0.0/24",
                      "Gateway": "10.4.0.1/24", "AuxAddresses": {"aux": "10.4.0.9/24"}}],
        "IPv6Data": [{"AddressSpace": "LocalDefault", "Pool": "fd00:4::/64",
                      "Gateway": "fd00:4::1/64", "AuxAddresses": {"aux": "fd00:4::9/64"}}],
    }, {("NetworkID",): "id", ("Options",): "object",
        ("Options", "com.docker.network.generic"): "object",
        **_ipam_data_kinds("IPv4Data"), **_ipam_data_kinds("IPv6Data")}),
    Template("NetworkDriver.DeleteNetwork", {"NetworkID": NET2}, {("NetworkID",): "id"}),
    Template("NetworkDriver.AllocateNetwork", {
        "NetworkID": NET2, "Options": {"k": "v"}, "IPv6Data": None,
        "IPv4Data": [{"AddressSpace": "", "Pool": "10.4.0.0/24", "Gateway": "10.4.0.1/24"}],
    }, {("NetworkID",): "id", ("Options",): "string_map", ("IPv4Data",): "array",
        ("IPv4Data", 0): "object", ("IPv4Data", 0, "Pool"): "subnet",
        ("IPv4Data", 0, "Gateway"): "in_pool_opt", ("IPv6Data",): "array"}),
    Template("NetworkDriver.FreeNetwork", {"NetworkID": NET}, {("NetworkID",): "id"}),
    Template("NetworkDriver.GwAllocCheck", {"Options": {}}, {("Options",): "object"}),
    Template("NetworkDriver.CreateEndpoint",
             endpoint_request(NET, EP_NEW, "10.0.0.9/24", "fd00:1::9/64", "02:42:0a:00:00:09"),
             {**ID_KINDS, ("Options",): "object", ("Interface",): "object",
              ("Interface", "Address"): "cidr_opt", ("Interface", "AddressIPv6"): "cidr_opt",
              ("Interface", "MacAddress"): "mac_opt"}),
    Template("NetworkDriver.DeleteEndpoint", ids(NET, EP2), ID_KINDS),
    Template("NetworkDriver.EndpointOperInfo", ids(NET, EP1), ID_KINDS),
    Template("NetworkDriver.Join", {**ids(NET, EP2), "SandboxKey": SANDBOX2, "Options": {}},
             {**ID_KINDS, ("SandboxKey",): "id", ("Options",): "object"}),
    Template("NetworkDriver.Leave", ids(NET, EP1), ID_KINDS),
    Template("NetworkDriver.ProgramExternalConnectivity", {**ids(NET, EP1), "Options": {}},
             {**ID_KINDS, ("Options",): "object"}),
    Template("NetworkDriver.RevokeExternalConnectivity", ids(NET, EP1), ID_KINDS),
    *(Template(f"NetworkDriver.{method}", {
        "DiscoveryType": 1,
        "DiscoveryData": {"Address": address, "BindAddress": "10.9.0.3", "Self": False},
    }, {("DiscoveryType",): "int", ("DiscoveryData",): "object",
        ("DiscoveryData", "Address"): "ip", ("DiscoveryData", "BindAddress"): "ip_opt",
        ("DiscoveryData", "Self"): "flag"})
      for method, address in (("DiscoverNew", "10.9.0.2"), ("DiscoverDelete", NODE))),
    Template("IpamDriver.RequestPool", {
        "AddressSpace": "LocalDefault", "Pool": "10.5.0.0/24", "SubPool": "10.5.0.128/25",
        "Options": {"k": "v"}, "V6": False,
    }, {("AddressSpace",): "id", ("Pool",): "subnet_opt", ("SubPool",): "subnet_opt",
        ("Options",): "string_map", ("V6",): "flag"}),
    Template("IpamDriver.ReleasePool", {"PoolID": POOL_EMPTY}, {("PoolID",): "id"}),
    Template("IpamDriver.RequestAddress", {
        "PoolID": POOL4, "Address": "10.0.0.9", "Options": {MAC_OPTION: "02:42:0a:00:00:09"},
    }, {("PoolID",): "id", ("Address",): "ip_opt", ("Options",): "string_map",
        ("Options", MAC_OPTION): "mac_opt"}),
    Template("IpamDriver.ReleaseAddress", {"PoolID": POOL4, "Address": "10.0.0.3"},
             {("PoolID",): "id", ("Address",): "ip"}),
]
ORACLE_PERSONAS = [p for p in PERSONAS if p.get("ipam", True)]


def _set(body: Any, path: tuple[str | int, ...], value: Any) -> None:
    for step in path[:-1]:
        body = body[step]
    body[path[-1]] = value


@st.composite
def malformed(draw: st.DrawFn) -> tuple[Template, tuple[str | int, ...], Any]:
    template = draw(st.sampled_from(TEMPLATES))
    path = draw(st.sampled_from(template.paths))
    return template, path, draw(BAD[template.kinds[path]])


def test_templates_succeed_unmutated() -> None:
    """The oracle is only meaningful if the untouched templates are accepted."""
    for persona in ORACLE_PERSONAS:
        for template in TEMPLATES:
            fake = seeded(persona)
            served = serve(fake, f"/{template.method}", encode(template.body))
            local = persona.get("scope", "local") == "local"
            violation = {  # what the persona makes out of order in strict mode
                "NetworkDriver.AllocateNetwork": local,
                "NetworkDriver.FreeNetwork": local,
                "NetworkDriver.GwAllocCheck": not persona.get("gw_alloc_checker"),
            }.get(template.method, False)
            assert served.refused is (violation and persona["strict"]), (
                persona, template.method, served.answer)


@FUZZ
@given(persona=st.sampled_from(ORACLE_PERSONAS), case=malformed())
def test_malformed_field_is_refused_as_bad_request(
    persona: dict[str, Any], case: tuple[Template, tuple[str | int, ...], Any]
) -> None:
    """One field of a good request replaced by a value of the wrong type or shape: the call
    is refused with 400, whatever the state and the mode, and the refusal names the field."""
    template, path, value = case
    body = copy.deepcopy(template.body)
    _set(body, path, value)
    fake = seeded(persona)
    served = serve(fake, f"/{template.method}", encode(body))
    assert served.status == 400 and served.refused, (template.method, path, value, served)
    assert str(path[-1]) in served.error, (path, served.error)


# -- the HTTP layer --------------------------------------------------------------------------
@LIGHT
@given(
    http_method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "HEAD"]),
    path=paths,
    raw=st.binary(max_size=60) | near_valid_requests(list(METHODS)).map(lambda r: r.raw),
)
def test_http_layer(http_method: str, path: str, raw: bytes) -> None:
    fake = seeded({"strict": True})
    count = len(fake.calls)
    response = Client(fake).open(path or "/", method=http_method, data=raw)
    assert response.status_code != 500
    if http_method == "HEAD":
        return
    body = response.get_data()
    assert body.endswith(b"\n")
    assert isinstance(json.loads(body), dict)
    assert response.headers["Content-Type"] == "application/vnd.docker.plugins.v1.2+json"
    if http_method == "POST":
        assert len(fake.calls) == count + 1
    else:
        assert response.status_code == 405 and len(fake.calls) == count


# -- the lifecycle, against a reference model -----------------------------------------------
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
NETWORK_SUBNETS = ["10.10.0.0/29", "10.10.1.0/28", "10.10.2.0/30", "10.10.3.0/24"]
IPAM_SUBNETS = ["10.20.0.0/30", "10.20.1.0/29", "fd00:20::/126", "fd00:21::/125", "", "v6"]
DEFAULT_V4, DEFAULT_V6 = ipaddress.ip_network("10.200.0.0/16"), ipaddress.ip_network(
    "fd00:fa4e::/48")


@dataclass
class ModelPool:
    id: str
    network: IPNet
    leased: set[IPAddr] = field(default_factory=set)

    def bounds(self) -> tuple[int, int]:
        """Docker's rule: IPv4 keeps back network and broadcast, IPv6 the anycast address."""
        lo, hi = int(self.network.network_address), int(self.network.broadcast_address)
        if self.network.version == 4 and self.network.prefixlen < 31:
            return lo + 1, hi - 1
        return (lo + 1, hi) if self.network.prefixlen < 127 else (lo, hi)

    def free(self, limit: int = 64) -> list[IPAddr]:
        """The lowest ``limit`` free addresses, lowest first (pools may be a /64)."""
        lo, hi = self.bounds()
        base = self.network.network_address
        found: list[IPAddr] = []
        value = lo
        while value <= hi and len(found) < limit:
            ip = base + (value - int(base))
            if ip not in self.leased:
                found.append(ip)
            value += 1
        return found

    def cidr(self, ip: IPAddr) -> str:
        return f"{ip}/{self.network.prefixlen}"


@dataclass
class ModelNetwork:
    pool: ModelPool
    gateway: IPAddr


@dataclass
class ModelEndpoint:
    network_id: str
    address: IPAddr
    mac: str
    sandbox: str | None = None
    programmed: bool = False


class Lifecycle(RuleBasedStateMachine):
    """Valid docker call sequences, checked against a small model after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.fake = FakeNetDriver()
        self.networks: dict[str, ModelNetwork] = {}
        self.endpoints: dict[str, ModelEndpoint] = {}
        self.pools: dict[str, ModelPool] = {}  # every IPAM pool, the networks' ones too
        self.loose: set[str] = set()  # pools that belong to no network
        self.counter = 0
        self.calls = 0
        self.refusals = 0

    # -- helpers ------------------------------------------------------------------------
    def fresh_id(self) -> str:
        self.counter += 1
        return f"{self.counter:064x}"

    def ok(self, method: str, body: Body | None = None) -> dict[str, Any]:
        served = serve(self.fake, f"/{method}", encode(body))
        self.calls += 1
        assert not served.refused, (method, body, served.answer)
        return served.answer

    def refused(self, method: str, body: Body) -> str:
        served = serve(self.fake, f"/{method}", encode(body))
        self.calls += 1
        self.refusals += 1
        assert served.refused, (method, body, served.answer)
        return served.error

    def request_pool(self, subnet: str, v6: bool = False) -> ModelPool:
        answer = self.ok("IpamDriver.RequestPool", pool_request(subnet, v6=v6))
        if subnet:
            network = ipaddress.ip_network(subnet)
        else:  # carved: the first default subnet that overlaps no pool
            parent, prefix = (DEFAULT_V6, 64) if v6 else (DEFAULT_V4, 24)
            network = next(c for c in parent.subnets(new_prefix=prefix) if not any(
                p.network.version == c.version and p.network.overlaps(c)
                for p in self.pools.values()))
        assert answer["Pool"] == str(network), answer
        assert answer["PoolID"] not in self.pools
        pool = self.pools[answer["PoolID"]] = ModelPool(answer["PoolID"], network)
        return pool

    def request_address(self, pool: ModelPool, wanted: IPAddr | None = None,
                        gateway: bool = False) -> IPAddr | None:
        """Lease ``wanted`` (else the lowest free address); ``None`` when the pool is full."""
        free = pool.free()
        body = address_request(pool.id, str(wanted or ""), gateway)
        if not free:
            assert "no available addresses" in self.refused("IpamDriver.RequestAddress", body)
            return None
        answer = self.ok("IpamDriver.RequestAddress", body)
        expected = wanted or free[0]
        assert answer["Address"] == pool.cidr(expected), (answer, expected)
        assert expected not in pool.leased, f"{expected} handed out twice"
        pool.leased.add(expected)
        return expected

    def release_address(self, pool: ModelPool, ip: IPAddr) -> None:
        self.ok("IpamDriver.ReleaseAddress", {"PoolID": pool.id, "Address": str(ip)})
        pool.leased.remove(ip)

    # -- networks -------------------------------------------------------------------------
    def _free_subnets(self, choices: list[str]) -> list[str]:
        used = {str(p.network) for p in self.pools.values()}
        return [s for s in choices if s not in used]

    @precondition(lambda self: bool(self._free_subnets(NETWORK_SUBNETS)))
    @rule(data=st.data())
    def create_network(self, data: st.DataObject) -> None:
        free = self._free_subnets(NETWORK_SUBNETS)
        pool = self.request_pool(data.draw(st.sampled_from(free), label="subnet"))
        gateway = self.request_address(pool, gateway=True)
        assert gateway is not None
        nid = self.fresh_id()
        self.ok("NetworkDriver.CreateNetwork",
                network_request(nid, str(pool.network), pool.cidr(gateway)))
        self.networks[nid] = ModelNetwork(pool, gateway)

    # The removal rules wait for a little crowd, so that things live long enough to be used.
    @precondition(lambda self: len(self.networks) >= 3 and any(self._empty_networks()))
    @rule(data=st.data())
    def delete_network(self, data: st.DataObject) -> None:
        nid = data.draw(st.sampled_from(self._empty_networks()), label="network")
        network = self.networks.pop(nid)
        self.release_address(network.pool, network.gateway)  # docker's order, §5.5
        self.ok("IpamDriver.ReleasePool", {"PoolID": network.pool.id})
        del self.pools[network.pool.id]
        self.ok("NetworkDriver.DeleteNetwork", {"NetworkID": nid})

    def _empty_networks(self) -> list[str]:
        busy = {ep.network_id for ep in self.endpoints.values()}
        return sorted(set(self.networks) - busy)

    # -- endpoints ------------------------------------------------------------------------
    @precondition(lambda self: bool(self.networks))
    @rule(data=st.data(), by_name=st.booleans(), mac=st.booleans())
    def create_endpoint(self, data: st.DataObject, by_name: bool, mac: bool) -> None:
        nid = data.draw(st.sampled_from(sorted(self.networks)), label="network")
        pool = self.networks[nid].pool
        free = pool.free()
        wanted = data.draw(st.sampled_from(free), label="ip") if by_name and free else None
        address = self.request_address(pool, wanted)
        if address is None:
            return
        eid = self.fresh_id()
        given_mac = f"02:42:00:00:{self.counter >> 8 & 0xff:02x}:{self.counter & 0xff:02x}"
        answer = self.ok("NetworkDriver.CreateEndpoint",
                         endpoint_request(nid, eid, pool.cidr(address), mac=given_mac * mac))
        if mac:
            assert answer == {}, answer
        else:
            given_mac = answer["Interface"]["MacAddress"]
        self.endpoints[eid] = ModelEndpoint(nid, address, given_mac)

    def _endpoints(self, joined: bool | None = None, programmed: bool | None = None) -> list[str]:
        return sorted(
            eid for eid, ep in self.endpoints.items()
            if (joined is None or (ep.sandbox is not None) == joined)
            and (programmed is None or ep.programmed == programmed)
        )

    @precondition(lambda self: bool(self._endpoints(joined=False)))
    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        eid = data.draw(st.sampled_from(self._endpoints(joined=False)), label="endpoint")
        endpoint = self.endpoints[eid]
        sandbox = f"/var/run/docker/netns/{eid[-12:]}"
        answer = self.ok("NetworkDriver.Join", {**ids(endpoint.network_id, eid),
                                                "SandboxKey": sandbox, "Options": {}})
        assert answer["Gateway"] == str(self.networks[endpoint.network_id].gateway), answer
        self.ok("NetworkDriver.EndpointOperInfo", ids(endpoint.network_id, eid))
        endpoint.sandbox = sandbox

    @precondition(lambda self: bool(self._endpoints(joined=True, programmed=False)))
    @rule(data=st.data())
    def program(self, data: st.DataObject) -> None:
        eid = data.draw(st.sampled_from(self._endpoints(joined=True, programmed=False)))
        endpoint = self.endpoints[eid]
        self.ok("NetworkDriver.ProgramExternalConnectivity",
                {**ids(endpoint.network_id, eid), "Options": {}})
        endpoint.programmed = True

    @precondition(lambda self: bool(self.endpoints))
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        """Legal on any endpoint: docker revokes endpoints it never programmed."""
        eid = data.draw(st.sampled_from(sorted(self.endpoints)), label="endpoint")
        self.ok("NetworkDriver.RevokeExternalConnectivity",
                ids(self.endpoints[eid].network_id, eid))
        self.endpoints[eid].programmed = False

    @precondition(lambda self: bool(self._endpoints(joined=True)))
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        eid = data.draw(st.sampled_from(self._endpoints(joined=True)), label="endpoint")
        endpoint = self.endpoints[eid]
        if endpoint.programmed:  # docker revokes the gateway endpoint first, §5.3
            self.ok("NetworkDriver.RevokeExternalConnectivity", ids(endpoint.network_id, eid))
            endpoint.programmed = False
        self.ok("NetworkDriver.Leave", ids(endpoint.network_id, eid))
        endpoint.sandbox = None

    @precondition(lambda self: len(self._endpoints(joined=False)) >= 2)
    @rule(data=st.data())
    def delete_endpoint(self, data: st.DataObject) -> None:
        eid = data.draw(st.sampled_from(self._endpoints(joined=False)), label="endpoint")
        endpoint = self.endpoints.pop(eid)
        self.ok("NetworkDriver.DeleteEndpoint", ids(endpoint.network_id, eid))
        self.release_address(self.networks[endpoint.network_id].pool, endpoint.address)

    # -- IPAM on its own ------------------------------------------------------------------
    @precondition(lambda self: len(self.loose) < 3)
    @rule(data=st.data())
    def request_loose_pool(self, data: st.DataObject) -> None:
        choice = data.draw(st.sampled_from(self._free_subnets(IPAM_SUBNETS)), label="subnet")
        if choice in ("", "v6"):
            pool = self.request_pool("", v6=choice == "v6")
        else:
            pool = self.request_pool(choice, v6=":" in choice)
        self.loose.add(pool.id)

    @precondition(lambda self: bool(self.loose))
    @rule(data=st.data(), by_name=st.booleans())
    def request_loose_address(self, data: st.DataObject, by_name: bool) -> None:
        pool = self.pools[data.draw(st.sampled_from(sorted(self.loose)), label="pool")]
        free = pool.free()
        self.request_address(pool, data.draw(st.sampled_from(free)) if by_name and free else None)

    @precondition(lambda self: any(self.pools[p].leased for p in self.loose))
    @rule(data=st.data())
    def release_loose_address(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(p for p in self.loose if self.pools[p].leased)))
        pool = self.pools[pid]
        self.release_address(pool, data.draw(st.sampled_from(sorted(pool.leased)), label="ip"))

    @precondition(lambda self: len(self.loose) >= 2)
    @rule(data=st.data())
    def release_loose_pool(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.loose)), label="pool")
        for ip in sorted(self.pools[pid].leased):
            self.release_address(self.pools[pid], ip)
        self.ok("IpamDriver.ReleasePool", {"PoolID": pid})
        self.loose.remove(pid)
        del self.pools[pid]

    # -- the fake agrees with the model ----------------------------------------------------
    @invariant()
    def networks_agree(self) -> None:
        state = self.fake.state
        assert set(state.networks) == set(self.networks)
        for nid, network in state.networks.items():
            pool = self.networks[nid].pool
            assert [str(d.pool) for d in network.ipv4_data] == [str(pool.network)]
            members = {eid for eid, ep in self.endpoints.items() if ep.network_id == nid}
            assert set(network.endpoints) == members
            assert {ip: eid for ip, eid in network.addresses.items()} == {
                self.endpoints[eid].address: eid for eid in members}

    @invariant()
    def endpoints_agree(self) -> None:
        state = self.fake.state
        assert set(state.endpoints) == set(self.endpoints)
        for eid, endpoint in state.endpoints.items():
            model = self.endpoints[eid]
            assert endpoint.network_id == model.network_id
            assert endpoint.address is not None and endpoint.address.ip == model.address
            assert endpoint.mac == model.mac
            assert state.networks[endpoint.network_id].endpoints[eid] is endpoint
        assert {eid: j.sandbox_key for eid, j in state.joins.items()} == {
            eid: ep.sandbox for eid, ep in self.endpoints.items() if ep.sandbox is not None}
        assert {eid for eid, ep in state.endpoints.items() if ep.connectivity is not None} == {
            eid for eid, ep in self.endpoints.items() if ep.programmed}

    @invariant()
    def ipam_agrees(self) -> None:
        addresses = self.fake.state.addresses
        assert addresses == {
            pid: [pool.cidr(ip) for ip in sorted(pool.leased)] for pid, pool in self.pools.items()
        }
        for leased in addresses.values():
            assert len(set(leased)) == len(leased)
        for endpoint in self.endpoints.values():  # every endpoint's address is leased
            assert endpoint.address in self.networks[endpoint.network_id].pool.leased

    @invariant()
    def journal_agrees(self) -> None:
        calls = self.fake.calls
        assert len(calls) == self.calls
        assert [c.index for c in calls] == list(range(len(calls)))
        assert sum(not c.ok for c in calls) == self.refusals
        assert self.fake.violations == []


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(FUZZ, max_examples=80, stateful_step_count=50)


# -- bodies no strategy above produces -----------------------------------------------------
PATHOLOGICAL: list[tuple[str, bytes]] = [
    ("nan", b'{"NetworkID":"x","Options":{"a":NaN,"b":-Infinity}}'),
    ("big_int", b'{"DiscoveryType":' + b"9" * 5000 + b"}"),
    ("big_float", b'{"DiscoveryType":1e999999}'),
    ("utf16", json.dumps({"NetworkID": NET}).encode("utf-16")),
    ("bom", b"\xef\xbb\xbf" + json.dumps({"NetworkID": NET}).encode()),
    ("lone_surrogate", b'{"NetworkID":"\\ud800"}'),
    ("invalid_utf8", b'{"NetworkID":"\xff\xfe"}'),
    ("trailing_garbage", b'{"NetworkID":"x"} {}'),
    ("duplicate_keys", b'{"NetworkID":"x","NetworkID":5}'),
    ("nul", b"\x00" * 64),
    ("huge_string", b'{"NetworkID":"' + b"a" * 1_000_000 + b'"}'),
    ("wide_object", b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(20000)) + b"}"),
    ("nested_200", b'{"NetworkID":"x","Options":' + b"[" * 200 + b"]" * 200 + b"}"),
]


@pytest.mark.parametrize("persona", [{"strict": True}, {"strict": False}],
                         ids=["strict", "lenient"])
@pytest.mark.parametrize("body", [b for _, b in PATHOLOGICAL], ids=[n for n, _ in PATHOLOGICAL])
@pytest.mark.parametrize("method", ["NetworkDriver.CreateNetwork", "NetworkDriver.DiscoverNew",
                                    "IpamDriver.RequestPool", "Plugin.Activate"])
def test_pathological_bodies(method: str, body: bytes, persona: dict[str, Any]) -> None:
    serve(seeded(persona), f"/{method}", body)


# -- regressions -----------------------------------------------------------------------------
# Each of these was a bug found by this file (a 500, or a malformed value accepted); the
# fake was fixed while the tests were being written. They stay as named regression tests.
@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("method", ["NetworkDriver.CreateNetwork", "IpamDriver.RequestPool"])
def test_deeply_nested_json_is_a_bad_request(method: str, depth: int) -> None:
    """json.loads raises RecursionError (not ValueError) on deep nesting; it used to escape
    to the catch-all and be answered 500. Go's decoder refuses nesting beyond 10000 levels."""
    served = serve(seeded({"strict": True}), f"/{method}", b"[" * depth + b"]" * depth)
    assert served.status == 400


def test_mac_with_trailing_newline_is_refused() -> None:
    """The MAC regex ends in ``$``, which also matches before a final newline: with
    ``match`` instead of ``fullmatch``, ``"<EP1's MAC>\\n"`` was accepted, stored with the
    newline, and escaped the duplicate-MAC check."""
    body = endpoint_request(NET, EP_NEW, "10.0.0.9/24", mac=MAC1 + "\n")
    served = serve(seeded({"strict": True}), "/NetworkDriver.CreateEndpoint", encode(body))
    assert served.status == 400 and "MacAddress" in served.error, served


@pytest.mark.parametrize("mac", [MAC1 + "\n", False, 0, [], {}], ids=repr)
def test_mac_option_of_request_address_is_checked(mac: Any) -> None:
    """RequestAddress' Options is a ``map[string]string``; the MAC option used to be checked
    only when truthy, so ``false``/``0``/``[]``/``{}`` passed as "no MAC"."""
    body = {"PoolID": POOL4, "Address": "", "Options": {MAC_OPTION: mac}}
    served = serve(seeded({"strict": True}), "/IpamDriver.RequestAddress", encode(body))
    assert served.status == 400, served


def test_request_address_options_are_a_string_map() -> None:
    body = {"PoolID": POOL4, "Address": "", "Options": {"RequestAddressType": 5}}
    served = serve(seeded({"strict": True}), "/IpamDriver.RequestAddress", encode(body))
    assert served.status == 400, served


@pytest.mark.parametrize("gateway", [False, 0, [], {}], ids=repr)
def test_falsy_gateway_of_the_wrong_type_is_refused(gateway: Any) -> None:
    """``if item.get("Gateway")`` used to read ``false``/``0``/``[]``/``{}`` as "no
    gateway" instead of refusing a value of the wrong type."""
    body = network_request(NET_UNKNOWN, "10.4.0.0/24", "10.4.0.1/24")
    body["IPv4Data"][0]["Gateway"] = gateway
    served = serve(seeded({"strict": True}), "/NetworkDriver.CreateNetwork", encode(body))
    assert served.status == 400 and "Gateway" in served.error, served


def test_zoned_ipv6_address_is_refused() -> None:
    """``ipaddress`` accepts ``fd00:1::2%eth0/64``; that zoned address hashes apart from
    EP1's ``fd00:1::2`` and would slip past the duplicate-address check."""
    body = endpoint_request(NET, EP_NEW, "10.0.0.9/24", "fd00:1::2%eth0/64")
    served = serve(seeded({"strict": True}), "/NetworkDriver.CreateEndpoint", encode(body))
    assert served.status == 400, served


# -- bugs in the fake ------------------------------------------------------------------------
@pytest.mark.parametrize("shared", ["address", "mac"])
def test_regression_lenient_duplicate_unindexes_the_first_owner(shared: str) -> None:
    """Lenient mode: endpoint B is created with endpoint A's address (or MAC); the violation
    is recorded and B overwrites A in ``Network.addresses`` (``Network.macs``). Deleting B
    then drops the index entry, so A's address is no longer indexed, and endpoint C taking
    the very same address is accepted with no violation at all, though A still holds it."""
    fake = seeded({"strict": False})
    a, b, c = "4" * 64, "5" * 64, "6" * 64
    hosts = {a: "10.1.0.5/24", b: "10.1.0.6/24", c: "10.1.0.7/24"}
    macs = {a: "02:00:00:00:00:05", b: "02:00:00:00:00:06", c: "02:00:00:00:00:07"}
    if shared == "address":
        hosts = dict.fromkeys(hosts, "10.1.0.5/24")
    else:
        macs = dict.fromkeys(macs, "02:00:00:00:00:05")
    for eid in (a, b):
        serve(fake, "/NetworkDriver.CreateEndpoint",
              encode(endpoint_request(NET2, eid, hosts[eid], mac=macs[eid])))
    assert fake.calls[-1].violations, "B's duplicate is reported"
    serve(fake, "/NetworkDriver.DeleteEndpoint", encode(ids(NET2, b)))
    serve(fake, "/NetworkDriver.CreateEndpoint",
          encode(endpoint_request(NET2, c, hosts[c], mac=macs[c])))
    assert fake.calls[-1].violations, f"C's duplicate of A's {shared} is not reported"


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("NetworkDriver.CreateEndpoint", endpoint_request(NET2, EP_NEW, "10.1.0.9/255.255.255.0")),
        ("IpamDriver.RequestPool", pool_request("10.7.0.0/0.0.0.255")),
        ("NetworkDriver.CreateNetwork", network_request(NET_UNKNOWN, "10.7.0.0/255.255.255.0", "")),
    ],
    ids=["netmask-address", "hostmask-pool", "netmask-pool"],
)
def test_regression_netmask_form_is_accepted_as_cidr(method: str, body: Body) -> None:
    """``_wire.cidr``/``_wire.subnet`` hand the string to ``ipaddress``, which also takes
    a netmask or hostmask after the slash. The protocol has CIDR prefix lengths there, and
    Go's ParseCIDR/ParsePrefix refuse ``10.1.0.9/255.255.255.0``; so should the fake (400)."""
    served = serve(seeded({"strict": True}), f"/{method}", encode(body))
    assert served.status == 400, served
