"""fakedriver under a real dockerd: the recorded scenario, re-run, and what it must survive.

These start an isolated dockerd (whichever ``dockerd`` is first on ``PATH``) and
``fakedriver serve --links veth --state FILE``, and assert what the daemon's version
does (``dockerd_versions``). Where dockerd cannot run they skip with the reason; with
``FAKEDRIVER_REQUIRE_DOCKERD=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.dockerd_env import IMAGE, Dockerd, Plugin, host_lock, run_name, unavailable
from support.dockerd_versions import Expect, retime

from fakedriver.conformance.session import capture

pytestmark = pytest.mark.dockerd

#: The captures of the 48 steps, shipped with the package (data/PROVENANCE.md); each is
#: also replayed in-process (test_dockerd_replay.py).
CAPTURES = capture("20.10").parent
NAME = run_name("fdt")


@pytest.fixture(scope="module")
def plugin(dockerd: Dockerd) -> Iterator[Plugin]:
    served = Plugin(NAME, dockerd.base, "--links", "veth")
    served.start()
    yield served
    served.stop()


# -- the recorded scenario, re-run -------------------------------------------------------
def _capture_steps(capture: Path) -> list[dict[str, Any]]:
    """The capture's steps: argv, expectation, and the plugin calls each one caused."""
    steps: dict[int, dict[str, Any]] = {}
    current = None
    for line in capture.read_text().splitlines():
        record = json.loads(line)
        if record.get("marker") == "begin":
            current = steps[record["step"]] = {**record, "calls": []}
        elif record.get("marker") == "end" and current is not None:
            current["rc"], current["stdout"] = record["rc"], record["stdout"]
        elif "path" in record and current is not None:
            current["calls"].append(record)
    return [steps[n] for n in sorted(steps)]


def _argv(step: dict[str, Any]) -> list[str]:
    return [
        NAME if word == "rec" else word.replace("driver=rec", f"driver={NAME}")
        for word in step["argv"]
    ]


def _shape(body: Any) -> Any:
    """The keys of a request, recursively into objects (values left out)."""
    if isinstance(body, dict):
        return {key: _shape(value) for key, value in body.items()}
    return type(body).__name__ if body is not None else None


def _global_addresses(text: str) -> set[str]:
    found = re.findall(r"inet6? (\S+)", text)
    return {a for a in found if not a.startswith(("127.", "::1", "fe80"))}


def test_the_recorded_scenario_gives_the_same_calls(
    dockerd: Dockerd, plugin: Plugin, dockerd_does: Expect
) -> None:
    """Every docker command of the capture of this daemon's generation (the 20.10 capture
    up to 27.x, the 28.3.3 one from 28.0: dockerd_versions.capture_for), against the fake:
    the same outcome, and the same plugin calls in the same order (as a multiset where the
    capture marks the order as random), with requests of the same shape, but for
    GetDefaultAddressSpaces, expected where this daemon's version sends it. One
    difference is by design: the recorder answered a Gateway on the --internal network,
    the fake does not (as dockerd's bridge driver), so dockerd has no gateway endpoint
    there to revoke. Whatever the steps leave, failed or not (the daemon stopped, its
    containers and networks), the sweep after the test takes (conftest.py)."""
    if dockerd_does.capture is None:
        pytest.fail(f"no capture shapes the scenario as {dockerd_does.name} does")
    capture = CAPTURES / dockerd_does.capture
    if not capture.exists():
        unavailable(f"no capture at {capture}")
    steps = _capture_steps(capture)
    internal = _internal_endpoints(steps)
    for step in steps:
        before = len(plugin.calls())
        if step["argv"][0] == "harness/dockerd-down.sh":
            dockerd.stop()
        elif step["argv"][0] == "harness/dockerd-up.sh":
            dockerd.start()
        else:
            done = dockerd.run(_argv(step))
            if step["expect"] != "any":
                assert (done.returncode == 0) == (step["rc"] == 0), (step["cmd"], done.stderr)
            if step["argv"][1:2] == ["exec"]:
                assert _global_addresses(done.stdout) == _global_addresses(step["stdout"])
        ours = plugin.calls()[before:]
        assert all(call["error"] is None for call in ours), (step["cmd"], ours)
        calls = retime(step["calls"], dockerd_does.spaces)
        recorded = [c for c in calls if not _revokes(c, internal)]
        expected = [c["path"].lstrip("/") for c in recorded]
        got = [c["method"] for c in ours]
        if step["nondet"] == "1":
            _same_calls_in_any_order(got, expected, step["cmd"])
        else:
            assert got == expected, step["cmd"]
            for theirs, mine in zip(recorded, ours, strict=True):
                assert _shape(mine["request"]) == _shape(theirs["body"] or {}), theirs["path"]


