"""The fault cookbook on a real dockerd: every recipe of ``cookbook.py`` (one per fault
kind, set through the control API), the docker command it is seen through, its exit code,
the message its user gets and how long it takes; whether dockerd rejected the faulted
call as ``dockerd_rules`` predicts, from the answer as dockerd received it (a
:class:`~dockerd_env.Tap` relays the plugin socket); and that the fake and the daemon
agree afterwards: the next container starts, ``network rm`` is clean, the fake holds
nothing and no veth pair is left on the host. Where the daemon's version changes what
it does (``dockerd_versions``), the recipe says what this daemon's version does
(``Recipe.on``); every call dockerd sends carries the ``Host`` header of its version.

The figures are recorded as test properties (``--junitxml`` with ``-o
junit_family=xunit1``). Where dockerd cannot run these skip with the reason; with
``FAKEDRIVER_REQUIRE_DOCKERD=1`` they fail instead.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support.cookbook import CREATE, RECIPES, RUN, Recipe
from support.dockerd_env import Dockerd, Exchange, Plugin, host_links, run_name
from support.dockerd_versions import Expect

from fakedriver.conformance.rules import dockerd_rejects, version_of
from fakedriver.core.methods import resolve
from fakedriver.server.veth import VethLinks

pytestmark = pytest.mark.dockerd

NAME = run_name("fdc")
#: How long the test lets a held call wait before it releases it.
HELD_FOR = 2.0
LEAVE_LOGGED = "driver error disconnecting container"


@pytest.fixture(scope="module")
def plugin(dockerd: Dockerd) -> Iterator[Plugin]:
    served = Plugin(NAME, dockerd.base, "--links", "veth", tapped=True)
    served.start()
    yield served
    served.stop()


@pytest.fixture(autouse=True)
def _agree_afterwards(dockerd: Dockerd, plugin: Plugin) -> Iterator[None]:
    """Whatever a recipe left, failed or not: no fault rule, nothing on the daemon (the
    sweep), and an empty fake where the sweep's calls did not empty it (a failed recipe
    may leave the fake holding what dockerd forgot), so the next recipe starts clean."""
    yield
    plugin.control("DELETE", "/fakedriver/faults")
    dockerd.sweep()
    if plugin.control("GET", "/fakedriver/leaks")["leaks"]:
        plugin.control("POST", "/fakedriver/reset")


@dataclass(frozen=True)
class Done:
    rc: int
    stderr: str
    seconds: float


def _argv(command: tuple[str, ...], net: str) -> list[str]:
    names = {"NET": net, "PLUGIN": NAME}
    return [names.get(word, word) for word in command]


def _docker(
    dockerd: Dockerd, argv: list[str], meanwhile: Callable[[subprocess.Popen[str]], None]
) -> Done:
    start = time.monotonic()
    proc = subprocess.Popen(
        ["docker", *argv], env=dockerd.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        meanwhile(proc)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Done(proc.returncode, err, time.monotonic() - start)


def _release_when_held(plugin: Plugin) -> Callable[[subprocess.Popen[str]], None]:
    """Wait for the call to be held, let dockerd wait HELD_FOR more, release it."""

    def release(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        while not any(rule["fired"] for rule in _rules(plugin)):
            assert proc.poll() is None, "the command ended before its call was held"
            assert time.monotonic() < deadline, "the call never came"
            time.sleep(0.05)
        time.sleep(HELD_FOR)
        assert proc.poll() is None, f"dockerd stopped waiting within {HELD_FOR} s"
        plugin.control("POST", "/fakedriver/faults/release")

    return release


def _rules(plugin: Plugin) -> list[dict[str, Any]]:
    return list(plugin.control("GET", "/fakedriver/faults")["faults"])


def _journal_length(plugin: Plugin) -> int:
    return len(plugin.control("GET", "/fakedriver/calls")["calls"])


def _daemon_rejected(recipe: Recipe, done: Done, log: str) -> bool:
    """Whether dockerd treated the faulted call as failed: the command failed, or, for a
    call whose failure dockerd only logs (Leave), the log says so."""
    return done.rc != 0 if recipe.fatal else LEAVE_LOGGED in log


def _check_the_model(
    recipe: Recipe, exchanges: list[Exchange], rejected: bool, rules: str
) -> None:
    """dockerd_rules, fed the last answer dockerd received for the faulted method, must
    reach the daemon's verdict (a call with no answer at all is a transport error, outside
    the model)."""
    answered = [e for e in exchanges if e.status is not None]
    if not answered:
        assert rejected, "no answer came, yet dockerd went on"
        return
    last = answered[-1]
    why = dockerd_rejects(last.method, last.request, last.status or 0, last.answer, rules)
    assert (why is not None) == rejected, (
        f"dockerd_rules says {why!r}; the daemon {'rejected' if rejected else 'accepted'} "
        f"HTTP {last.status} {last.answer!r}"
    )
    assert recipe.model in (why or ""), why


def _check_drops(recipe: Recipe, exchanges: list[Exchange]) -> None:
    """dockerd's retries after a dropped connection: 1, 2, 4, 8 s apart, each with an
    empty body (the request buffer was read by the first try)."""
    first, *retries = exchanges
    assert first.body and first.status is None
    assert retries, "dockerd did not retry a dropped call"
    for retry in retries:
        assert (retry.headers.get("Content-Length"), retry.body) == ("0", b""), retry
    offsets = [round(e.at - first.at) for e in exchanges]
    assert offsets == ([0, 1] if recipe.rule.get("times") == 1 else [0, 1, 3, 7, 15]), offsets


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.id)
def test_the_cookbook_on_dockerd(
    dockerd: Dockerd,
    plugin: Plugin,
    recipe: Recipe,
    request: pytest.FixtureRequest,
    dockerd_does: Expect,
) -> None:
    assert plugin.tap is not None
    recipe = recipe.on(dockerd_does)
    net = f"fdc-{recipe.id}"
    creates = recipe.command == CREATE
    if not creates:
        dockerd.docker(*_argv(CREATE, net))
    tapped, journaled = len(plugin.tap.exchanges()), _journal_length(plugin)
    logged = len(dockerd.log.read_bytes())
    plugin.control("POST", "/fakedriver/faults", recipe.rule)
    try:
        meanwhile = _release_when_held(plugin) if recipe.held else lambda proc: None
        done = _docker(dockerd, _argv(recipe.command, net), meanwhile)
    finally:
        plugin.control("DELETE", "/fakedriver/faults")  # releases what is still held
    request.node.user_properties += [  # in --junitxml reports (junit_family=xunit1)
        ("command", "docker " + " ".join(_argv(recipe.command, net))),
        ("exit", done.rc),
        ("stderr", done.stderr.strip()),
        ("seconds", round(done.seconds, 2)),
    ]

    assert done.rc == recipe.exit, done.stderr
    assert recipe.says in done.stderr, done.stderr
    assert recipe.seconds[0] <= done.seconds <= recipe.seconds[1], done.seconds
    exchanges = plugin.tap.exchanges()[tapped:]
    hosts = {e.headers.get("Host", "") for e in exchanges}
    assert hosts == {dockerd_does.host_header}, (dockerd_does.name, hosts)
    faulted = [e for e in exchanges if e.method == resolve(recipe.method)]
    assert faulted, f"no {recipe.method} reached the plugin"
    log = dockerd.log.read_bytes()[logged:].decode(errors="replace")
    version = dockerd.docker("version", "-f", "{{.Server.Version}}").stdout
    _check_the_model(recipe, faulted, _daemon_rejected(recipe, done, log), version_of(version))
    if recipe.kind == "drop":
        _check_drops(recipe, faulted)

    # The fake and the daemon agree afterwards.
    if creates:
        dockerd.docker(*_argv(CREATE, net))
    dockerd.docker(*_argv(RUN, net))  # the next container starts
    dockerd.docker("network", "rm", net)
    assert plugin.control("GET", "/fakedriver/leaks") == {"leaks": []}
    assert plugin.control("GET", "/fakedriver/state")["links"] == []
    endpoints = {e.request["EndpointID"] for e in plugin.tap.exchanges()[tapped:]
                 if e.method == "NetworkDriver.CreateEndpoint" and e.request}
    left = {n for eid in endpoints for n in VethLinks.names(eid)} & host_links()
    assert not left, f"veth pairs left on the host: {sorted(left)}"
    calls = plugin.control("GET", f"/fakedriver/calls?since={journaled}")["calls"]
    implicit = [c for c in calls if c["method"] == "NetworkDriver.DeleteEndpoint"
                and any(n.startswith("implicit Leave") for n in c["notes"])]
    assert bool(implicit) == recipe.implicit_leave, [c["method"] for c in calls]
