"""The documentation site stays true: every Python block in ``docs/`` either is a test of
``examples/`` (quoted verbatim, as the README's are, after a comment naming its file and
the imports it needs) or runs here as it stands, and says where every name it uses comes
from; every scenario it shows is one the fake accepts; the cookbook is the one run on
dockerd, and the table of dockerd versions is what the real-daemon tests assert; and the
site builds with ``mkdocs build --strict`` (where the ``docs`` extra is
installed), its API reference readable."""

from __future__ import annotations

import ast
import builtins
import html
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from support import dockerd_versions
from support.cookbook import RECIPES, Recipe, markdown

from fakedriver import FakeNetDriver
from fakedriver.core.faults import KINDS, rule_from_dict

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
    """The page and the block's test (or its first line that is not a comment)."""
    name, code = block
    lines = [line for line in code.strip().splitlines() if line and not line.startswith("#")]
    first = next((line for line in lines if line.startswith(("def ", "async def "))), lines[0])
    return f"{name}:{first[:40]}"


def test_there_are_pages_and_blocks() -> None:
    assert {p.name for p in PAGES} >= {"index.md", "tutorial.md", "faults.md", "api.md"}
    assert len(PYTHON) >= 10


QUOTED = [b for b in PYTHON if "def test_" in b[1] and "fails on purpose" not in b[1]]
#: The fixtures the pytest plugin itself gives: a test may take them without saying so.
PLUGIN_FIXTURES = {
    node.name
    for node in ast.parse((ROOT / "fakedriver" / "pytest_plugin.py").read_text()).body
    if isinstance(node, ast.FunctionDef)
    and any("fixture" in ast.unparse(d) for d in node.decorator_list)
}
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _split(code: str) -> tuple[str, str]:
    """A quoted test's header (its first comment, its imports) and the test itself."""
    lines = code.strip().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(("@", "def ", "async def ")))
    return "".join(lines[:start]), "".join(lines[start:])