def _internal_endpoints(steps: list[dict[str, Any]]) -> set[str]:
    """The capture's endpoints on --internal networks."""
    calls = [c for step in steps for c in step["calls"]]
    networks = {
        c["body"]["NetworkID"]
        for c in calls
        if c["path"] == "/NetworkDriver.CreateNetwork"
        and c["body"]["Options"].get("com.docker.network.internal") is True
    }
    return {
        c["body"]["EndpointID"]
        for c in calls
        if c["path"] == "/NetworkDriver.CreateEndpoint" and c["body"]["NetworkID"] in networks
    }


def _revokes(call: dict[str, Any], endpoints: set[str]) -> bool:
    path, body = call["path"], call["body"] or {}
    return path == "/NetworkDriver.RevokeExternalConnectivity" and body["EndpointID"] in endpoints


GATEWAY_MOVES = ("NetworkDriver.ProgramExternalConnectivity",
                 "NetworkDriver.RevokeExternalConnectivity")


def _same_calls_in_any_order(got: list[str], expected: list[str], command: str) -> None:
    """Where the capture marks a step's order as random (Go map order over a container's
    networks), the gateway role may land on another endpoint first, which changes how
    often it moves: Program/Revoke counts may differ; every other call may not."""
    mine, theirs = Counter(got), Counter(expected)
    for method in GATEWAY_MOVES:
        del mine[method], theirs[method]
    assert mine == theirs, (command, got, expected)
    if "NetworkDriver.ProgramExternalConnectivity" in expected:
        assert "NetworkDriver.ProgramExternalConnectivity" in got, command


# -- what the scenario does not cover ----------------------------------------------------
def test_a_container_gets_the_fakes_address(dockerd: Dockerd, plugin: Plugin) -> None:
    dockerd.docker("network", "create", "-d", NAME, "--ipam-driver", NAME, "fdt-addr")
    try:
        out = dockerd.docker("run", "--rm", "--network", "fdt-addr", IMAGE, "ip", "-o", "addr")
        calls = plugin.calls()
        handed = [c for c in calls if c["method"] == "IpamDriver.RequestAddress"][-1]
        created = [c for c in calls if c["method"] == "NetworkDriver.CreateEndpoint"][-1]
        address = created["request"]["Interface"]["Address"]
        assert handed["response"]["Address"] == address
        assert f"inet {address}" in out.stdout
    finally:
        dockerd.docker("network", "rm", "fdt-addr")


def test_a_refusal_reaches_the_docker_user(dockerd: Dockerd, plugin: Plugin) -> None:
    # a /30 holds two addresses: the gateway and one container
    dockerd.docker(
        "network",
        "create",
        "-d",
        NAME,
        "--ipam-driver",
        NAME,
        "--subnet",
        "10.66.0.0/30",
        "fdt-tiny",
    )
    try:
        dockerd.docker(
            "run", "-d", "--name", "fdt-one", "--network", "fdt-tiny", IMAGE, "sleep", "600"
        )
        second = dockerd.docker("run", "--rm", "--network", "fdt-tiny", IMAGE, "true", check=False)
        assert second.returncode != 0
        assert "no available addresses in pool LocalDefault/10.66.0.0/30" in second.stderr
    finally:
        dockerd.docker("rm", "-f", "fdt-one", check=False)
        dockerd.docker("network", "rm", "fdt-tiny")


