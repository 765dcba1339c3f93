"""Persona validation: a persona Docker would refuse cannot be built."""

from __future__ import annotations

from typing import Any

import pytest

from fakedriver import FakeNetDriver, Persona


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scope": "planet"}, "scope must be 'local' or 'global', not 'planet'"),
        (
            {"connectivity_scope": "x"},
            "connectivity_scope must be '', 'local' or 'global', not 'x'",
        ),
        (
            {"network": False, "ipam": False},
            "a persona must implement NetworkDriver, IpamDriver or both",
        ),
        ({"local_address_space": ""}, "address space names must not be empty"),
        (
            {"default_pools": (("10.0.0.0/16", 8),)},
            "default pool 10.0.0.0/16: cannot carve /8 pools",
        ),
        (
            {"static_routes": ({"Destination": "10.0.0.1", "RouteType": 0},)},
            "static route Destination must be CIDR",
        ),
        (
            {"static_routes": ({"Destination": "10.0.0.0/8", "RouteType": "0"},)},
            "static route RouteType must be an integer",
        ),
    ],
)
def test_invalid_personas_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Persona(**options)


def test_fake_options_override_a_persona() -> None:
    base = Persona(scope="global", seed=3)
    fake = FakeNetDriver(base, strict=False)
    assert (fake.persona.scope, fake.persona.seed, fake.persona.strict) == ("global", 3, False)
    assert base.strict is True


def test_exhausted_default_pools_are_a_clear_error() -> None:
    fake = FakeNetDriver(default_pools=(("10.0.0.0/23", 24),))
    body = b'{"AddressSpace": "LocalDefault", "Pool": "", "V6": false}'
    assert [fake.handle("/IpamDriver.RequestPool", body)[1]["Pool"] for _ in range(2)] == [
        "10.0.0.0/24",
        "10.0.1.0/24",
    ]
    assert fake.handle("/IpamDriver.RequestPool", body) == (
        200,
        {"Error": "no available IPv4 pool in address space LocalDefault"},
    )
    v6 = b'{"AddressSpace": "LocalDefault", "V6": true}'
    assert fake.handle("/IpamDriver.RequestPool", v6)[1] == {
        "Error": "no available IPv6 pool in address space LocalDefault"
    }
