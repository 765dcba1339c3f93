"""The pytest plugin of fakedriver, registered through the ``pytest11`` entry point
(``pip install fakedriver[pytest]``; from a checkout, ``pytest_plugins = ["conftest_plugin"]``).

Fixtures:

* ``fake_netdriver``: a [`fakedriver.FakeNetDriver`][fakedriver.FakeNetDriver] for one test, with
  ``requests`` calls to ``fake_netdriver.url`` routed to it in-process (see
  [`fakedriver.Route`][fakedriver.Route]). Every installed client is routed: ``requests`` (through
  ``responses``), ``httpx`` sync and async (through respx, with ``fakedriver[httpx]``) and
  ``aiohttp`` (through aioresponses, with ``fakedriver[aiohttp]``); a client installed without its
  routing library fails the fixture with [`fakedriver.MissingExtra`][fakedriver.MissingExtra]
  (unless ``clients`` leaves it out), as its calls would reach the network.
* ``fake_netdriver_server``: a fresh fake served on a real unix socket (and loopback TCP
  with the marker's ``tcp=True``) in a background thread, through the same server code
  as ``fakedriver serve``: for a client in another process (curl, a Go binary, dockerd).
  The sockets are the session's (per xdist worker), each serving one test's fake at a
  time: at teardown its held calls are released and its connections end. It is a
  [`fakedriver.Served`][fakedriver.Served]: ``.fake``, ``.socket_path``, ``.url``, ``.tcp_url``.
* ``fake_netdriver_factory``: call it for more fakes, or ones with another persona:
  ``fake_netdriver_factory(scope="global", url="http://overlay")``; its ``served()``
  makes more served fakes.
* ``fake_netdriver_cluster``: a [`fakedriver.Cluster`][fakedriver.Cluster] of 3 node fakes (global
  scope), each routed at its own URL (``cluster.urls``), for an orchestrator of many
  hosts; marker ``@pytest.mark.fake_netdriver_cluster(nodes=5, **options)`` takes persona
  options and ``audit``, ``url``, ``clients``. Its partitions are healed at teardown.

Marker ``@pytest.mark.fake_netdriver(**options)`` sets persona options (``scope``,
``ipam``, ``strict``, ...) and the plugin's own: ``audit`` (run ``assert_clean()`` at
teardown), ``assert_all_fired`` (run ``fake.faults.assert_all_fired()`` at teardown),
``url``, ``socket``, ``clients`` (which libraries to route), ``tcp`` (for the served
fake) and ``faults`` (a TOML fault scenario, relative to the test file). ini options give
the defaults: ``fake_netdriver_strict``, ``fake_netdriver_audit``,
``fake_netdriver_seed``, ``fake_netdriver_clients`` and ``fake_netdriver_url``.

When a test that used a fake fails, its report gets a "fake_netdriver journal" section;
one that used a cluster, a "fake_netdriver_cluster timeline" section (the merged timeline
and the cluster's audit). Either ends with the path of the test's *picture*: one
self-contained HTML file (the dashboard's views, the data inlined: a cluster's nodes as
lanes, its partitions shaded) in ``.fakedriver-reports/`` under pytest's rootdir, or the
folder of ``--fakedriver-report-dir DIR`` (relative to where pytest runs) or of the ini
option ``fake_netdriver_report_dir`` (relative to the rootdir); an empty one writes none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import re
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakedriver import Cluster, FakeNetDriver, Persona, Route, Served, serving
from fakedriver.server.serving import ServedPool
from fakedriver.transports import registry

_factories = pytest.StashKey["FakeNetDriverFactory"]()
_passed = pytest.StashKey[bool]()
_clusters = pytest.StashKey[Cluster]()
_pool = pytest.StashKey[ServedPool]()

#: Where failing tests' pictures go by default, under pytest's rootdir.
REPORT_DIR = ".fakedriver-reports"
#: The fixtures that route clients: between tests that use one, each client library's
#: patch stays started (reset, not stopped: see ``registry.keep()``).
_ROUTING = frozenset({"fake_netdriver", "fake_netdriver_factory", "fake_netdriver_cluster"})
_PERSONA = tuple(field.name for field in dataclasses.fields(Persona))
_CHECKS = ("audit", "assert_all_fired")
#: Where options are given -> the plugin's own options there (the persona's fields too).
_OWN = {
    "@pytest.mark.fake_netdriver": (*_CHECKS, "url", "socket", "clients", "tcp", "faults"),
    "fake_netdriver_factory()": (*_CHECKS, "url", "socket", "clients", "faults"),
    "fake_netdriver_factory.served()": (*_CHECKS, "url", "socket", "clients", "tcp", "faults"),
    "@pytest.mark.fake_netdriver_cluster": ("nodes", "persona", "audit", "url", "clients"),
}


def _check_options(where: str, names: Iterable[str]) -> None:
    """Refuse options ``where`` does not take (a typo would otherwise surface as a
    ``Persona`` error naming neither the marker nor the option meant), with the nearest."""
    own = _OWN[where]
    unknown = [name for name in names if name not in own and name not in _PERSONA]
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, [*own, *_PERSONA], n=1)
        parts.append(f"{name!r}{f' (did you mean {close[0]!r}?)' if close else ''}")
    raise TypeError(
        f"{where}: unknown option {', '.join(parts)}; it takes {', '.join(own)} and the "
        f"persona's fields: {', '.join(_PERSONA)}"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "fake_netdriver_strict",
        "refuse lifecycle violations (default true)",
        type="bool",
        default=True,
    )
    parser.addini(
        "fake_netdriver_audit",
        "assert_clean() every fake at teardown (default false)",
        type="bool",
        default=False,
    )
    parser.addini("fake_netdriver_seed", "seed for generated values (default 0)", default="0")
    parser.addini(
        "fake_netdriver_clients",
        "client libraries the fixtures route (default: every one installed)",
        type="args",
        default=[],
    )
    parser.addini(
        "fake_netdriver_url",
        "base URL of the first fake (default http://fake-netdriver)",
        default="http://fake-netdriver",
    )
    parser.addini(
        "fake_netdriver_report_dir",
        "where a failing test's picture (an HTML file) goes, relative to the rootdir "
        f"(default {REPORT_DIR}; empty: none)",
        default=REPORT_DIR,
    )
    parser.getgroup("fakedriver").addoption(
        "--fakedriver-report-dir",
        metavar="DIR",
        default=None,
        help="write each failing test's picture (an HTML file of its fakes' calls and "
        f"state) in DIR (default: the fake_netdriver_report_dir ini option, {REPORT_DIR} "
        "under the rootdir); --fakedriver-report-dir= writes none",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fake_netdriver(**options): persona options for the fake_netdriver fixtures, plus "
        "audit=True/False, assert_all_fired=True/False, url=..., socket=..., clients=[...], "
        "tcp=True/False, faults='scenario.toml'",
    )
    config.addinivalue_line(
        "markers",
        "fake_netdriver_cluster(nodes=3, **options): the fake_netdriver_cluster fixture's "
        "node count and persona options, plus audit=True/False, url=..., clients=[...]",
    )


class FakeNetDriverFactory:
    """Makes routed fakes for one test and takes them down after it: the
    ``fake_netdriver_factory`` fixture. Annotate with it::

        from fakedriver.pytest_plugin import FakeNetDriverFactory

        def test_two(fake_netdriver_factory: FakeNetDriverFactory) -> None: ...
    """

    def __init__(
        self,
        config: pytest.Config,
        marker: pytest.Mark | None,
        root: Path,
        pool: ServedPool | None = None,
    ) -> None:
        self._root = root  # scenario files are found relative to the test's folder
        self._pool = pool  # where served fakes go (None: each on a socket of its own)
        defaults, self._url, ini_clients = _ini(config)
        self._defaults: dict[str, Any] = dict(defaults)
        if marker is not None:
            _check_options("@pytest.mark.fake_netdriver", marker.kwargs)
            self._defaults.update(marker.kwargs)
            self._url = str(self._defaults.pop("url", self._url)).rstrip("/")
        self._socket = self._defaults.pop("socket", None)
        self._faults = self._defaults.pop("faults", None)
        self._clients = self._defaults.pop("clients", ini_clients)
        self._tcp = bool(self._defaults.pop("tcp", False))
        #: each fake's route (or served fake), and its teardown checks (audit, all fired)
        self._routes: list[tuple[Route, tuple[bool, bool]]] = []
        self._served: list[tuple[Served, tuple[bool, bool]]] = []
        self._stack: contextlib.ExitStack | None = None  # made by the first served fake

    @property
    def fakes(self) -> list[FakeNetDriver]:
        """Every fake made for this test, routed ones first."""
        routed = [route.fake for route, _ in self._routes]
        return routed + [served.fake for served, _ in self._served]

    def _make(self, persona: Persona | None, options: dict[str, Any]) -> FakeNetDriver:
        faults = options.pop("faults", None)
        if persona is None:
            persona = _persona(options)
            options = {}
        fake = FakeNetDriver(persona, **options)
        if faults is not None:
            fake.faults.load(str(self._root / faults))
        return fake

    def __call__(self, persona: Persona | None = None, **options: Any) -> FakeNetDriver:
        """A new fake, routed and active until the test ends.

        :param persona: a base persona; ``options`` override its fields.
        :param options: persona fields, and ``audit``, ``assert_all_fired``, ``url``,
            ``socket``, ``clients``, ``faults``.
        """
        _check_options("fake_netdriver_factory()", options)
        merged = {**self._defaults, **options}
        checks = self._checks(merged)
        first = not self._routes
        url = merged.pop("url", self._url if first else f"{self._url}-{len(self._routes) + 1}")
        socket = merged.pop("socket", self._socket if first else None)
        clients = merged.pop("clients", self._clients)
        merged.setdefault("faults", self._faults if first else None)
        route = Route(self._make(persona, merged), url, socket, clients)
        route.start()
        self._routes.append((route, checks))
        return route.fake

    def served(self, persona: Persona | None = None, **options: Any) -> Served:
        """A new fake served on a real socket until the test ends (see
        [`fakedriver.serving()`][fakedriver.serving]); ``options`` as for a routed fake, plus
        ``tcp``."""
        _check_options("fake_netdriver_factory.served()", options)
        merged = {**self._defaults, **options}
        checks = self._checks(merged)
        tcp = bool(merged.pop("tcp", self._tcp))
        for key in ("url", "socket", "clients"):
            merged.pop(key, None)
        merged.setdefault("faults", self._faults if not self._served else None)
        serve = self._pool.serving if self._pool is not None else serving
        if self._stack is None:
            self._stack = contextlib.ExitStack()
        served = self._stack.enter_context(serve(self._make(persona, merged), tcp=tcp))
        self._served.append((served, checks))
        return served

    @staticmethod
    def _checks(options: dict[str, Any]) -> tuple[bool, bool]:
        """Take the teardown checks out of ``options``: (audit, assert all fired)."""
        return bool(options.pop("audit", False)), bool(options.pop("assert_all_fired", False))

    def close(self, passed: bool) -> None:
        """Stop every route and served fake; after a test that ``passed``, run the checks
        each fake asked for (``audit``, ``assert_all_fired``)."""
        __tracebackhide__ = True
        for route, _ in reversed(self._routes):
            route.stop()
        if self._stack is not None:
            self._stack.close()
        if passed:
            made = [(r.fake, c) for r, c in self._routes] + [(s.fake, c) for s, c in self._served]
            for fake, (audit, all_fired) in made:
                if all_fired:
                    fake.faults.assert_all_fired()
                if audit:
                    fake.assert_clean()

    def places(self) -> list[tuple[FakeNetDriver, str]]:
        """Every fake made for this test, with where it is reached (its URL, or socket)."""
        made = [(r.fake, r.url) for r, _ in self._routes]
        return made + [(s.fake, s.socket_path) for s, _ in self._served]

    def report(self) -> str:
        """The journal of every fake, for a failing test's report."""
        parts = []
        for fake, where in self.places():
            head = f"fake at {where} (seed {fake.persona.seed}, strict={fake.persona.strict})"
            violations = "".join(f"  ~ {v}\n" for v in fake.violations)
            parts.append(f"{head}\n{fake.calls.format()}{violations}")
        return "\n".join(parts)


