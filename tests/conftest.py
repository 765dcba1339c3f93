"""Shared helpers: drive a FakeNetDriver over its WSGI interface, as a client would; a
short folder and ``fakedriver serve`` subprocesses in it; and the real dockerd the
``-m dockerd`` tests share."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerd_env import Dockerd, Unavailable, unavailable
from dockerd_versions import Expect, expect
from serve_env import Launcher, temporary_short_dir
from werkzeug.test import Client

from fakedriver import FakeNetDriver

NET = "n" * 64
EP = "e" * 64


class Wire:
    """Calls a fake through WSGI and checks the shape of every answer."""

    def __init__(self, fake: FakeNetDriver) -> None:
        self.fake = fake
        self.client = Client(fake)

    def raw(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        response = self.client.post(f"/{method}", data=body)
        answer = json.loads(response.get_data())
        assert isinstance(answer, dict), answer
        return response.status_code, answer

    def __call__(
        self, method: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        return self.raw(method, b"" if body is None else json.dumps(body).encode())

    def ok(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, answer = self(method, body)
        assert status == 200 and not answer.get(_key(method)), answer
        return answer

    def refused(self, method: str, body: dict[str, Any] | None = None, status: int = 200) -> str:
        """Assert the call is refused in the right dialect and changes nothing; return the text."""
        before = json.dumps(self.fake.state.snapshot(), sort_keys=True)
        got, answer = self(method, body)
        assert got == status, (got, answer)
        assert set(answer) == {_key(method)}, answer
        assert json.dumps(self.fake.state.snapshot(), sort_keys=True) == before
        return str(answer[_key(method)])

    # -- builders for the common lifecycle --------------------------------------------------
    def network(
        self,
        nid: str = NET,
        pool: str = "10.0.0.0/24",
        gateway: str = "10.0.0.1/24",
        v6: tuple[str, str] | None = None,
        **options: Any,
    ) -> None:
        body: dict[str, Any] = {
            "NetworkID": nid,
            "Options": {"com.docker.network.generic": {}, **options},
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": pool, "Gateway": gateway}],
            "IPv6Data": [],
        }
        if v6:
            body["IPv6Data"] = [{"AddressSpace": "LocalDefault", "Pool": v6[0], "Gateway": v6[1]}]
        self.ok("NetworkDriver.CreateNetwork", body)

    def endpoint(
        self,
        eid: str = EP,
        address: str = "10.0.0.2/24",
        nid: str = NET,
        v6: str = "",
        mac: str = "",
    ) -> dict[str, Any]:
        return self.ok(
            "NetworkDriver.CreateEndpoint",
            {
                "NetworkID": nid,
                "EndpointID": eid,
                "Options": {},
                "Interface": {"Address": address, "AddressIPv6": v6, "MacAddress": mac},
            },
        )

    def join(
        self, eid: str = EP, nid: str = NET, key: str = "/var/run/docker/netns/abc"
    ) -> dict[str, Any]:
        return self.ok(
            "NetworkDriver.Join",
            {
                "NetworkID": nid,
                "EndpointID": eid,
                "SandboxKey": key,
                "Options": {},
            },
        )


def _key(method: str) -> str:
    return "Error" if method.startswith("IpamDriver.") else "Err"


def ids(nid: str = NET, eid: str = EP) -> dict[str, str]:
    return {"NetworkID": nid, "EndpointID": eid}


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
