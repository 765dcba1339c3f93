"""The conformance kit (``fakedriver.conformance.check``) against the fake over a real unix
socket: the fake passes it, strict and lenient where it says so; what each persona does
not announce is skipped; the kit cleans up after itself and uses its own ids and
subnets; a plugin that hangs fails a check within the timeout; the target is found as
dockerd finds it; the report's JSON and JUnit forms."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from fakedriver import FakeNetDriver, Persona, serving
from fakedriver.conformance import CHECKS, GROUPS, TargetError, check, resolve, select
from fakedriver.conformance.report import as_json, as_junit

pytestmark = pytest.mark.socket  # the socket tier: the kit checks plugins served on real sockets

EVERYTHING = Persona(scope="global", gw_alloc_checker=True, requires_request_replay=True)
REFUSALS = {
    "semantics/refuse-unknown-network",
    "semantics/refuse-unknown-endpoint",
    "semantics/refuse-unknown-pool",
}


def _outcomes(report: object) -> dict[str, str]:
    return {r.name: r.outcome for r in report.results}  # type: ignore[attr-defined]


@pytest.mark.parametrize("rules", ["20.10", "28"])
def test_the_fake_passes_its_own_kit(rules: str) -> None:
    with serving(FakeNetDriver(EVERYTHING)) as served:
        report = check(served.socket_path, dockerd=rules)
        assert report.ok, "\n".join(r.line() for r in report.failed)
        skipped = {r.name: r.reason for r in report.results if r.outcome == "skip"}
        if rules == "28":
            assert skipped == {}
        else:
            assert skipped == {"sequences/gwalloccheck": "dockerd 20.10 never calls GwAllocCheck"}
        assert [r.name for r in report.results] == [c.name for c in select()]
        assert served.fake.leaks() == []  # the kit undid all it made
        assert report.not_cleaned == []


def test_every_group_has_checks_and_every_check_says_why() -> None:
    names = [c.name for c in select()]
    assert {n.partition("/")[0] for n in names} == set(GROUPS)
    assert len(names) == len(set(names)) == len(CHECKS) >= 25
    for each in CHECKS:
        assert len(each.doc) > 80, each.name
    sources = [c for c in CHECKS if "libnetwork/" in c.doc or "pkg/plugins" in c.doc]
    assert len(sources) >= 15  # the moby source each rule rests on


def test_the_lenient_fake_fails_only_the_refusals_in_strict_mode() -> None:
    """A fake with ``strict=False`` accepts calls on unknown ids (its docs say so): the
    strict kit fails those checks alone; the lenient kit passes it."""
    with serving(FakeNetDriver(strict=False)) as served:
        strict = check(served.socket_path)
        assert {r.name for r in strict.failed} == REFUSALS
        lenient = check(served.socket_path, strict=False)
        assert lenient.ok, "\n".join(r.line() for r in lenient.failed)


def test_a_default_persona_skips_what_it_does_not_announce() -> None:
    with serving() as served:
        report = check(served.socket_path)
    assert report.ok
    skipped = {r.name for r in report.results if r.outcome == "skip"}
    assert skipped == {"sequences/request-replay", "sequences/gwalloccheck", "sequences/swarm"}


@pytest.mark.parametrize(
    ("persona", "absent"),
    [(Persona(ipam=False), "IpamDriver"), (Persona(network=False), "NetworkDriver")],
)
def test_a_plugin_of_one_subsystem(persona: Persona, absent: str) -> None:
    """Checks of the subsystem it lacks are skipped; the captures replay its own calls."""
    with serving(FakeNetDriver(persona)) as served:
        report = check(served.socket_path)
        assert report.ok, "\n".join(r.line() for r in report.failed)
        methods = {c.method.partition(".")[0] for c in served.fake.calls}
    assert absent not in methods
    skipped = [r for r in report.results if r.reason == f"the plugin does not implement {absent}"]
    assert len(skipped) >= 5
    assert _outcomes(report)["sequences/capture-28"] == "pass"


def test_the_kit_uses_its_own_ids_and_subnets() -> None:
    with serving() as served:
        report = check(
            served.socket_path,
            network_prefix="abcd01",
            subnets=["10.64.0.0/12", "fd77::/32"],
            only=["sequences", "answers"],
        )
        assert report.ok
        calls = list(served.fake.calls)
    ids = {
        value
        for call in calls
        for key in ("NetworkID", "EndpointID")
        if isinstance(call.request, dict) and isinstance(value := call.request.get(key), str)
    }
    assert len(ids) > 40 and all(i.startswith("abcd01") and len(i) == 64 for i in ids)
    bases = [ipaddress.ip_network("10.64.0.0/12"), ipaddress.ip_network("fd77::/32")]
    pools = [
        ipaddress.ip_network(d["Pool"])
        for call in calls
        if call.method == "NetworkDriver.CreateNetwork"
        for d in call.request["IPv4Data"] + call.request["IPv6Data"]
    ]
    fake_default = ipaddress.ip_network("10.200.0.0/16")  # the plugin's own choice (--ipam-driver)
    outside = [p for p in pools if not any(p.subnet_of(b) for b in bases if b.version == p.version)]
    assert pools and all(p.subnet_of(fake_default) for p in outside), outside


def test_two_runs_never_share_an_id() -> None:
    with serving() as served:
        for _ in range(2):
            assert check(served.socket_path, only=["answers/join"]).ok
        joins = [
            c.request["EndpointID"] for c in served.fake.calls if c.method == "NetworkDriver.Join"
        ]
    assert len(joins) == len(set(joins)) == 2


def test_a_plugin_that_hangs_fails_that_check_within_the_timeout() -> None:
    fake = FakeNetDriver()
    fake.fail("Join", kind="hang")
    with serving(fake) as served:
        began = time.monotonic()
        report = check(
            served.socket_path, only=["answers/join", "answers/create-endpoint"], timeout=0.5
        )
        took = time.monotonic() - began
    outcomes = _outcomes(report)
    assert outcomes["answers/join"] == "fail" and outcomes["answers/create-endpoint"] == "pass"
    assert "no answer within 0.5 s" in report.result("answers/join").reason
    assert took < 10


def test_what_could_not_be_cleaned_is_said() -> None:
    fake = FakeNetDriver()
    fake.fail("DeleteNetwork", message="busy")
    with serving(fake) as served:
        report = check(served.socket_path, only=["answers/join", "hygiene"])
    assert report.result("answers/join").outcome == "pass"
    cleanup = report.result("hygiene/cleanup")
    assert cleanup.outcome == "fail" and "could not clean 1" in cleanup.reason
    assert len(report.not_cleaned) == 1 and report.not_cleaned[0].startswith("network ")
    assert "could not clean 1: network" in report.summary()


def test_only_and_skip_choose_groups_and_checks() -> None:
    assert {c.group for c in select(["handshake"])} == {"handshake"}
    chosen = [c.name for c in select(["answers", "semantics/unique-addresses"], ["answers/join"])]
    assert "answers/join" not in chosen and "semantics/unique-addresses" in chosen
    with pytest.raises(ValueError, match="no check group 'nonsense'"):
        select(["nonsense"])


def test_the_report_as_json_and_junit() -> None:
    fake = FakeNetDriver()
    fake.fail("Join", kind="answer", answer={"Gateway": "10.0.0.1/24"})
    with serving(fake) as served:
        report = check(served.socket_path, only=["handshake", "answers"])
    document = json.loads(json.dumps(as_json(report)))
    assert document["ok"] is False and document["dockerd"] == "28"
    failed = [c for c in document["checks"] if c["outcome"] == "fail"]
    assert {c["name"] for c in failed} == {
        "answers/join",
        "answers/teardown",
        "answers/endpoint-info",
    }
    join = next(c for c in document["checks"] if c["name"] == "answers/join")
    assert 'unable to parse Gateway "10.0.0.1/24"' in join["reason"]
    assert join["calls"][-1]["method"] == "NetworkDriver.Join"
    root = ElementTree.fromstring(as_junit(report))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == str(len(report.failed))
    case = next(c for c in suite.iter("testcase") if c.get("name") == "join")
    failure = case.find("failure")
    assert failure is not None and "unable to parse Gateway" in (failure.get("message") or "")


# -- finding the target as dockerd does ------------------------------------------------------


@pytest.fixture
def listening(short_dir: Path) -> Iterator[Path]:
    path = short_dir / "p.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen()
    yield path
    sock.close()


def test_resolve_a_socket_a_url_and_a_name(short_dir: Path, listening: Path) -> None:
    assert resolve(str(listening)).path == str(listening)
    assert resolve(f"unix://{listening}").path == str(listening)
    assert resolve("http://127.0.0.1:9/").url == "http://127.0.0.1:9"
    plugins, specs, more = short_dir / "run", short_dir / "etc", short_dir / "lib"
    for folder in (plugins, specs, more, plugins / "nested"):
        folder.mkdir()
    os.symlink(listening, plugins / "sock.sock")
    (specs / "byspec.spec").write_text(f"unix://{listening}\n")
    (specs / "tcp.spec").write_text("tcp://127.0.0.1:4321")
    (more / "byjson.json").write_text(json.dumps({"Addr": "http://127.0.0.1:1234"}))
    (specs / "bad.spec").write_text("127.0.0.1:1")
    where = {
        "plugin_dir": str(plugins),
        "spec_dirs": (str(specs), str(more)),
        "docker": "no-such-docker",
    }
    assert resolve("sock", **where).path == str(plugins / "sock.sock")
    assert resolve("byspec", **where).path == str(listening)
    assert resolve("tcp", **where).url == "http://127.0.0.1:4321"
    assert resolve("byjson", **where).url == "http://127.0.0.1:1234"
    with pytest.raises(TargetError, match="Unknown protocol"):
        resolve("bad", **where)
    with pytest.raises(TargetError, match="no plugin 'ghost'"):
        resolve("ghost", **where)
    with pytest.raises(TargetError, match="no such socket"):
        resolve(str(short_dir / "absent.sock"))
    with pytest.raises(TargetError, match="not a unix socket"):
        resolve(str(specs / "byspec.spec"))


def test_the_kit_over_tcp() -> None:
    with serving(tcp=True) as served:
        assert served.tcp_url is not None
        report = check(served.tcp_url, only=["handshake", "answers/join"])
    assert report.ok and report.target == served.tcp_url


def test_calls_in_parallel_really_overlap() -> None:
    """The parallel checks' calls are in the plugin at the same time (held until all came)."""
    fake = FakeNetDriver()
    gate = fake.hold("RequestAddress")
    with serving(fake) as served:
        done: list[object] = []
        runner = threading.Thread(
            target=lambda: done.append(
                check(served.socket_path, only=["semantics/parallel-request-address"], parallel=4)
            )
        )
        runner.start()
        held = gate.wait_held(4, timeout=10)
        gate.release()
        runner.join(timeout=20)
    assert held and done and done[0].ok  # type: ignore[attr-defined]


