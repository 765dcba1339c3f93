"""RequestPool with no Pool carves the first default pool of its version that overlaps no
pool of its address space: one walk over the space's pools in address order (kept sorted
as pools come and go), with the answers of the check of every candidate against every pool
it replaced, which is kept here as the reference. What it costs: benchmarks/carve.py."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fakedriver import FakeNetDriver, State
from fakedriver.core.pool import first_free

SPACES = ["LocalDefault", "GlobalDefault"]
DEFAULTS = [
    ("10.0.0.0/20", 24), ("10.0.16.0/20", 22), ("10.0.0.0/16", 20), ("10.0.8.0/22", 28),
    ("fd00::/112", 120), ("fd00::100/120", 124), ("::/120", 124),
]  # fmt: skip


def reference(state: State, space: str, version: int, defaults: list[tuple[str, int]]) -> str:
    """The carve as it was: every candidate checked against every pool."""
    for base, length in defaults:
        parent = ipaddress.ip_network(base)
        if parent.version != version:
            continue
        for candidate in parent.subnets(new_prefix=length):
            if not any(
                pool.address_space == space and pool.network.overlaps(candidate)
                for pool in state.pools.values()
            ):
                return str(candidate)
    return "none"


@st.composite
def networks(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        address = 0x0A000000 + draw(st.integers(0, 2**16 - 1))  # in 10.0.0.0/16
        prefix = draw(st.sampled_from([8, 16, 18, 20, 21, 22, 23, 24, 25, 26, 28, 30, 32]))
        return str(ipaddress.ip_network((address, prefix), strict=False))
    base = int(ipaddress.ip_address("fd00::")) * draw(st.sampled_from([1, 0]))
    address = base + draw(st.integers(0, 2**9 - 1))
    prefix = draw(st.sampled_from([104, 112, 118, 120, 122, 124, 128]))
    return str(ipaddress.IPv6Network((address, prefix), strict=False))


steps = st.lists(
    st.one_of(
        st.tuples(st.just("pool"), st.sampled_from(SPACES), networks()),
        st.tuples(st.just("carve"), st.sampled_from(SPACES), st.sampled_from([4, 6])),
        st.tuples(st.just("release"), st.integers(0, 50)),
    ),
    max_size=40,
)


def call(fake: FakeNetDriver, method: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = fake.respond(f"/IpamDriver.{method}", json.dumps(body).encode())
    answer: dict[str, Any] = json.loads(reply.body)
    return answer


@settings(max_examples=300, deadline=None)
@given(
    defaults=st.lists(st.sampled_from(DEFAULTS), min_size=1, max_size=4, unique=True),
    steps=steps,
)
def test_the_carve_answers_as_the_check_of_every_candidate_did(
    defaults: list[tuple[str, int]], steps: list[tuple[Any, ...]]
) -> None:
    """Random pools (nested, overlapping, in two spaces, of both versions, held and
    released), then carves: each the pool the reference names, or the same refusal."""
    fake = FakeNetDriver(strict=False, default_pools=tuple(defaults))
    for step in steps:
        if step[0] == "pool":
            _, space, network = step
            body = {"AddressSpace": space, "Pool": network, "V6": ":" in network}
            assert "PoolID" in call(fake, "RequestPool", body)
        elif step[0] == "release":
            held = list(fake.state.pools)
            if held:
                call(fake, "ReleasePool", {"PoolID": held[step[1] % len(held)]})
        else:
            _, space, version = step
            expected = reference(fake.state, space, version, defaults)
            answer = call(fake, "RequestPool", {"AddressSpace": space, "V6": version == 6})
            if expected == "none":
                assert answer == {
                    "Error": f"no available IPv{version} pool in address space {space}"
                }
            else:
                assert answer["Pool"] == expected, (answer, expected)


def test_first_free_keeps_the_family_of_its_parent() -> None:
    """``::/120`` carved at 0 is ``::/124``, an IPv6 network, though its number fits IPv4."""
    assert first_free(ipaddress.ip_network("::/120"), 124, []) == ipaddress.ip_network("::/124")
