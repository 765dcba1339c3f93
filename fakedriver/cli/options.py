"""The persona as command-line options, generated from [`Persona`][fakedriver.Persona]'s fields, so
every field is reachable from ``fakedriver serve`` and each default is stated once (on the
dataclass). A ``--persona FILE`` (TOML, the shape of the pytest marker's keywords) gives a
base that the flags override."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import tomllib
from typing import Any

from ..core.persona import Persona
from ..server.files import ServeError
from .files import read_regular

#: Fields whose value is structured: given as JSON on the command line.
_JSON_FIELDS = {"default_pools", "static_routes"}


def _helps() -> dict[str, str]:
    """Each field's ``:param name:`` text from Persona's docstring, as plain text."""
    # without its indentation, as CPython 3.13 compiles a docstring (3.11 and 3.12 keep it)
    doc = inspect.cleandoc(Persona.__doc__ or "")
    found: dict[str, str] = {}
    for match in re.finditer(r":param ([a-z0-9_]+):(.*?)(?=\n:param |\Z)", doc, re.S):
        text = " ".join(match.group(2).split()).replace("``", "")
        found[match.group(1)] = text
    return found


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_persona_options(parser: argparse.ArgumentParser) -> None:
    """One option per persona field, all defaulting to "not given" (``None``)."""
    group = parser.add_argument_group(
        "persona (what the driver announces and how it behaves; every field of Persona)"
    )
    group.add_argument(
        "--persona",
        metavar="FILE",
        help="a TOML file of persona fields (as the pytest marker's keywords); "
        "the flags below override it",
    )
    helps = _helps()
    for f in dataclasses.fields(Persona):
        default = _default(f)
        text = helps[f.name]  # every field has its :param (tested)
        if f.name in _JSON_FIELDS:
            group.add_argument(
                _flag(f.name),
                metavar="JSON",
                type=_json,
                help=f"{text} (JSON; default: {json.dumps(default)})",
            )
        elif isinstance(default, bool):
            group.add_argument(
                _flag(f.name),
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{text} (default: {'on' if default else 'off'})",
            )
            if f.name == "strict":  # the name it had before the flags were generated
                group.add_argument(
                    "--lenient", dest="strict", action="store_false", help="same as --no-strict"
                )
        else:
            group.add_argument(
                _flag(f.name),
                type=type(default),
                metavar=f.name.upper(),
                help=f"{text} (default: {default!r})",
            )


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def persona_from(args: argparse.Namespace, **fallbacks: Any) -> Persona:
    """The persona the parsed options describe: the ``--persona`` file, then the flags
    given, then ``fallbacks`` for fields neither set, then the dataclass defaults."""
    values: dict[str, Any] = dict(fallbacks)
    if args.persona:
        values.update(load_persona_file(args.persona))
    for f in dataclasses.fields(Persona):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return make_persona(values, where="command line")


def load_persona_file(path: str) -> dict[str, Any]:
    """The persona fields of a TOML file; errors name the file."""
    try:
        data = tomllib.loads(read_regular(path, f"persona file {path}").decode())
    except ServeError as exc:  # not there, not readable, not a regular file
        raise ValueError(str(exc)) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"persona file {path}: {exc}") from None
    make_persona(data, where=f"persona file {path}")  # every error found here, named
    return data


def make_persona(values: dict[str, Any], where: str) -> Persona:
    """A Persona from plain values (lists for the tuple fields); errors say ``where``."""
    known = {f.name: f for f in dataclasses.fields(Persona)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown persona field(s) {unknown}; known: {sorted(known)}")
    fixed = dict(values)
    if "default_pools" in fixed:  # a pair that is not a list is Persona's to refuse
        pools = _list(fixed, "default_pools")
        fixed["default_pools"] = tuple(tuple(p) if isinstance(p, list) else p for p in pools)
    if "static_routes" in fixed:
        fixed["static_routes"] = tuple(_list(fixed, "static_routes"))
    for name, value in fixed.items():
        default = _default(known[name])
        if isinstance(default, bool | str | int) and type(value) is not type(default):
            wanted = type(default).__name__
            raise ValueError(f"{where}: {name} must be {wanted}, not {value!r}")
    try:
        return Persona(**fixed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _list(values: dict[str, Any], name: str) -> list[Any]:
    value = values[name]
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name} must be a list, not {value!r}")
    return list(value)