# -- the command -------------------------------------------------------------------------------


def _check_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fakedriver", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_prints_a_line_per_check_and_exits_0(tmp_path: Path) -> None:
    with serving() as served:
        junit = tmp_path / "report.xml"
        done = _check_cli(served.socket_path, "--only", "handshake,answers", "--junit", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "PASS handshake/activate"
    assert re.fullmatch(r"12 passed, 0 failed, 0 skipped \(.*, dockerd 28 rules, .* s\)", lines[-1])
    assert ElementTree.parse(junit).getroot().find("testsuite") is not None


def test_the_command_exits_1_when_a_check_fails_and_says_why() -> None:
    fake = FakeNetDriver()
    fake.fail("Leave", status=500, message="boom")
    with serving(fake) as served:
        done = _check_cli(
            served.socket_path, "--only", "answers", "--skip", "answers/join", "--json"
        )
    assert done.returncode == 1
    document = json.loads(done.stdout)
    (failed,) = [c for c in document["checks"] if c["outcome"] == "fail"]
    assert failed["name"] == "answers/teardown" and "HTTP 500" in failed["reason"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["/nonexistent/plugin.sock"], "no such socket"),
        (["--only", "bogus", "/nonexistent.sock"], "no check group 'bogus'"),
        (["--network-prefix", "XYZ", "http://127.0.0.1:9"], "network prefix"),
        (["--session", "/nonexistent.jsonl", "http://127.0.0.1:9"], "no such file"),
    ],
)
def test_the_command_exits_2_for_a_usage_or_target_error(args: list[str], says: str) -> None:
    done = _check_cli(*args)
    assert done.returncode == 2 and says in done.stderr, done.stderr


