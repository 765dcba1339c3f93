"""What differs between the rules of dockerd 20.10 and 28 (``fakedriver.conformance.rules``,
the one place that says what dockerd accepts): the tables of test_dockerd_replay.py hold
the rules both share, checked against CI's daemon by the fault matrix."""

from __future__ import annotations

from typing import Any

import pytest

from fakedriver.conformance.rules import (
    DEFAULT_DOCKERD,
    VERSIONS,
    dockerd_rejects,
    parse_prefix,
    rollback,
    version_of,
)

POOL, CAPS = "IpamDriver.RequestPool", "NetworkDriver.GetCapabilities"
JOIN, CE = "NetworkDriver.Join", "NetworkDriver.CreateEndpoint"
DELETE = "NetworkDriver.DeleteEndpoint"

# fmt: off
DIFFERS: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    # (method, answer, why 20.10 refuses, why 28 refuses): None where it accepts
    (CAPS, {"Scope": "local", "GwAllocChecker": "yes"}, None, "cannot unmarshal string"),
    (CAPS, {"Scope": "local", "GwAllocChecker": 1}, None, "cannot unmarshal number"),
    (POOL, {"PoolID": "p", "Pool": "10.0.0.0"}, "invalid CIDR address: 10.0.0.0",
     'netip.ParsePrefix("10.0.0.0"): no \'/\''),
    (POOL, {"Err": "x"}, "invalid CIDR address: ", 'netip.ParsePrefix(""): no \'/\''),
    (POOL, {"PoolID": "p", "Pool": "10.0.0.0/024"}, None, 'netip.ParsePrefix("10.0.0.0/024")'),
]
# fmt: on


@pytest.mark.parametrize(("method", "answer", "d20", "d28"), DIFFERS)
def test_what_each_daemon_refuses(
    method: str, answer: dict[str, Any], d20: str | None, d28: str | None
) -> None:
    for rules, expected in (("20.10", d20), ("28", d28)):
        why = dockerd_rejects(method, {}, 200, answer, rules)
        if expected is None:
            assert why is None, (rules, why)
        else:
            assert why is not None and expected in why, (rules, why)


def test_the_default_rules_are_28s_and_others_are_refused() -> None:
    assert DEFAULT_DOCKERD == "28" and VERSIONS == ("20.10", "28")
    assert dockerd_rejects(POOL, {}, 200, {"PoolID": "p", "Pool": "10.0.0.0"}).startswith(
        "RequestPool: netip"
    )
    with pytest.raises(ValueError, match=r"20\.10 and 28"):
        dockerd_rejects(POOL, {}, 200, {}, "24")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20.10.24+dfsg1", "20.10"), ("28.3.3", "28"), ("v29.0.1", "28"), ("24.0.7", "20.10")],
)
def test_version_of(text: str, expected: str) -> None:
    assert version_of(text) == expected


def test_version_of_refuses_what_is_no_version() -> None:
    with pytest.raises(ValueError):
        version_of("unknown")


def test_parse_prefix_is_go_netip() -> None:
    assert parse_prefix("10.0.0.0/24") is not None
    assert parse_prefix("10.0.0.1/24") is not None  # host bits: netip keeps them
    for bad in ("10.0.0.0", "10.0.0.0/024", "fe80::/64%eth0", "10.0.0.0/33", ""):
        assert parse_prefix(bad) is None, bad


BAD_GATEWAY = 'unable to parse Gateway "10.0.0.1/24" (§3.3)'
CONFLICT = "driver modified interface address: IPv4 slot is set, Address (§3.2)"
BAD_MAC = "Interface.MacAddress: address x: invalid MAC address (§3.2)"


@pytest.mark.parametrize(
    ("method", "why", "d20", "d28"),
    [
        # an answer dockerd cannot use, after the plugin served the Join: 28 sends Leave
        (JOIN, BAD_GATEWAY, ("NetworkDriver.DeleteEndpoint",),
         ("NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint")),
        # the Join call failed (status, error field, decoding): no Leave in either
        (JOIN, "HTTP 500: ...", (DELETE,), (DELETE,)),
        (JOIN, "NetworkDriver.Join: error reading plugin resp: x", (DELETE,), (DELETE,)),
        # CreateEndpoint: 20.10 undoes only an address or MAC conflict, 28 any served answer
        (CE, CONFLICT, ("NetworkDriver.DeleteEndpoint",), ("NetworkDriver.DeleteEndpoint",)),
        (CE, BAD_MAC, (), ("NetworkDriver.DeleteEndpoint",)),
        (CE, "remote: no", (), ()),
        ("IpamDriver.RequestAddress", "no address returned (§6)", (), ()),
    ],
)  # fmt: skip
def test_rollback_per_version(
    method: str, why: str, d20: tuple[str, ...], d28: tuple[str, ...]
) -> None:
    assert rollback(method, why, "20.10") == d20
    assert rollback(method, why, "28") == d28
