"""The request fields of each method (``_methods.TABLE``: what a fault's ``match`` may
name), held to what dockerd really sends: the captures of dockerd 20.10 and 28.3 the
package ships (``fakedriver/conformance/data``) and the protocol notes,
``tests/data/protocol.md``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fakedriver.conformance import session
from fakedriver.core.methods import TABLE

#: Debian's dockerd 20.10 and dockerd 28.3.3, the same 48 steps.
CAPTURES = [session.capture("20.10"), session.capture("28")]
PROTOCOL = Path(__file__).resolve().parent / "data" / "protocol.md"


def _read(path: Path) -> str:
    return path.read_text()


def _sent(path: Path) -> dict[str, set[str]]:
    """Each method in a capture -> every top-level key of its requests."""
    keys: dict[str, set[str]] = {}
    for line in _read(path).splitlines():
        record = json.loads(line) if line.strip() else {}
        if "path" not in record:
            continue  # a marker of the docker CLI step
        body = record["body"]
        assert body is None or isinstance(body, dict), record
        keys.setdefault(record["path"].lstrip("/"), set()).update(body or ())
    return keys


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda path: path.name)
def test_every_field_dockerd_sends_is_a_field_of_its_method(capture: Path) -> None:
    sent = _sent(capture)
    assert len(sent) >= 17, sorted(sent)  # every method a plain (non-swarm) daemon sends
    for method, keys in sent.items():
        assert method in TABLE, method
        assert keys <= set(TABLE[method].fields), (method, keys - set(TABLE[method].fields))


def _documented(notes: str, method: str) -> set[str]:
    """The top-level keys of the request protocol.md gives for ``method``: the first
    object after "<Method> request: " or "Request: " in the section headed by its name."""
    short = method.partition(".")[2]
    heading = re.search(rf"^### [0-9.]+ .*\b{short}\b.*$", notes, re.MULTILINE)
    assert heading is not None, f"protocol.md has no section for {method}"
    section = notes[heading.end() :].split("\n### ", 1)[0]
    start = re.search(rf"(?:{short} request|Request): `", section)
    assert start is not None, f"protocol.md gives no request of {method}"
    keys: set[str] = set()
    depth = 0
    for token in re.finditer(r'[{}\[\]]|"(\w+)":', section[start.end() :]):
        if token[0] in "{[":
            depth += 1
        elif token[0] in "}]":
            depth -= 1
            if depth == 0:
                return keys
        elif depth == 1:
            keys.add(token[1])
    raise AssertionError(f"protocol.md's request of {method} does not end")


def test_every_listed_field_is_one_dockerd_sends() -> None:
    """A field no capture shows (the swarm and GwAllocCheck calls) is a key of the request
    protocol.md gives for that method."""
    sent: dict[str, set[str]] = {}
    for capture in CAPTURES:
        for method, keys in _sent(capture).items():
            sent.setdefault(method, set()).update(keys)
    notes = _read(PROTOCOL)
    for method, row in TABLE.items():
        unseen = set(row.fields) - sent.get(method, set())
        if unseen:
            assert unseen <= _documented(notes, method), (method, unseen)
        assert not row.no_arguments or not row.fields, method