_ini_key = pytest.StashKey[tuple[dict[str, Any], str, Any]]()


def _ini(config: pytest.Config) -> tuple[dict[str, Any], str, Any]:
    """The ini options a factory starts from (persona and checks; the URL; the clients),
    read once per session: they do not change while it runs."""
    ini = config.stash.get(_ini_key, None)
    if ini is None:
        defaults = {
            "strict": config.getini("fake_netdriver_strict"),
            "seed": int(config.getini("fake_netdriver_seed")),
            "audit": config.getini("fake_netdriver_audit"),
        }
        url = str(config.getini("fake_netdriver_url")).rstrip("/")
        clients = config.getini("fake_netdriver_clients") or None
        ini = config.stash[_ini_key] = (defaults, url, clients)
    return ini


#: Personas made from the same options, by their options: a persona checks every field
#: when it is made, and most tests of a suite ask for the same one.
_personas: dict[tuple[tuple[str, Any], ...], Persona] = {}


def _persona(options: dict[str, Any]) -> Persona:
    """``Persona(**options)``, made once for each set of options that can be a key."""
    key = tuple(sorted(options.items()))
    try:
        made = _personas.get(key)
    except TypeError:  # a list or a dict among the values: made each time
        return Persona(**options)
    if made is None:
        if len(_personas) >= 64:
            _personas.clear()
        made = _personas[key] = Persona(**options)
    return made


