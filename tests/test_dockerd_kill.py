"""kill -9 of ``fakedriver serve --links veth --state FILE`` while ten containers start at
once, repeated, each time at a later Join: when the containers are gone, no veth pair of
the fake's endpoints is left on the host, and the fake holds no join.

A Join the server was killed in may have made its pair and not saved the join: the
intent saved before the pair was made lets the restarted server remove it. A Join it
served before it died was answered with nothing, so dockerd fails the start and deletes the
endpoint without Leave: an implicit Leave, which removes the pair.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.dockerd_env import IMAGE, Dockerd, Plugin, host_links, run_name

from fakedriver.server.veth import VethLinks

pytestmark = pytest.mark.dockerd

NAME = run_name("fdk")
ROUNDS = 4
PARALLEL = 10


@pytest.fixture
def plugin(dockerd: Dockerd) -> Iterator[Plugin]:
    served = Plugin(NAME, dockerd.base, "--links", "veth")
    served.start()
    try:
        yield served
    finally:  # what a failed round left goes while its driver runs (a network rm needs it)
        if served.process is None:
            served.start()
        dockerd.sweep()
        served.stop()


def _joins(plugin: Plugin) -> int:
    return sum(call["method"] == "NetworkDriver.Join" for call in plugin.calls())


def _wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.01)


def test_kill_9_during_parallel_starts_leaves_no_veth_pair(
    dockerd: Dockerd, plugin: Plugin, request: pytest.FixtureRequest
) -> None:
    started = failed = 0
    for round_ in range(ROUNDS):
        net = f"fdk-{round_}"
        dockerd.docker("network", "create", "-d", NAME, net)
        joined = _joins(plugin)
        starts = [
            subprocess.Popen(
                ["docker", "run", "--rm", "--network", net, IMAGE, "true"],
                env=dockerd.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PARALLEL)
        ]
        try:
            # Kill once round_ + 1 Joins are done: others are being served, or on their way.
            _wait_for(lambda: _joins(plugin) > joined + round_, "Join")  # noqa: B023
            plugin.stop(signal.SIGKILL)
            plugin.start()
            codes = [start.wait(timeout=120) for start in starts]
        finally:
            for start in starts:
                if start.poll() is None:
                    start.kill()
                start.communicate()
        started += codes.count(0)
        failed += len(codes) - codes.count(0)
        _wait_for(
            lambda: not dockerd.docker("ps", "-aq", "--filter", f"network={net}").stdout.strip(),  # noqa: B023
            "end of the round's containers",
        )
        endpoints = {
            call["request"]["EndpointID"]
            for call in plugin.calls()
            if call["method"] == "NetworkDriver.CreateEndpoint" and call["request"]
        }
        left = {name for eid in endpoints for name in VethLinks.names(eid)} & host_links()
        assert not left, f"round {round_}: veth pairs left on the host: {sorted(left)}"
        state = plugin.control("GET", "/fakedriver/state")
        assert state["links"] == [], f"round {round_}: links still recorded: {state['links']}"
        joined_left = [eid for eid, ep in state["endpoints"].items() if ep["join"] is not None]
        assert not joined_left, f"round {round_}: joins the daemon has left: {joined_left}"
        dockerd.docker("network", "rm", net)
    request.node.user_properties += [("started", started), ("failed", failed)]
    leaks = plugin.control("GET", "/fakedriver/leaks")["leaks"]
    request.node.user_properties.append(("fake leaks", len(leaks)))