def test_killing_the_plugin_loses_nothing(dockerd: Dockerd, plugin: Plugin) -> None:
    """SIGKILL mid-run, restart with the same --state: dockerd carries on as if nothing
    happened, because nothing was lost."""
    dockerd.docker("network", "create", "-d", NAME, "--ipam-driver", NAME, "fdt-kill")
    try:
        dockerd.docker(
            "run", "-d", "--name", "fdt-k", "--network", "fdt-kill", IMAGE, "sleep", "600"
        )
        plugin.stop(signal.SIGKILL)
        plugin.start()
        before = len(plugin.calls())
        dockerd.docker("stop", "-t", "1", "fdt-k")  # Revoke, Leave, DeleteEndpoint, ReleaseAddress
        dockerd.docker("rm", "fdt-k")
        dockerd.docker("network", "rm", "fdt-kill")  # ReleaseAddress, ReleasePool, DeleteNetwork
    finally:
        if plugin.process is None:  # killed, and not back: the rest needs it
            plugin.start()
        dockerd.docker("rm", "-f", "fdt-k", check=False)
        dockerd.docker("network", "rm", "fdt-kill", check=False)
    after = plugin.calls()[before:]
    assert [c["method"] for c in after if c["error"]] == []
    assert {
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "IpamDriver.ReleasePool",
        "NetworkDriver.DeleteNetwork",
    } <= {c["method"] for c in after}
    state = plugin.control("GET", "/fakedriver/state")  # the server holds the database
    assert state["networks"] == {} and state["endpoints"] == {} and state["pools"] == {}


def test_a_fault_injected_over_the_control_api_reaches_the_docker_user(
    dockerd: Dockerd, plugin: Plugin
) -> None:
    rule = {"method": "CreateNetwork", "kind": "error", "message": "injected by the test"}
    plugin.control("POST", "/fakedriver/faults", {**rule, "times": 1})
    try:
        refused = dockerd.docker("network", "create", "-d", NAME, "fdt-fault", check=False)
        assert refused.returncode != 0
        assert "remote: injected by the test" in refused.stderr
        [fired] = plugin.control("GET", "/fakedriver/faults")["faults"]
        assert fired["fired"] == 1
        dockerd.docker("network", "create", "-d", NAME, "fdt-fault")  # the fault has passed
    finally:
        plugin.control("DELETE", "/fakedriver/faults")
        dockerd.docker("network", "rm", "fdt-fault", check=False)


def test_without_links_containers_start_with_no_interface_from_the_fake(
    dockerd: Dockerd,
) -> None:
    """Join answers no SrcName and no gateway: dockerd starts the container anyway and
    routes it through its docker_gwbridge (transcript §4, the last experiment). There is
    one docker_gwbridge per host, whichever daemon makes it: it is made and removed under
    a host-wide lock."""
    name = run_name("fdb")
    bare = Plugin(name, dockerd.base)
    bare.start()
    try:
        dockerd.docker("network", "create", "-d", name, "--subnet", "10.67.0.0/24", "fdt-bare")
        with host_lock("docker_gwbridge"):
            try:
                out = dockerd.docker(
                    "run", "--rm", "--network", "fdt-bare", IMAGE, "ip", "-o", "addr"
                )
            finally:
                dockerd.docker("network", "rm", "docker_gwbridge", check=False)
        assert "10.67.0." not in out.stdout
        [join] = [c for c in bare.calls() if c["method"] == "NetworkDriver.Join"]
        assert join["response"]["InterfaceName"]["SrcName"] == ""
        assert "Gateway" not in join["response"]
    finally:  # while the plugin runs: a network rm needs its driver
        dockerd.docker("network", "rm", "fdt-bare", check=False)
        bare.stop()


def test_an_internal_network_gives_no_default_route(dockerd: Dockerd, plugin: Plugin) -> None:
    """CreateNetwork carries com.docker.network.internal: true; Join then answers no
    Gateway, so the container has its address and no way out, as on an --internal network
    of dockerd's own bridge driver from moby 26 on (20.10's bridge still answers one), and
    dockerd attaches no docker_gwbridge."""
    dockerd.docker(
        "network", "create", "-d", NAME, "--internal", "--subnet", "10.68.0.0/24", "fdt-int"
    )
    try:
        routes = dockerd.docker("run", "--rm", "--network", "fdt-int", IMAGE, "ip", "route")
        assert " ".join(routes.stdout.split()) == "10.68.0.0/24 dev eth0 scope link src 10.68.0.2"
        join = [c for c in plugin.calls() if c["method"] == "NetworkDriver.Join"][-1]
        assert "Gateway" not in join["response"] and join["response"]["InterfaceName"]["SrcName"]
        networks = dockerd.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert "docker_gwbridge" not in networks
    finally:
        dockerd.docker("network", "rm", "fdt-int", check=False)
