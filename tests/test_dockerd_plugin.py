"""The managed (v2) plugin under a real dockerd: ``docker plugin create`` of the bundle
``fakedriver plugin build`` wrote, ``set``, ``enable``, a network and a container on it,
the control API reached from the host through the plugin's socket, ``disable`` and ``rm``.

dockerd (Linux) puts every managed plugin's socket in ``/run/docker/plugins/<id>/``,
whatever its ``--exec-root``; the id is random per ``plugin create``, so two runs never
share a socket. The plugin's name is a driver name only with its tag (``NAME:latest``).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dockerd_env import IMAGE, Dockerd, ManagedPlugin, run_name
from support.dockerd_versions import NOT_A_MANAGER, Expect
from support.rawhttp import connect, read_one
from support.rawhttp import request as raw_request

from fakedriver.cli.main import main
from fakedriver.plugin.bundle import DATA

pytestmark = pytest.mark.dockerd

NAME = run_name("fdmp")
DRIVER = f"{NAME}:latest"
BAKED = ["--links", "veth", "--log-format", "json", "--state", f"{DATA}/state.db"]


@pytest.fixture(scope="module")
def managed(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedPlugin]:
    base = tmp_path_factory.mktemp("managed")
    assert main(["plugin", "build", str(base / "bundle"), *BAKED]) == 0
    plugin = ManagedPlugin(dockerd, NAME, base / "data")
    try:
        plugin.install(base / "bundle")
        yield plugin
    finally:
        plugin.remove()


def test_the_driver_is_named_with_its_tag(managed: ManagedPlugin) -> None:
    """dockerd registers a managed plugin's drivers as NAME:latest only (20.10 to 28)."""
    done = managed.dockerd.docker(
        "network", "create", "-d", NAME, run_name("fdmpbare"), check=False
    )
    assert done.returncode != 0, done.stdout
    assert f"could not resolve driver {NAME} in registry" in done.stderr, done.stderr


def test_a_container_on_the_managed_plugin_gets_the_fakes_address(managed: ManagedPlugin) -> None:
    dockerd, network = managed.dockerd, run_name("fdmpnet")
    dockerd.docker("network", "create", "-d", DRIVER, "--ipam-driver", DRIVER, network)
    try:
        done = dockerd.docker("run", "--rm", "--network", network, IMAGE, "ip", "-o", "addr")
    finally:
        dockerd.docker("network", "rm", network, check=False)
    calls = managed.calls()
    methods = [call["method"] for call in calls]
    for method in (
        "IpamDriver.RequestPool",
        "NetworkDriver.CreateNetwork",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteNetwork",
        "IpamDriver.ReleasePool",
    ):
        assert method in methods, methods
    assert all(call["error"] is None for call in calls), calls
    (address,) = [
        call["response"]["Address"]
        for call in calls
        if call["method"] == "IpamDriver.RequestAddress" and call["request"]["Options"] is None
    ]
    assert f"inet {address}" in done.stdout, done.stdout
    assert managed.control("GET", "/fakedriver/leaks") == {"leaks": []}
    assert (managed.data / "state.db").is_file()  # the mounted host folder, seen inside


def test_a_fault_set_over_the_plugins_socket_reaches_the_docker_user(
    managed: ManagedPlugin,
) -> None:
    rule = {"method": "CreateNetwork", "message": "fault from the host", "times": 1}
    managed.control("POST", "/fakedriver/faults", rule)
    network = run_name("fdmpfault")
    try:
        done = managed.dockerd.docker("network", "create", "-d", DRIVER, network, check=False)
        assert done.returncode != 0 and "fault from the host" in done.stderr, done.stderr
        assert managed.control("GET", "/fakedriver/leaks") == {"leaks": []}
    finally:
        managed.control("DELETE", "/fakedriver/faults")
        managed.dockerd.docker("network", "rm", network, check=False)