@pytest.fixture
def fake_netdriver_factory(request: pytest.FixtureRequest) -> Iterator[FakeNetDriverFactory]:
    """A factory of routed ``FakeNetDriver`` instances for this test."""
    factory, made = _factory(request.node)
    yield factory
    if made:
        factory.close(passed=request.node.stash.get(_passed, False))


def _factory(item: pytest.Item) -> tuple[FakeNetDriverFactory, bool]:
    """The factory of the test ``item``, and whether it is made now: the fixture that
    makes it (the first of ``fake_netdriver_factory`` and ``fake_netdriver`` set up, so
    the last torn down) closes it. ``fake_netdriver`` makes it itself, not through the
    factory fixture: one fixture less to set up and tear down, for every test."""
    factory = item.stash.get(_factories, None)
    if factory is not None:
        return factory, False
    config = item.config
    marker = item.get_closest_marker("fake_netdriver")
    factory = FakeNetDriverFactory(config, marker, item.path.parent, _served_pool(config))
    item.stash[_factories] = factory
    return factory, True


def _served_pool(config: pytest.Config) -> ServedPool:
    """The session's sockets for served fakes (one pytest process's: each xdist worker
    has its own), made at first use, stopped when the session ends."""
    pool = config.stash.get(_pool, None)
    if pool is None:
        pool = config.stash[_pool] = ServedPool()
        config.add_cleanup(pool.close)
    return pool


