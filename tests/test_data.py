"""The data the tests replay is in the repository, each file as its provenance says: the
table of ``tests/data/PROVENANCE.md`` and, for the captures the package ships, of
``fakedriver/conformance/data/PROVENANCE.md`` name every file there with its sha256 (a
file changed, added or dropped without its row fails here)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from fakedriver.conformance.session import capture

TESTS_DATA = Path(__file__).resolve().parent / "data"
PACKAGE_DATA = capture("20.10").parent
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \|.*\| `(?P<sha>[0-9a-f]{64})` \|$", re.MULTILINE)


def _table(folder: Path) -> dict[str, str]:
    return {m["name"]: m["sha"] for m in ROW.finditer((folder / "PROVENANCE.md").read_text())}


@pytest.mark.parametrize("folder", [TESTS_DATA, PACKAGE_DATA], ids=["tests", "package"])
def test_every_data_file_is_the_one_its_provenance_names(folder: Path) -> None:
    table = _table(folder)
    files = {p.name for p in folder.iterdir() if p.is_file() and p.name != "PROVENANCE.md"}
    assert files == set(table), "a file without its row in PROVENANCE.md, or a row without file"
    for name, sha in table.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, name
