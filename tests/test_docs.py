"""The documentation site stays true: every Python block in ``docs/`` either is a test of
``examples/`` (quoted verbatim, as the README's are) or runs here as it stands; every
scenario it shows is one the fake accepts; the cookbook is the one run on dockerd; and the
site builds with ``mkdocs build --strict`` (where the ``docs`` extra is installed)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cookbook import RECIPES, Recipe, markdown

from fakedriver import FakeNetDriver
from fakedriver._faults import KINDS, rule_from_dict

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCKS = [
    (page.name, lang, code)
    for page in PAGES
    for lang, code in re.findall(r"```(\w+)\n(.*?)```", page.read_text(), re.DOTALL)
]
EXAMPLES = "\n".join(p.read_text() for p in (ROOT / "examples").rglob("*") if p.is_file())
PYTHON = [(name, code) for name, lang, code in BLOCKS if lang == "python"]


def _id(block: tuple[str, str]) -> str:
    name, code = block
    return f"{name}:{code.strip().splitlines()[0][:40]}"


def test_there_are_pages_and_blocks() -> None:
    assert {p.name for p in PAGES} >= {"index.md", "tutorial.md", "faults.md", "api.md"}
    assert len(PYTHON) >= 10


QUOTED = [b for b in PYTHON if "def test_" in b[1] and "fails on purpose" not in b[1]]


@pytest.mark.parametrize("block", QUOTED, ids=_id)
def test_quoted_tests_are_the_example_tests(block: tuple[str, str]) -> None:
    name, code = block
    assert code.strip() in EXAMPLES, f"{name} quotes a test that examples/ does not have"


@pytest.mark.parametrize("block", [b for b in PYTHON if "def test_" not in b[1]], ids=_id)
def test_every_other_python_block_runs(block: tuple[str, str]) -> None:
    """Each block runs alone, in a fresh namespace: it imports what it uses."""
    name, code = block
    exec(compile(code, f"docs/{name}", "exec"), {"__name__": "docs_block"})


@pytest.mark.parametrize("code", [c for _, lang, c in BLOCKS if lang == "toml"])
def test_scenarios_in_the_docs_are_valid(code: str) -> None:
    data = tomllib.loads(code)
    assert data["fault"], "a scenario without faults"
    for table in data["fault"]:
        rule_from_dict(table)


def test_the_cookbook_is_the_one_run_on_dockerd() -> None:
    """The cookbook table of docs/faults.md is generated from cookbook.py, whose recipes
    test_dockerd_faults.py runs on a real dockerd: one shown row per fault kind."""
    assert markdown() in (ROOT / "docs" / "faults.md").read_text(), (
        "regenerate the table: python tests/cookbook.py"
    )
    shown = [r.kind for r in RECIPES if r.shown]
    assert sorted(shown) == sorted(KINDS) and len(shown) == len(set(shown))
    for recipe in RECIPES:
        rule_from_dict(recipe.rule)  # each is a rule the control API takes
        assert recipe.rule["kind"] == recipe.kind


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda recipe: recipe.id)
def test_each_cookbook_line_runs_and_makes_the_rule_the_daemon_test_sends(recipe: Recipe) -> None:
    """The cookbook's recipe column is Python a user pastes: it runs, and the rule it makes
    is the one test_dockerd_faults.py sends through the control API."""
    fake = FakeNetDriver()
    scope: dict[str, Any] = {"fake": fake}
    exec(recipe.python, scope)  # a statement (gate = fake.hold(...)) or an expression
    (made,) = fake.faults.rules
    sent = rule_from_dict(dict(recipe.rule))
    assert (made.method, made.kind) == (sent.method, sent.kind)
    assert made.to_dict() == sent.to_dict()


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    pytest.importorskip("mkdocstrings")
    if not (ROOT / "mkdocs.yml").exists():
        pytest.skip("no mkdocs.yml here")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert built.returncode == 0, built.stderr
    api = (tmp_path / "api" / "index.html").read_text()
    assert "One fault and its schedule" in api  # the reference is the docstrings
    assert "plugin busy" in (tmp_path / "faults" / "index.html").read_text()
