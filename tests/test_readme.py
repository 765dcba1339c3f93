"""The README stays true: its first lines are the two commands, the tests it quotes are the
tests that run, every scenario it shows is one the fake accepts, every cookbook line runs,
and its link list names every page of the documentation site (whose own blocks
``test_docs.py`` runs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cookbook import RECIPES, Recipe

from fakedriver import FakeNetDriver
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


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda recipe: recipe.id)
def test_each_cookbook_line_runs_and_makes_the_rule_the_daemon_test_sends(recipe: Recipe) -> None:
    """The README's recipe column is Python a user pastes: it runs, and the rule it makes
    is the one test_dockerd_faults.py sends through the control API."""
    fake = FakeNetDriver()
    scope: dict[str, Any] = {"fake": fake}
    exec(recipe.python, scope)  # a statement (gate = fake.hold(...)) or an expression
    (made,) = fake.faults.rules
    sent = rule_from_dict(dict(recipe.rule))
    assert (made.method, made.kind) == (sent.method, sent.kind)
    assert made.to_dict() == sent.to_dict()


def test_the_readme_links_every_docs_page() -> None:
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    linked = sorted(re.findall(r"\]\(docs/([\w-]+\.md)\)", README))
    assert linked == pages


def test_the_readme_shows_a_whole_test_with_a_fault() -> None:
    assert any("fake_netdriver.fail(" in code for code in QUOTED), "the front-door example"
