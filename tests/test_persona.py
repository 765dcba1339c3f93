"""Persona validation: a persona Docker would refuse cannot be built."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
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


ROUTE = {"Destination": "10.9.0.0/16", "RouteType": 0, "NextHop": "10.0.0.254"}

#: Values of the right shape on the surface that failed calls later (a 500 at every
#: RequestPool or Join) or the start (a traceback), and the field each must be refused by.
BAD_FIELDS = [
    ({"static_routes": (1,)}, "static_routes"),
    ({"static_routes": "10.0.0.0/8"}, "static_routes must be a list"),
    ({"static_routes": ({**ROUTE, "Extra": float("inf")},)}, "static_routes"),
    ({"static_routes": ({**ROUTE, "RouteType": 5},)}, "static_routes"),
    ({"static_routes": ({**ROUTE, "NextHop": float("nan")},)}, "static_routes"),
    ({"static_routes": ({**ROUTE, "Destination": "10.0.0.0/99"},)}, "static_routes"),
    ({"static_routes": ({**ROUTE, "NextHop": "10.0.0.999"},)}, "static_routes"),
    ({"default_pools": (("10.0.0.0/8", 24.5),)}, "default_pools"),
    ({"default_pools": (("10.0.0.0/8", True),)}, "default_pools"),
    ({"default_pools": (("10.0.0.0/8", 24, 1),)}, "default_pools"),
    ({"default_pools": ((10, 24),)}, "default_pools"),
    ({"default_pools": (("x", 24),)}, "default_pools"),
    ({"default_pools": (("10.0.0.1/24", 28),)}, "default_pools"),
    ({"default_pools": ("10.0.0.0/8",)}, "default_pools"),
    ({"default_pools": (1,)}, "default_pools"),
    ({"default_pools": 24}, "default_pools must be a list"),
    ({"strict": "no"}, "strict must be true or false"),
    ({"ipam": 1}, "ipam must be true or false"),
    ({"seed": True}, "seed must be an integer"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"seed": -1}, "seed must be from 0 to 2**63 - 1"),
    ({"seed": 2**63}, "seed must be from 0 to 2**63 - 1"),
    ({"scope": 1}, "scope must be a string"),
    ({"connectivity_scope": None}, "connectivity_scope must be a string"),
    ({"interface_prefix": ""}, "interface_prefix must be 1 to 14"),
    ({"interface_prefix": "x" * 15}, "interface_prefix must be 1 to 14"),
    ({"interface_prefix": "a b"}, "interface_prefix"),
    ({"interface_prefix": "eth%d"}, "interface_prefix"),
    ({"interface_prefix": "a/b"}, "interface_prefix"),
    ({"local_address_space": "\x00"}, "local_address_space must be printable"),
    ({"global_address_space": None}, "global_address_space must be a string"),
]


@pytest.mark.parametrize(("options", "field"), BAD_FIELDS, ids=[str(o) for o, _ in BAD_FIELDS])
def test_every_field_is_checked_for_type_and_range(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError) as refused:
        Persona(**options)
    assert str(refused.value).startswith(field), str(refused.value)
    assert len(str(refused.value)) < 300  # a long value is cut down in the message
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        FakeNetDriver(**options)


@pytest.mark.parametrize(
    "options",
    [
        {"default_pools": ()},  # RequestPool without a pool: a clear error, not a 500
        {"default_pools": (("0.0.0.0/0", 32), ("::/0", 128))},
        {"default_pools": [["10.0.0.0/8", 24]]},  # lists, as TOML gives them
        {"static_routes": ({"Destination": "10.9.0.0/16", "RouteType": 1},)},
        {"static_routes": [ROUTE]},
        {"seed": 2**63 - 1},
        {"interface_prefix": "x" * 14},
        {"local_address_space": "GlobalDefault"},
    ],
)
def test_the_edges_of_each_range_serve(options: dict[str, Any]) -> None:
    fake = FakeNetDriver(**options)
    pool = json.dumps({"AddressSpace": fake.persona.local_address_space}).encode()
    status, answer = fake.handle("/IpamDriver.RequestPool", pool)
    assert status == 200 and ("Pool" in answer or "no available" in answer["Error"]), answer
    body = {"NetworkID": "n", "IPv4Data": [{"AddressSpace": "x", "Pool": "10.1.0.0/24"}]}
    assert fake.handle("/NetworkDriver.CreateNetwork", json.dumps(body).encode())[0] == 200
    endpoint = {"NetworkID": "n", "EndpointID": "e", "Interface": {"Address": "10.1.0.2/24"}}
    assert fake.handle("/NetworkDriver.CreateEndpoint", json.dumps(endpoint).encode())[0] == 200
    join = {"NetworkID": "n", "EndpointID": "e", "SandboxKey": "/k"}
    assert fake.handle("/NetworkDriver.Join", json.dumps(join).encode())[0] == 200


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--static-routes", "[1]", "static_routes"),
        ("--static-routes", '[{"Destination": "10.0.0.0/8", "x": 1e400}]', "static_routes"),
        ("--default-pools", '[["10.0.0.0/8", 24.5]]', "default_pools"),
        ("--default-pools", "[1]", "default_pools"),
    ],
)
def test_a_bad_persona_flag_is_exit_2_naming_the_field(
    tmp_path: Path, flag: str, value: str, field: str
) -> None:
    """``--static-routes '[1]'`` was a traceback (exit 1), ``--default-pools`` with a
    length of 24.5 served and answered every RequestPool 500."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fakedriver",
            "serve",
            "--socket",
            str(tmp_path / "x.sock"),
            flag,
            value,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"fakedriver: command line: {field}"), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "x.sock").exists()


def test_a_bad_persona_file_is_exit_2_naming_the_field(tmp_path: Path) -> None:
    persona = tmp_path / "p.toml"
    persona.write_text('static_routes = [1]\ndefault_pools = [["10.0.0.0/8", 24]]\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fakedriver",
            "serve",
            "--socket",
            str(tmp_path / "x.sock"),
            "--persona",
            str(persona),
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert done.stderr.startswith(f"fakedriver: persona file {persona}: static_routes")