def test_the_dashboard_of_the_managed_plugin_shows_its_journal(managed: ManagedPlugin) -> None:
    """``fakedriver dashboard plugin:NAME`` finds the plugin's socket as ``plugin socket``
    does, and its page's control requests reach the plugin's control API."""
    with subprocess.Popen(
        [sys.executable, "-m", "fakedriver", "dashboard", f"plugin:{NAME}"],
        env=managed.dockerd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as command:
        try:
            assert command.stdout is not None
            line = command.stdout.readline()
            found = re.search(r"on http://([^/]+)/\?key=(\S+)", line)
            assert found, (line, command.stderr.read() if command.poll() is not None else "")
            assert f"dashboard of unix://{managed.socket}" in line
            connection = http.client.HTTPConnection(found.group(1), timeout=30)
            key = {"X-Fakedriver-Key": found.group(2)}
            connection.request("GET", "/fakedriver/calls", headers=key)
            answer = connection.getresponse()
            calls = json.loads(answer.read())["calls"]
            connection.close()
        finally:
            command.terminate()
            command.wait(10)
    assert answer.status == 200
    assert "NetworkDriver.GetCapabilities" in [c["method"] for c in calls]  # dockerd's
    assert [c["method"] for c in calls] == [c["method"] for c in managed.calls()][: len(calls)]


def test_docker_plugin_set_args_reaches_the_persona(
    managed: ManagedPlugin, dockerd_does: Expect
) -> None:
    """``args`` make the plugin a global-scope driver. Outside swarm, dockerd before 24.0
    refuses a network of it after a CreateNetwork it rolls back; from 24.0 (one local
    store for every scope) the network is made, its pool in the global address space."""
    managed.restart("args=--scope global --connectivity-scope global --log-format json")
    network = run_name("fdmpglobal")
    try:
        (answer,) = [
            call["response"]
            for call in managed.calls()
            if call["method"] == "NetworkDriver.GetCapabilities"
        ]
        assert answer == {"Scope": "global", "ConnectivityScope": "global"}
        done = managed.dockerd.docker("network", "create", "-d", DRIVER, network, check=False)
        sent = [c for c in managed.calls() if c["method"].endswith("Network")]
        if dockerd_does.global_outside_swarm:
            assert done.returncode == 0, done.stderr
            (create,) = sent
            assert create["method"] == "NetworkDriver.CreateNetwork"
            assert [d["AddressSpace"] for d in create["request"]["IPv4Data"]] == ["GlobalDefault"]
        else:
            assert done.returncode != 0 and NOT_A_MANAGER in done.stderr, done.stderr
            methods = [c["method"] for c in sent]
            assert methods == ["NetworkDriver.CreateNetwork", "NetworkDriver.DeleteNetwork"]
            assert managed.state()["networks"] == {}
    finally:  # a plugin with a network is in use: it cannot be disabled
        managed.dockerd.docker("network", "rm", network, check=False)
        managed.restart("args=" + " ".join(BAKED))
    (answer,) = [
        call["response"]
        for call in managed.calls()
        if call["method"] == "NetworkDriver.GetCapabilities"
    ]
    assert answer["Scope"] == "local"


def _leaks_status(socket: Path, auth: str) -> int:
    with connect(str(socket), timeout=30) as sock:
        sock.sendall(
            raw_request("GET", "/fakedriver/leaks", headers=f"{auth}Content-Length: 0\r\n")
        )
        return read_one(sock).status


def test_a_token_file_on_the_data_mount_guards_the_control_api_and_shows_nowhere(
    managed: ManagedPlugin,
) -> None:
    """docs/plugin.md's recipe: the token in a 0600 file on the data mount, its path in
    args; docker plugin inspect shows the path, never the token."""
    token = uuid.uuid4().hex
    path = managed.data / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    managed.restart("args=" + " ".join([*BAKED, "--control-token-file", f"{DATA}/token"]))
    try:
        assert _leaks_status(managed.socket, "") == 401
        assert _leaks_status(managed.socket, f"Authorization: Bearer {token}\r\n") == 200
        inspect = managed.dockerd.docker("plugin", "inspect", NAME).stdout
        assert f"{DATA}/token" in inspect and token not in inspect
    finally:
        managed.restart("args=" + " ".join(BAKED))
        path.unlink()
    assert managed.control("GET", "/fakedriver/leaks") == {"leaks": []}  # no token again


def test_disable_and_rm_leave_nothing(managed: ManagedPlugin) -> None:
    socket = managed.socket
    managed.dockerd.docker("plugin", "disable", NAME, timeout=60)
    assert not socket.exists()
    managed.dockerd.docker("plugin", "rm", NAME, timeout=60)
    listed = managed.dockerd.docker("plugin", "ls", "--format", "{{json .}}").stdout
    assert NAME not in listed
    assert not socket.parent.exists() or not os.listdir(socket.parent)


def test_the_socket_of_an_unknown_plugin_is_a_clear_error(
    dockerd: Dockerd, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", dockerd.env["DOCKER_HOST"])
    assert main(["plugin", "socket", run_name("fdnosuch")]) == 2
    err = capsys.readouterr().err
    assert f"docker plugin inspect {run_name('fdnosuch')}:" in err and err[-1] == "\n", err