def _item(fixture: str) -> pytest.Item:
    """The test a fixture is set up for: the one being run (see `_running`). The routing
    fixtures find it there rather than ask for pytest's ``request``: a fixture that asks
    for ``request`` costs pytest about as much again as one that does not."""
    if not _running:
        raise RuntimeError(f"{fixture} is set up only while pytest runs a test")
    return _running[-1]


@pytest.fixture
def fake_netdriver() -> Iterator[FakeNetDriver]:
    """A ``FakeNetDriver`` routed at ``fake_netdriver.url`` for this test (the first fake
    of its ``fake_netdriver_factory``)."""
    item = _item("fake_netdriver")
    factory, made = _factory(item)
    try:
        yield factory()
    finally:
        if made:
            factory.close(passed=item.stash.get(_passed, False))


@pytest.fixture
def fake_netdriver_server(fake_netdriver_factory: FakeNetDriverFactory) -> Served:
    """A fresh ``FakeNetDriver`` served on a real unix socket for this test (see
    [`fakedriver.Served`][fakedriver.Served]). The socket is the session's (one per
    ``tcp`` flavour, per xdist worker), served by this test's fake alone: at teardown its
    held calls are released and every connection that reached it ends."""
    return fake_netdriver_factory.served()


@pytest.fixture
def fake_netdriver_cluster() -> Iterator[Cluster]:
    """A [`fakedriver.Cluster`][fakedriver.Cluster] routed for this test: ``nodes`` fakes (3 by
    default), each at its own URL; at teardown its partitions heal and held calls go on, and with
    ``audit=True`` (or the ``fake_netdriver_audit`` ini option) ``assert_clean()`` runs."""
    item = _item("fake_netdriver_cluster")
    config, marker = item.config, item.get_closest_marker("fake_netdriver_cluster")
    options: dict[str, Any] = {
        "strict": config.getini("fake_netdriver_strict"),
        "seed": int(config.getini("fake_netdriver_seed")),
        "audit": config.getini("fake_netdriver_audit"),
        "url": str(config.getini("fake_netdriver_url")),
        "clients": config.getini("fake_netdriver_clients") or None,
    }
    if marker is not None:
        _check_options("@pytest.mark.fake_netdriver_cluster", marker.kwargs)
        options.update(marker.kwargs)
    audit = bool(options.pop("audit"))
    where = {key: options.pop(key) for key in ("nodes", "url", "clients") if key in options}
    if options.get("persona") is None:  # the persona Cluster() would make, made once
        options.pop("persona", None)
        options = {"persona": _persona({"scope": "global", **options})}
    cluster = Cluster(**where, **options)
    item.stash[_clusters] = cluster
    with cluster:
        yield cluster
    if audit and item.stash.get(_passed, False):
        cluster.assert_clean()


