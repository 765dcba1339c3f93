"""The persona on the command line: every field of Persona has its flag (generated, so a
new field cannot be forgotten), a TOML persona file is a base the flags override, and bad
values are refused naming the field and where it came from."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from fakedriver import Persona
from fakedriver.cli.options import add_persona_options, persona_from

#: A value other than the default, as typed on the command line, per field.
OTHER: dict[str, tuple[list[str], Any]] = {
    "scope": (["--scope", "global"], "global"),
    "connectivity_scope": (["--connectivity-scope", "global"], "global"),
    "gw_alloc_checker": (["--gw-alloc-checker"], True),
    "skip_ipv4": (["--skip-ipv4"], True),
    "skip_ipv6": (["--skip-ipv6"], True),
    "network": (["--no-network"], False),
    "ipam": (["--no-ipam"], False),
    "requires_mac_address": (["--requires-mac-address"], True),
    "requires_request_replay": (["--requires-request-replay"], True),
    "local_address_space": (["--local-address-space", "L"], "L"),
    "global_address_space": (["--global-address-space", "G"], "G"),
    "default_pools": (["--default-pools", '[["10.9.0.0/16", 24]]'], (("10.9.0.0/16", 24),)),
    "assign_mac": (["--no-assign-mac"], False),
    "interface_prefix": (["--interface-prefix", "veth"], "veth"),
    "join_gateway": (["--no-join-gateway"], False),
    "static_routes": (
        ["--static-routes", '[{"Destination": "10.5.0.0/16", "RouteType": 1}]'],
        ({"Destination": "10.5.0.0/16", "RouteType": 1},),
    ),
    "disable_gateway_service": (["--disable-gateway-service"], True),
    "strict": (["--no-strict"], False),
    "seed": (["--seed", "7"], 7),
}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_persona_options(parser)
    return parser.parse_args(argv)


def test_every_persona_field_has_a_row_here() -> None:
    assert set(OTHER) == {f.name for f in dataclasses.fields(Persona)}


@pytest.mark.parametrize("name", OTHER)
def test_every_field_is_reachable_by_its_flag(name: str) -> None:
    argv, value = OTHER[name]
    if name == "network":
        argv = [*argv, "--ipam"]  # a persona implements at least one protocol
    persona = persona_from(parse(*argv))
    assert getattr(persona, name) == value
    others = {f.name for f in dataclasses.fields(Persona)} - {name}
    assert all(getattr(persona, n) == getattr(Persona(), n) for n in others)


def test_the_help_is_plain_text_with_every_default() -> None:
    parser = argparse.ArgumentParser()
    add_persona_options(parser)
    text = parser.format_help()
    assert "``" not in text and ":param" not in text
    assert "(default: 'LocalDefault')" in text and "(default: off)" in text


def test_lenient_is_no_strict() -> None:
    assert persona_from(parse("--lenient")).strict is False


def test_a_persona_file_is_a_base_the_flags_override(tmp_path: Path) -> None:
    path = tmp_path / "persona.toml"
    path.write_text('scope = "global"\nseed = 3\ndefault_pools = [["10.7.0.0/16", 26]]\n')
    persona = persona_from(parse("--persona", str(path), "--seed", "9"))
    assert (persona.scope, persona.seed) == ("global", 9)
    assert persona.default_pools == (("10.7.0.0/16", 26),)


def test_fallbacks_apply_only_where_nothing_was_given() -> None:
    assert persona_from(parse(), join_gateway=False).join_gateway is False
    assert persona_from(parse("--join-gateway"), join_gateway=False).join_gateway is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scoop = 1\n", r"persona file .*persona.toml: unknown persona field\(s\) \['scoop'\]"),
        ('seed = "7"\n', r"persona file .*: seed must be int, not '7'"),
        ('scope = "galactic"\n', r"persona file .*: scope must be 'local' or 'global'"),
        ("seed = \n", r"persona file .*persona.toml: "),
    ],
)
def test_a_bad_persona_file_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "persona.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        persona_from(parse("--persona", str(path)))


def test_a_bad_flag_value_names_the_field() -> None:
    with pytest.raises(ValueError, match="command line: scope must be 'local' or 'global'"):
        persona_from(parse("--scope", "galactic"))
    with pytest.raises(SystemExit):
        parse("--default-pools", "not json")
