"""A client library that is not imported costs nothing: its routing library and transport
are not loaded and nothing is patched; imported later while a route is active, it is
patched as its import ends, before anything can call it (a post-import hook that leaves
the module as it would be, and goes once nothing is watched)."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

import fakedriver
from fakedriver.transports import imports, registry

pytest_plugins = ["pytester"]

#: In a fresh interpreter: a route for aiohttp (and httpx) started before either library
#: is imported, then the library (or its routing library first) imported and called.
LATE_IMPORT = """
import asyncio, json, sys
import fakedriver

first = sys.argv[1]
with fakedriver.routed(url="http://plugin", clients=["aiohttp", "httpx"]) as fake:
    before = sorted(m for m in ("aiohttp", "aioresponses", "httpx", "respx",
        "fakedriver.transports.for_aiohttp", "fakedriver.transports.for_httpx") if m in sys.modules)
    __import__(first)  # the client, or its routing library (which imports the client)
    import aiohttp, httpx

    async def call():
        async with aiohttp.ClientSession() as session:
            async with session.post("http://plugin/Plugin.Activate") as answer:
                return answer.status

    status = asyncio.run(call())
    httpx_status = httpx.post("http://plugin/NetworkDriver.GetCapabilities").status_code
print(json.dumps({"before": before, "status": [status, httpx_status],
    "methods": fake.calls.methods,
    "patched after": aiohttp.ClientSession._request.__module__ != "aiohttp.client",
    "watching": fakedriver.transports.imports.watching()}))
"""


@pytest.mark.parametrize("first", ["aiohttp", "aioresponses", "httpx", "respx"])
def test_a_client_imported_while_routed_is_patched_as_it_is_imported(first: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LATE_IMPORT, first], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["before"] == []  # nothing of either client loaded by the route
    assert seen["status"] == [200, 200]
    assert seen["methods"] == ["Plugin.Activate", "NetworkDriver.GetCapabilities"]
    assert seen["patched after"] is False  # stopped with the route
    assert seen["watching"] is False  # the hook went with what it waited for


INNER_REQUESTS_ONLY = """
import sys
import requests

def test_requests(fake_netdriver):
    assert requests.post(fake_netdriver.url + "/Plugin.Activate").status_code == 200

def test_aiohttp_imported_in_the_test_body(fake_netdriver):
    import asyncio, aiohttp

    async def call():
        async with aiohttp.ClientSession() as session:
            async with session.post(fake_netdriver.url + "/Plugin.Activate") as answer:
                return answer.status

    assert asyncio.run(call()) == 200
    assert fake_netdriver.calls.methods == ["Plugin.Activate"]
"""

INNER_CONFTEST = """
import json, sys

def pytest_runtest_teardown(item):
    if item.name == "test_requests":
        loaded = [m for m in ("aiohttp", "aioresponses", "httpx", "respx") if m in sys.modules]
        with open("loaded.json", "w") as out:
            json.dump(loaded, out)

def pytest_unconfigure(config):
    import aiohttp, requests
    patched = [aiohttp.ClientSession._request.__module__ != "aiohttp.client",
               requests.Session.get_adapter.__module__ != "requests.sessions"]
    with open("patched.json", "w") as out:
        json.dump(patched, out)
"""


def test_a_suite_that_uses_requests_alone_loads_no_other_client(
    pytester: pytest.Pytester,
) -> None:
    """respx's own pytest plugin imports httpx and respx: without it (``-p no:respx``), a
    suite of requests alone loads neither, nor aiohttp; aiohttp imported in a test body
    is routed there; every patch is stopped when the session ends."""
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_REQUESTS_ONLY)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-p", "no:respx")
    result.assert_outcomes(passed=2)
    assert json.loads((pytester.path / "loaded.json").read_text()) == []
    assert json.loads((pytester.path / "patched.json").read_text()) == [False, False]


NOT_IMPORTED = """
import sys
import fakedriver
from fakedriver.transports import imports
assert "aiohttp" not in sys.modules
hooks = len(sys.meta_path)
for _ in range(200):
    with fakedriver.routed(url="http://plugin", clients=["aiohttp"]):
        assert imports.watching()