#: The tests being run, the innermost last: a test, from its setup to its teardown's
#: report (a test may run a pytest session of its own, whose tests come and go above it).
_running: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Keep the client libraries' patches started for a test that routes (the first one
    starts them, the next ones find them started); a test that does not gets them
    stopped, as they are outside pytest. The test is the one being run from now on."""
    _running.append(item)
    registry.keep(not _ROUTING.isdisjoint(getattr(item, "fixturenames", ())))


def pytest_sessionfinish(session: pytest.Session) -> None:
    registry.keep(False)


@pytest.hookimpl(hookwrapper=True)  # not wrapper=True: the pluggy of pytest 7.2 has none
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    report: pytest.TestReport = (yield).get_result()
    when, stash = report.when, item.stash
    if when == "call":  # the audit runs only after a test that passed
        stash[_passed] = report.outcome == "passed" and not hasattr(report, "wasxfail")
    if report.outcome != "failed":
        if when == "teardown":  # the test's fakes go with it, not with the session
            _forget(item)
        return
    try:
        _report(item, report)
    finally:
        if when == "teardown":
            _forget(item)


def _forget(item: pytest.Item) -> None:
    """The test ends: it is no longer being run; let its fakes go (its factory, its
    cluster)."""
    running = _running
    if running and running[-1] is item:
        running.pop()
    elif item in running:  # and the tests of a session it ran that did not end
        del running[running.index(item) :]
    stash = item.stash
    if _factories in stash:
        del stash[_factories]
    if _clusters in stash:
        del stash[_clusters]


def _report(item: pytest.Item, report: pytest.TestReport) -> None:
    """Add the journal (or timeline) and the picture to a failing test's report."""
    factory = item.stash.get(_factories, None)
    fakes = factory.fakes if factory is not None else []
    cluster = item.stash.get(_clusters, None)
    if not fakes and cluster is None:
        return
    picture = _picture(item, report, factory, cluster)
    seen = f"\npicture: {picture}\n" if picture is not None else ""
    if factory is not None and fakes:
        report.sections.append(("fake_netdriver journal", factory.report() + seen))
    if cluster is not None:
        report.sections.append(("fake_netdriver_cluster timeline", cluster.report() + seen))


def _report_dir(config: pytest.Config) -> Path | None:
    """Where pictures go (``None``: nowhere)."""
    given = config.getoption("fakedriver_report_dir")
    if given is not None:
        return config.invocation_params.dir / given if given else None
    folder = str(config.getini("fake_netdriver_report_dir"))
    return config.rootpath / folder if folder else None


def _picture(
    item: pytest.Item,
    report: pytest.TestReport,
    factory: FakeNetDriverFactory | None,
    cluster: Cluster | None,
) -> Path | None:
    """Write the failing test's picture; its path (``None`` when turned off)."""
    folder = _report_dir(item.config)
    if folder is None:
        return None
    from fakedriver.server.page import fake_data, render

    lanes: list[dict[str, Any]] = []
    data: dict[str, Any] = {"failure": report.longreprtext[-20000:], "order": None, "cuts": []}
    if cluster is not None:
        names = list(cluster.nodes)
        lanes += [fake_data(fake, name) for name, fake in cluster.nodes.items()]
        data["order"] = [[names.index(c.node), c.call.index] for c in list(cluster.calls)]
        data["cuts"] = [
            {"lane": names.index(c.node), "mode": c.mode, "start": c.start, "end": c.end}
            for c in cluster.cuts
        ]
        data["audit"] = cluster.leaks()
    if factory is not None and factory.fakes:
        lanes += [fake_data(fake, where) for fake, where in factory.places()]
        if cluster is not None:
            data["order"] = None  # the cluster's nodes and other fakes: by time
    data["lanes"] = lanes
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")[:120]
    digest = hashlib.sha1(item.nodeid.encode()).hexdigest()[:8]
    path = folder / f"{name}-{digest}.html"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(render(item.nodeid, data=data), encoding="utf-8")
    return path