def _imports(code: str) -> set[tuple[str, str]]:
    """``(module, name)`` for every name the code imports (``("", "requests")`` for a module)."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {("", alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {(node.module or "", alias.name) for alias in node.names}
    return found


def _defined(module: Path) -> set[str]:
    """The names a module binds at its top level."""
    names = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, (*FUNCTIONS, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names | {name.rpartition(".")[2] for _, name in _imports(module.read_text())}


def _unexplained(code: str) -> list[str]:
    """Names the block uses but neither binds nor says where they come from: a comment
    naming ``examples/FILE.py`` (which defines them) next to the names, or a fixture of
    the pytest plugin as a test's parameter."""
    tree = ast.parse(code)
    bound = set(dir(builtins))
    fixtures = set()  # a test's parameters: fixtures, from the plugin or said where
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (*FUNCTIONS, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        if isinstance(node, FUNCTIONS) and node.name.startswith("test_"):
            fixtures |= {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    loaded = {n.id for n in names if isinstance(n.ctx, ast.Load)}
    wanted = (loaded - bound) | (fixtures - PLUGIN_FIXTURES)
    for module, _ in _imports(code):  # an import from examples/ says which file it is
        if (ROOT / "examples" / f"{module}.py").exists() and f"examples/{module}.py" not in code:
            wanted.add(module)
    said = set()
    for comment in re.findall(r"#(.*)", code):
        for example in re.findall(r"examples/([\w/]+\.py)", comment):
            defined = _defined(ROOT / "examples" / example)
            said |= {n for n in re.findall(r"\w+", comment) if n in defined}
    return sorted(wanted - said)


@pytest.mark.parametrize("block", PYTHON, ids=_id)
def test_every_python_block_says_where_its_names_come_from(block: tuple[str, str]) -> None:
    """A reader can run a block, or knows where each name it uses is defined."""
    name, code = block
    assert _unexplained(code) == [], f"docs/{name}: names from nowhere"


@pytest.mark.parametrize("block", QUOTED, ids=_id)
def test_quoted_tests_are_the_example_tests(block: tuple[str, str]) -> None:
    """A quoted test names its example file first, is in it word for word, and imports
    what that file imports."""
    name, code = block
    header, test = _split(code)
    named = re.match(r"# examples/([\w/]+\.py)", header)
    assert named, f"docs/{name}: a quoted test starts with a comment naming its example file"
    example = (ROOT / "examples" / named.group(1)).read_text()
    assert test.strip() in example, f"docs/{name} quotes a test that {named.group(1)} does not have"
    assert _imports(header) <= _imports(example), f"docs/{name}: imports {named.group(1)} lacks"


def _tier(block: tuple[str, str]) -> Any:
    """A block that serves the fake on a real socket is in the socket tier."""
    marks = [pytest.mark.socket] if "serving(" in block[1] else []
    return pytest.param(block, marks=marks, id=_id(block))


@pytest.mark.parametrize("block", [_tier(b) for b in PYTHON if "def test_" not in b[1]])
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


def test_the_version_table_is_what_the_dockerd_tests_assert() -> None:
    """docs/dockerd.md's table, read back: a column per daemon we run, a row per
    difference of dockerd_versions (whose expectations the real-daemon tests assert, by
    the version their daemon reports), each cell what that daemon does, and the versions
    and sources of each change."""
    columns, rows = dockerd_versions.parse_table((ROOT / "docs" / "dockerd.md").read_text())
    assert columns == [*dockerd_versions.COLUMNS, "changed in"]
    assert list(rows) == [row.label for row in dockerd_versions.ROWS]
    for row in dockerd_versions.ROWS:
        *cells, changed = rows[row.label]
        for column, cell in zip(dockerd_versions.COLUMNS, cells, strict=True):
            version = dockerd_versions.COLUMNS[column]
            assert cell == row.at(version).cell, (row.label, column)
            assert dockerd_versions.parse_version(column) == version
        assert changed == row.changes(), row.label


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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built once with ``mkdocs build --strict``: CI's own build
    when ``FAKEDRIVER_DOCS_SITE`` names it (``.ci/run`` builds the site once, strictly, and
    the tests read that build), else a build of its own."""
    given = os.environ.get("FAKEDRIVER_DOCS_SITE")
    if given:
        assert (Path(given) / "index.html").is_file(), f"FAKEDRIVER_DOCS_SITE={given}: no site"
        return Path(given)
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    pytest.importorskip("mkdocstrings")
    if not (ROOT / "mkdocs.yml").exists():
        pytest.skip("no mkdocs.yml here")
    folder = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    if built.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{built.stderr}")
    return folder


def test_the_site_builds_strictly(site: Path) -> None:
    api = (site / "api" / "index.html").read_text()
    assert "One fault and its schedule" in api  # the reference is the docstrings
    assert "plugin busy" in (site / "faults" / "index.html").read_text()


def _signature(api: str, name: str) -> str:
    """The text of the signature shown under the heading of ``name`` on the API page."""
    heading = api.index(f'id="{name}"')
    block = re.search(r'<div class="doc-signature.*?</div>', api[heading:], re.DOTALL)
    assert block, f"no signature under {name}"
    return html.unescape(re.sub(r"<[^>]+>", "", block.group()))


def test_signatures_are_formatted_one_parameter_a_line(site: Path) -> None:
    """mkdocstrings formats a separate signature with ruff (or black) when one is
    installed, with the annotations linked to their entry in the reference."""
    if not any(importlib.util.find_spec(tool) for tool in ("ruff", "black")):
        pytest.skip("neither ruff nor black: mkdocstrings writes signatures on one line")
    api = (site / "api" / "index.html").read_text()
    signature = _signature(api, "fakedriver.FakeNetDriver.fail")
    assert signature.splitlines()[:3] == [
        "fail(",
        '    method: str = "*",',
        "    message: str | None = None,",
    ]
    assert signature.splitlines()[-1] == ") -> Rule"
    assert (
        'href="#fakedriver.Rule"' in api[api.index('id="fakedriver.FakeNetDriver.fail"') :][:4000]
    )


#: reST roles: mkdocstrings shows them as they are, so the docstrings link in Markdown
#: (``[`Rule`][fakedriver.Rule]``) instead.
REST_ROLE = re.compile(r":(class|attr|meth|func|data|mod|exc):(`|<code>)")


def test_the_api_reference_shows_no_rest_role(site: Path) -> None:
    text = (site / "api" / "index.html").read_text()
    shown = sorted({m.group() for m in REST_ROLE.finditer(text)})
    assert shown == [], f"{len(REST_ROLE.findall(text))} raw reST role(s) on the API page"