assert not imports.watching() and len(sys.meta_path) == hooks
assert not imports._WATCHED and "aiohttp" not in sys.modules
print("ok")
"""


def test_a_route_while_the_client_is_not_imported_leaves_nothing_behind() -> None:
    """Routes of a client not imported (in a process of its own: this one has imported
    aiohttp): watched while active, not after; nothing grows."""
    done = subprocess.run(
        [sys.executable, "-c", NOT_IMPORTED], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# -- the post-import hook ---------------------------------------------------------------------
def _module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(body)
    importlib.invalidate_caches()


def test_the_hook_runs_after_the_module_and_leaves_its_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"lazy_{tmp_path.name}"
    _module(tmp_path, name, "VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[tuple[str, int]] = []

    def imported(done: str) -> None:
        seen.append((done, sys.modules[done].VALUE))

    imports.watch([name], imported)
    try:
        module = importlib.import_module(name)
        assert seen == [(name, 1)]  # after its code ran, once
        assert type(module.__loader__).__name__ == "SourceFileLoader"
        assert module.__spec__ is not None and module.__spec__.loader is module.__loader__
        _module(tmp_path, name, "VALUE = 2\n")
        assert importlib.reload(module).VALUE == 2  # a reload works, and is seen again
        assert seen == [(name, 1), (name, 2)]
    finally:
        imports.unwatch([name], imported)
        sys.modules.pop(name, None)
    assert not imports.watching()


def test_a_failing_import_calls_nothing_and_fails_as_it_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"broken_{tmp_path.name}"
    _module(tmp_path, name, "raise RuntimeError('broken module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[str] = []
    imports.watch([name], seen.append)
    try:
        with pytest.raises(RuntimeError, match="broken module"):
            importlib.import_module(name)
        assert seen == [] and name not in sys.modules
        _module(tmp_path, name, "VALUE = 3\n")
        assert importlib.import_module(name).VALUE == 3
        assert seen == [name]
    finally:
        imports.unwatch([name], seen.append)
        sys.modules.pop(name, None)


# -- what a route costs ---------------------------------------------------------------------
def test_installed_libraries_are_looked_up_once_absent_ones_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    asked: list[str] = []

    def find_spec(name: str, *args: object) -> object:
        asked.append(name)
        return None if name in ("aiohttp", "aioresponses") else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert fakedriver.routed(url="http://plugin").clients == ("requests", "httpx")
    libraries = {name for _, needs, _ in registry.CLIENTS.values() for name in needs}
    assert sorted(asked) == sorted(libraries)
    asked.clear()
    for _ in range(3):
        assert fakedriver.routed(url="http://plugin").clients == ("requests", "httpx")
        assert fakedriver.routed(url="http://plugin", clients=["httpx"]).clients == ("httpx",)
    assert asked == []  # neither the installed nor the absent looked up again


def test_a_fake_no_rule_was_set_on_is_not_a_reference_cycle() -> None:
    """Freed when let go, with no garbage collection: a test suite makes one per test."""
    gc.disable()
    try:
        fake = fakedriver.FakeNetDriver()
        fake.handle("/Plugin.Activate", b"")
        gone = weakref.ref(fake)
        del fake
        assert gone() is None
    finally:
        gc.enable()


INNER_FIXTURES = """
import pytest

def test_alone(request, fake_netdriver):
    assert "fake_netdriver_factory" not in request.fixturenames  # one fixture to set up

def test_factory_first(fake_netdriver_factory, fake_netdriver):
    assert fake_netdriver_factory.fakes == [fake_netdriver]
    assert fake_netdriver.url == "http://fake-netdriver"

def test_fake_first(fake_netdriver, fake_netdriver_factory):
    second = fake_netdriver_factory()
    assert fake_netdriver_factory.fakes == [fake_netdriver, second]

def test_after(fake_netdriver_factory):
    assert fake_netdriver_factory.fakes == []
"""


def test_fake_netdriver_makes_the_factory_it_shares_with_the_factory_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_inner=INNER_FIXTURES)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


NESTED_INNER = """
def test_inner(fake_netdriver):
    assert fake_netdriver.url == "http://fake-netdriver"
"""

NESTED_OUTER = '''
import pytest
import requests

pytest_plugins = ["pytester"]

INNER = {inner!r}

def test_outer(request, pytester):
    pytester.makepyfile(test_inner=INNER)
    pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    fake = request.getfixturevalue("fake_netdriver")  # after the inner session's test
    cluster = request.getfixturevalue("fake_netdriver_cluster")
    from fakedriver.pytest_plugin import _clusters, _factories, _running
    assert _running == [request.node]  # the inner session's test is no longer run
    assert request.node.stash[_factories].fakes == [fake]
    assert request.node.stash[_clusters] is cluster
    requests.post(fake.url + "/Plugin.Activate", timeout=5).raise_for_status()
    fake.calls.assert_called("Plugin.Activate")
'''


def test_a_fixture_set_up_after_a_session_the_test_ran_is_the_tests_own(
    pytester: pytest.Pytester,
) -> None:
    """The routing fixtures find their test without pytest's ``request``: one a test sets up
    after it ran a pytest session in-process (whose own tests came and went) is its own."""
    pytester.makepyfile(test_outer=NESTED_OUTER.format(inner=NESTED_INNER))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