def test_the_command_lists_the_checks() -> None:
    done = _check_cli("--list")
    assert done.returncode == 0
    assert [line for line in done.stdout.splitlines() if not line.startswith(" ")] == [
        c.name for c in select()
    ]


# -- in a plugin author's pytest suite ----------------------------------------------------------

pytest_plugins = ["pytester"]


def test_pytest_suite_is_one_test_per_check(pytester: pytest.Pytester) -> None:
    """``test_x = pytest_suite(TARGET)`` in a test module: one test per check, passing,
    failing and skipping as the kit's checks do."""
    fake = FakeNetDriver()
    fake.fail("Join", kind="answer", answer={"Gateway": "10.0.0.1/24"})
    with serving(fake) as served:
        pytester.makepyfile(
            test_conformance_of_my_driver=(
                "from fakedriver.conformance import pytest_suite\n\n"
                f"test_my_plugin = pytest_suite({served.socket_path!r}, skip=['sequences'])\n"
            )
        )
        result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    counts = {c.name for c in select(skip=["sequences"])}
    result.assert_outcomes(passed=len(counts) - 4, failed=4)
    result.stdout.fnmatch_lines(
        [
            "FAIL answers/join: NetworkDriver.Join: dockerd refuses the answer: "
            'unable to parse Gateway "10.0.0.1/24"*'
        ]
    )
