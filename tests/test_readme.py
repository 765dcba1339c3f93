"""The README stays true: its first lines are the two commands, the tests it quotes are the
tests that run, and every scenario it shows is one the fake accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from fakedriver._faults import rule_from_dict

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.DOTALL)
EXAMPLES = "\n".join(p.read_text() for p in (ROOT / "examples").rglob("*") if p.is_file())


def test_the_first_lines_are_the_serve_and_test_commands() -> None:
    serve, test = README.splitlines()[:2]
    assert "fakedriver serve" in serve and "pip install -e ." in serve
    assert "python -m pytest" in test and "pip install -e '.[test]'" in test


QUOTED = [c for lang, c in BLOCKS if lang == "python" and "def test_" in c]


@pytest.mark.parametrize("code", [c for c in QUOTED if "fails on purpose" not in c])
def test_quoted_tests_are_the_example_tests(code: str) -> None:
    assert code.strip() in EXAMPLES, "the README quotes a test that examples/ does not have"


@pytest.mark.parametrize("code", [c for lang, c in BLOCKS if lang == "toml"])
def test_scenarios_in_the_readme_are_valid(code: str) -> None:
    data = tomllib.loads(code)
    assert data["fault"], "a scenario without faults"
    for table in data["fault"]:
        rule_from_dict(table)
