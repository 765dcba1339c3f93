"""The fixtures the tests share: a fake and a :class:`~support.wire.Wire` on it, a short
folder and ``fakedriver serve`` subprocesses in it, and the real dockerd the ``-m dockerd``
tests share. The helpers themselves live in the ``support`` package beside this file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dockerd_env import Dockerd, Unavailable, unavailable
from support.dockerd_versions import Expect, expect
from support.serve_env import Launcher, temporary_short_dir
from support.tiers import TIERS, SocketSpy
from support.wire import Wire

from fakedriver import FakeNetDriver

SPY = SocketSpy()


def pytest_configure(config: pytest.Config) -> None:
    SPY.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    SPY.uninstall()


@pytest.fixture(autouse=True)
def _sockets_only_in_their_tier(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that listens on or connects a real socket carries a tier's marker (support.tiers):
    the fast tier, ``-m "not socket and not dockerd and not browser"``, opens none."""
    marked = any(request.node.get_closest_marker(name) for name in TIERS)
    seen: list[str] = []
    SPY.watch(None if marked else seen)
    yield
    SPY.watch(None)
    if seen:
        pytest.fail(
            f"{request.node.nodeid} opened a socket ({seen[0]}, {len(seen)} in all) "
            "but carries no tier marker: mark it socket (or dockerd, browser)",
            pytrace=False,
        )


@pytest.fixture
def fake() -> FakeNetDriver:
    return FakeNetDriver()


@pytest.fixture
def wire(fake: FakeNetDriver) -> Wire:
    return Wire(fake)


@pytest.fixture
def lenient() -> Wire:
    return Wire(FakeNetDriver(strict=False))


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """An isolated dockerd (see dockerd_env) with the image ``bb:local``, for the session."""
    if os.geteuid() != 0:
        unavailable("no real dockerd here: dockerd needs root")
    daemon = Dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        daemon.start()
        daemon.import_busybox()
    except Unavailable as exc:
        daemon.stop()
        unavailable(f"no real dockerd here: {exc}")
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def dockerd_does(dockerd: Dockerd) -> Expect:
    """What the session's dockerd does, by its version (dockerd_versions)."""
    return expect(dockerd.version())


@pytest.fixture(autouse=True)
def _sweep_the_daemon(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test on the session's dockerd, whatever it left there goes (containers,
    networks; the daemon is started again if the test left it down), so that one failure
    is one failure: the next test starts on a clean daemon."""
    yield
    uses = "dockerd" in request.fixturenames  # the fixture (a parameter may share the name)
    if uses and request.node.get_closest_marker("dockerd") is not None:
        daemon: Dockerd = request.getfixturevalue("dockerd")
        left = daemon.sweep()
        if left:
            print(f"swept after {request.node.name}: {' '.join(left)}")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh folder with a short path (AF_UNIX socket paths are limited to 108 bytes)."""
    with temporary_short_dir() as folder:
        yield folder


@pytest.fixture
def serve(short_dir: Path) -> Iterator[Launcher]:
    """Starts ``fakedriver serve ARGS`` in ``short_dir``; ends all it started at teardown."""
    launcher = Launcher(short_dir)
    yield launcher
    launcher.kill_all()
