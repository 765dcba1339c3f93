"""The package's layers hold: ``import fakedriver`` loads only what the in-process fake
needs, no module is part of an import cycle (nor is any package, among its siblings), and
the drawing of the layers in ``docs/contributing.md`` is the import-linter contract of
``pyproject.toml`` (``lint-imports`` in CI checks the contract itself)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fakedriver"

#: What ``import fakedriver`` must not load: the serving, persisting, cluster, CLI,
#: plugin and conformance layers, and every client library (each loaded when its client is
#: routed).
HEAVY = (
    "sqlite3",
    "h11",
    "fakedriver.server",
    "fakedriver.persist",
    "fakedriver.cluster",
    "fakedriver.cli",
    "fakedriver.plugin",
    "fakedriver.conformance",
    "requests",
    "httpx",
    "aiohttp",
    "responses",
    "respx",
    "aioresponses",
)

LEAN = f"""
import json, sys
import fakedriver
loaded = [name for name in {HEAVY!r} if name in sys.modules]
missing = []
for name in fakedriver.__all__:
    try:
        value = getattr(fakedriver, name)
    except AttributeError:
        missing.append(name)
        continue
    if isinstance(value, type) or callable(value):
        if value.__module__ != "fakedriver":
            missing.append(f"{{name}} shown at {{value.__module__}}")
print(json.dumps({{"loaded": loaded, "missing": missing, "listed": sorted(dir(fakedriver))}}))
"""


def test_import_fakedriver_loads_only_the_in_process_fake() -> None:
    """In a fresh interpreter: none of `HEAVY` is loaded by ``import fakedriver``; then
    every name of ``__all__`` resolves (the lazy ones load their module), each shown as
    ``fakedriver.X``, and ``dir()`` lists them all."""
    done = subprocess.run(
        [sys.executable, "-c", LEAN], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["loaded"] == []
    assert found["missing"] == []
    import fakedriver

    assert set(fakedriver.__all__) <= set(found["listed"])


# -- the import graph, as the source says it (every import statement, wherever it is) ------
def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _target(name: str) -> str | None:
    """The module of ours ``name`` is, or is in (``fakedriver.core.wire.Body`` is in
    ``fakedriver.core.wire``); ``None`` for another package's."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    """The modules of ours ``module`` imports: at the top, in functions, for type checking."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names]  # a module, or a name in one
        else:
            continue
        found |= {target for name in names if (target := _target(name)) is not None}
    return found - {module}


GRAPH = {module: imports(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    """The parsing above finds what it must (else no cycle could ever be found)."""
    assert "fakedriver.core.driver" in GRAPH["fakedriver.fake"]
    assert "fakedriver.core.wire" in GRAPH["fakedriver.persist.schema"]  # from ..core import wire
    assert "fakedriver" in GRAPH["fakedriver.cli.args"]  # from .. import __version__
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_in_an_import_cycle() -> None:
    assert cycles(GRAPH) == []


def _child(package: str, module: str) -> str | None:
    """The child of ``package`` that is ``module`` or holds it; ``None`` outside it."""
    prefix = package + "."
    if not module.startswith(prefix):
        return None
    return prefix + module[len(prefix) :].split(".")[0]


def test_no_package_is_in_an_import_cycle_with_its_siblings() -> None:
    """For each package, its children (a subpackage standing for all it holds) import one
    another without a cycle: a layer of siblings, as import-linter's acyclic contracts
    check them."""
    packages = [m for m, path in MODULES.items() if path.name == "__init__.py"]
    for package in packages:
        siblings: dict[str, set[str]] = {}
        for module, targets in GRAPH.items():
            source = _child(package, module)
            if source is None:
                continue
            for target in targets:
                other = _child(package, target)
                if other is not None and other != source:
                    siblings.setdefault(source, set()).add(other)
        assert cycles(siblings) == [], package


# -- the drawing is the contract -------------------------------------------------------------
def contract_layers() -> list[set[str]]:
    """The layers of pyproject's import-linter contract, top first, without the package."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [
        {name.strip().removeprefix("fakedriver.") for name in layer.split("|")}
        for layer in contract["layers"]
    ]


def drawn_layers() -> list[set[str]]:
    """The layers docs/contributing.md draws, top first: each row of boxes is a layer,
    its boxes the independent siblings."""
    page = (ROOT / "docs" / "contributing.md").read_text()
    (drawing,) = re.findall(r"```text\n(.*?)```", page, re.DOTALL)
    rows = [{cell.strip() for cell in line.split("|")} - {""} for line in drawing.splitlines()]
    return [row for row in rows if row and not line_art(row)]


def line_art(cells: set[str]) -> bool:
    """A row of box edges or arrows, not of names (``+---+``, ``v``)."""
    return all(set(cell) <= set("+-v^<> ") for cell in cells)


def test_the_drawing_of_the_layers_is_the_import_contract() -> None:
    assert drawn_layers() == contract_layers()


def test_every_module_of_the_package_is_in_a_layer() -> None:
    """A new top-level module or subpackage gets its place in the contract (and so in the
    drawing): nothing escapes the layers."""
    layered = set().union(*contract_layers())
    top = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").is_file())
    }
    assert top - {"__init__", "__main__"} == layered


def test_nothing_outside_the_core_reaches_past_a_driver() -> None:
    """A fake is its driver: no module outside ``fakedriver.core`` goes through
    ``.engine`` (the fake's deprecated alias of itself), and none takes another object's
    lock, as the control API took the driver's (``ruff --select SLF001`` refuses
    ``fake._lock`` too)."""
    reaching = []
    for module, path in MODULES.items():
        if module.startswith("fakedriver.core"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            own = isinstance(node.value, ast.Name) and node.value.id == "self"
            if node.attr == "engine" or (node.attr in ("lock", "_lock") and not own):
                reaching.append(f"{module}:{node.lineno} .{node.attr}")
    assert reaching == []
