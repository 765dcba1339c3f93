"""The README stays true and short: at most 120 lines, its first two lines the serve and
test commands, the tests it quotes the tests that run, and its link list names every page
of the documentation site (whose own blocks, scenarios and cookbook ``test_docs.py``
checks; what the README held before, the server's operations, benchmarks, swarm, layout
and CI, is there now)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.DOTALL)
EXAMPLES = "\n".join(p.read_text() for p in (ROOT / "examples").rglob("*") if p.is_file())


SERVE = "pip install -e . && fakedriver serve --name fake --links veth"
TEST = "pip install -e '.[test]' && python -m pytest"


def test_the_first_lines_are_the_serve_and_test_commands() -> None:
    serve, test = README.splitlines()[:2]
    assert serve.strip().startswith(SERVE + " ") and "#" in serve, serve
    assert test.strip().startswith(TEST + " ") and "#" in test, test


def test_the_readme_is_a_front_door_of_at_most_120_lines() -> None:
    assert len(README.splitlines()) <= 120


QUOTED = [c for lang, c in BLOCKS if lang == "python" and "def test_" in c]


@pytest.mark.parametrize("code", [c for c in QUOTED if "fails on purpose" not in c])
def test_quoted_tests_are_the_example_tests(code: str) -> None:
    assert code.strip() in EXAMPLES, "the README quotes a test that examples/ does not have"


def test_the_readme_links_every_docs_page() -> None:
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    linked = sorted(re.findall(r"\]\(docs/([\w-]+\.md)\)", README))
    assert linked == pages


def test_the_readme_shows_a_whole_test_with_a_fault() -> None:
    assert any("fake_netdriver.fail(" in code for code in QUOTED), "the front-door example"
