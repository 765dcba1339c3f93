"""Host interfaces for joins: VethLinks with a recording fake of ``ip``, through the driver,
and once with the real ``ip`` command."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence

import pytest
from support.serve_env import (
    Conn,
    Dockerd,
    Launcher,
    create_network,
    dockerd_request,
    temporary_short_dir,
)
from support.wire import EP, NET, Wire, ids

from fakedriver import DriverError, FakeNetDriver
from fakedriver.persist.store import peek_state
from fakedriver.server.veth import Checkpointed, Reconciled, VethLinks, reconcile

EID = "0123456789abcdef" * 4
INNER, OUTER = VethLinks.names(EID)


class FakeIp:
    """``ip link`` as VethLinks runs it: records every argv and keeps a tiny model of the
    host's links (and which are up), so leftovers and clean-up can be checked. ``fail``
    maps a verb (``add``, ``del``) to the stderr that verb fails with."""

    def __init__(self, fail: dict[str, str] | None = None) -> None:
        self.argv: list[tuple[str, ...]] = []
        self.links: dict[str, str] = {}  # name -> peer
        self.up: set[str] = set()
        self.fail = dict(fail or {})

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args = tuple(argv)
        self.argv.append(args)
        assert args[:2] == ("ip", "link"), args
        verb, name = args[2], args[3]
        if verb in self.fail:
            return self._done(args, 2, self.fail[verb])
        if verb == "add":
            assert args[4:9] == ("up", "type", "veth", "peer", "name"), args
            peer = args[9]
            if name in self.links or peer in self.links:
                return self._done(args, 2, "RTNETLINK answers: File exists\n")
            self.links.update({name: peer, peer: name})
            self.up.add(name)
        elif name not in self.links:
            return self._done(args, 1, f'Cannot find device "{name}"\n')
        else:
            assert (verb, args[4:]) == ("del", ()), args
            peer = self.links.pop(name)
            del self.links[peer]
            self.up -= {name, peer}
        return self._done(args, 0, "")

    @staticmethod
    def _done(args: tuple[str, ...], code: int, stderr: str) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(args), code, "", stderr)


ADD = ("ip", "link", "add", OUTER, "up", "type", "veth", "peer", "name", INNER)
DEL_OUTER, DEL_INNER = (("ip", "link", "del", name) for name in (OUTER, INNER))


# -- VethLinks -------------------------------------------------------------------------------
def test_names_are_fdv_and_fdp_and_12_characters_from_the_id() -> None:
    assert re.fullmatch(r"fdv[0-9a-f]{12}", INNER), INNER
    assert (INNER[:3], OUTER[:3], INNER[3:]) == ("fdv", "fdp", OUTER[3:])
    assert all(len(name) <= 15 for name in (INNER, OUTER))  # IFNAMSIZ - 1
    assert VethLinks.names(EID) == (INNER, OUTER)  # the same id, the same names
    assert VethLinks.names("fe" * 32) != (INNER, OUTER)


#: Ids whose first characters Linux or ``ip`` would not take as they are in a name: a
#: template (``%d``), a refused character, a non-ASCII one (more bytes than the 15 allowed).
HOSTILE_IDS = ["%d-rt1", "%s%d%x", "a/b:c d", "\tx\ny", "é" * 64, "..", ".", "", "x"]


@pytest.mark.parametrize("eid", HOSTILE_IDS)
def test_names_are_made_of_characters_linux_and_ip_take_as_they_are(eid: str) -> None:
    for name in VethLinks.names(eid):
        assert re.fullmatch(r"fd[vp][A-Za-z0-9_.-]{0,6}[0-9a-f]{6}", name), name
    ip = FakeIp()
    inner = VethLinks(run=ip).create(eid)
    assert ip.argv == [("ip", "link", "add", "fdp" + inner[3:], "up", *ADD[5:9], inner)]
    VethLinks(run=ip).delete(eid)
    assert ip.links == {}


def test_ids_that_differ_only_in_characters_made_underscores_keep_their_own_names() -> None:
    assert VethLinks.names("%d-rt1") != VethLinks.names("%x-rt1")
    assert VethLinks.names("%d-rt1")[0].startswith("fdv_d-rt1")


def test_create_makes_the_pair_with_the_host_end_up_in_one_run() -> None:
    ip = FakeIp()
    assert VethLinks(run=ip).create(EID) == INNER
    assert ip.argv == [ADD]  # one process per Join: the driver holds its lock meanwhile
    assert ip.links == {INNER: OUTER, OUTER: INNER} and ip.up == {OUTER}


def test_create_replaces_a_leftover_pair() -> None:
    ip = FakeIp()
    ip.links = {INNER: OUTER, OUTER: INNER}  # left by an earlier run that was killed
    assert VethLinks(run=ip).create(EID) == INNER
    assert ip.argv == [ADD, DEL_OUTER, ADD]
    assert ip.links == {INNER: OUTER, OUTER: INNER} and ip.up == {OUTER}


def test_a_failing_add_is_a_driver_error_with_ips_stderr() -> None:
    ip = FakeIp(fail={"add": "RTNETLINK answers: Operation not permitted\n"})
    with pytest.raises(DriverError) as caught:
        VethLinks(run=ip).create(EID)
    assert caught.value.message == (
        f"failed to create veth pair {INNER}/{OUTER}: RTNETLINK answers: Operation not permitted"
    )
    assert ip.links == {} and ip.argv == [ADD]  # no clean-up of what is not there


def test_a_leftover_that_cannot_be_removed_is_a_driver_error() -> None:
    ip = FakeIp(fail={"del": "RTNETLINK answers: Operation not permitted\n"})
    ip.links = {INNER: OUTER, OUTER: INNER}
    with pytest.raises(DriverError, match="File exists"):
        VethLinks(run=ip).create(EID)
    assert ip.links == {INNER: OUTER, OUTER: INNER}  # not ours to break further


def test_delete_removes_the_pair_by_its_host_end_and_tolerates_its_absence() -> None:
    ip = FakeIp()
    links = VethLinks(run=ip)
    links.create(EID)
    ip.argv.clear()
    links.delete(EID)
    assert ip.links == {} and ip.argv == [DEL_OUTER]  # one process per Leave
    links.delete(EID)  # nothing left: no error
    assert ip.links == {} and ip.argv[1:] == [DEL_OUTER, DEL_INNER]


def test_delete_falls_back_to_the_container_end() -> None:
    """After a crash only the container end may be left in the host's namespace (dockerd
    moves it back there when the container goes)."""
    ip = FakeIp()
    ip.links = {INNER: "elsewhere", "elsewhere": INNER}
    VethLinks(run=ip).delete(EID)
    assert ip.links == {}


# -- through the driver ----------------------------------------------------------------------
def _driver(ip: FakeIp, **options: object) -> tuple[FakeNetDriver, Wire]:
    fake = FakeNetDriver(links=VethLinks(run=ip), **options)
    wire = Wire(fake)
    wire.network(v6=("fd00:1::/64", "fd00:1::1/64"))
    wire.endpoint(v6="fd00:1::2/64")
    return fake, wire


def test_join_answers_the_link_and_the_networks_gateways() -> None:
    ip = FakeIp()
    fake, wire = _driver(ip)
    inner, outer = VethLinks.names(EP)
    assert wire.join() == {
        "InterfaceName": {"SrcName": inner, "DstPrefix": "eth"},
        "Gateway": "10.0.0.1",
        "GatewayIPv6": "fd00:1::1",
    }
    assert ip.links == {inner: outer, outer: inner}
    assert fake.state.joins[EP].src_name == inner


def test_leave_deletes_the_link() -> None:
    ip = FakeIp()
    _, wire = _driver(ip)
    wire.join()
    wire.ok("NetworkDriver.Leave", ids())
    assert ip.links == {}


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_delete_endpoint_while_joined_deletes_the_link(strict: bool) -> None:
    """dockerd's rollback after a Join whose answer it lost: DeleteEndpoint, no Leave."""
    ip = FakeIp()
    fake, wire = _driver(ip, strict=strict)
    wire.join()
    assert fake.state.links == {EP}
    wire.ok("NetworkDriver.DeleteEndpoint", ids())
    assert ip.links == {} and fake.state.links == set()
    assert fake.violations == [] and fake.calls[-1].notes
    assert EP not in fake.state.endpoints


def test_lenient_delete_network_takes_its_endpoints_links_too() -> None:
    ip = FakeIp()
    fake, wire = _driver(ip, strict=False)
    wire.join()
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert ip.links == {} and fake.state.links == set() and fake.state.endpoints == {}


# -- link intents: recorded before the pair is made, reconciled at start --------------------
def test_the_intent_is_recorded_and_saved_before_the_pair_is_made() -> None:
    """Checkpointed calls its checkpoint (the server saves the state there) before `ip link
    add` runs, and by then the state already holds the intent."""
    ip = FakeIp()
    saved: list[set[str]] = []

    def checkpoint(eid: str) -> None:
        assert eid == EP
        saved.append(set(fake.state.links))
        ip.argv.append(("checkpoint",))

    fake = FakeNetDriver(links=Checkpointed(VethLinks(run=ip), checkpoint))
    wire = Wire(fake)
    wire.network()
    wire.endpoint()
    wire.join()
    inner, outer = VethLinks.names(EP)
    add = ("ip", "link", "add", outer, "up", "type", "veth", "peer", "name", inner)
    assert ip.argv.index(("checkpoint",)) < ip.argv.index(add)
    assert saved == [{EP}]
    wire.ok("NetworkDriver.Leave", ids())
    assert fake.state.links == set() and ip.links == {}
    assert saved == [{EP}]  # removing a pair needs no checkpoint: the join still names it


def test_a_failing_link_drops_the_intent_it_recorded() -> None:
    ip = FakeIp(fail={"add": "RTNETLINK answers: Operation not permitted\n"})
    fake, wire = _driver(ip)
    wire("NetworkDriver.Join", {**ids(), "SandboxKey": "/k", "Options": {}})
    assert fake.state.links == set() and fake.state.joins == {}


def _joined_state(ip: FakeIp) -> FakeNetDriver:
    """Two endpoints joined with links; a third whose pair was made but whose join was
    never saved (the server died in between); a fourth gone altogether."""
    fake, wire = _driver(ip)
    wire.join()
    other = "ab" * 32
    wire.endpoint(other, "10.0.0.3/24")
    wire.join(other)
    made, gone = "cd" * 32, "ef" * 32
    wire.endpoint(made, "10.0.0.4/24")
    VethLinks(run=ip).create(made)
    fake.state.links |= {made, gone}
    return fake


def test_reconcile_removes_the_pairs_no_saved_join_owns_and_adopts_the_others() -> None:
    ip = FakeIp()
    fake = _joined_state(ip)
    foreign = ("fdv000000000000", "fdp000000000000")  # another server's pair on the host
    ip.links.update({foreign[0]: foreign[1], foreign[1]: foreign[0]})
    done = reconcile(fake.state, VethLinks(run=ip))
    assert done == Reconciled(removed=["cd" * 32, "ef" * 32], adopted=["ab" * 32, EP])
    assert fake.state.links == {EP, "ab" * 32}
    expected = {*VethLinks.names(EP), *VethLinks.names("ab" * 32), *foreign}
    assert set(ip.links) == expected  # the orphan is gone, the foreign pair untouched
    assert reconcile(fake.state, VethLinks(run=ip)).removed == []  # nothing left to do


def test_a_failing_link_refuses_join_and_changes_nothing() -> None:
    ip = FakeIp(fail={"add": "RTNETLINK answers: Operation not permitted\n"})
    fake, wire = _driver(ip)
    before = json.dumps(fake.state.snapshot(), sort_keys=True)
    status, answer = wire(
        "NetworkDriver.Join", {**ids(), "SandboxKey": "/var/run/docker/netns/abc", "Options": {}}
    )
    inner, outer = VethLinks.names(EP)
    assert (status, answer) == (
        200,
        {
            "Err": f"failed to create veth pair {inner}/{outer}: "
            "RTNETLINK answers: Operation not permitted"
        },
    )
    assert json.dumps(fake.state.snapshot(), sort_keys=True) == before
    assert fake.state.joins == {}
    assert ip.links == {}
    ip.fail.clear()  # the host recovers: the same Join now works
    assert wire.join()["InterfaceName"]["SrcName"] == inner


def test_endpoints_whose_ids_share_12_characters_keep_their_own_links() -> None:
    """Interface names hold 12 characters at most after fdv/fdp: a second endpoint whose id
    shares its first 12 characters with a joined one must not take over (or delete) that
    one's interface."""
    ip = FakeIp()
    fake, wire = _driver(ip)
    twin = EP[:12] + "f" * 52
    wire.endpoint(twin, "10.0.0.3/24")
    first = wire.join()["InterfaceName"]["SrcName"]
    _, answer = wire(
        "NetworkDriver.Join",
        {**ids(eid=twin), "SandboxKey": "/var/run/docker/netns/def", "Options": {}},
    )
    if "Err" in answer:  # refusing the second Join is fine...
        assert twin not in fake.state.joins
    else:  # ...answering it with the first endpoint's interface is not
        assert answer["InterfaceName"]["SrcName"] != first, (
            f"both endpoints were given {first}; the second Join deleted and re-made the "
            "first endpoint's veth pair"
        )
    assert ip.links.get(first), f"{first} (joined by endpoint {EP}) is gone"


# -- the real `ip` ---------------------------------------------------------------------------
def _ip_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def test_a_join_makes_a_real_veth_pair_and_leave_removes_it() -> None:
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: a real veth pair needs root (run the tests as root)")
    if shutil.which("ip") is None:
        pytest.skip("SKIPPED LOUDLY: iproute2's `ip` is not installed")
    eid = secrets.token_hex(32)
    inner, outer = VethLinks.names(eid)
    fake = FakeNetDriver(links=VethLinks())
    wire = Wire(fake)
    try:
        wire.network()
        wire.endpoint(eid)
        status, answer = wire(
            "NetworkDriver.Join",
            {**ids(eid=eid), "SandboxKey": "/var/run/docker/netns/abc", "Options": {}},
        )
        if "not permitted" in answer.get("Err", ""):
            pytest.skip(f"SKIPPED LOUDLY: no CAP_NET_ADMIN here: {answer['Err']}")
        assert (status, answer["InterfaceName"]["SrcName"]) == (200, inner), answer
        links = _ip_links()
        assert f": {inner}@{outer}:" in links and f": {outer}@{inner}:" in links, links
        host_end = next(line for line in links.splitlines() if f": {outer}@" in line)
        assert re.search(r"<[^>]*\bUP\b", host_end), host_end
        wire.ok("NetworkDriver.Leave", ids(NET, eid))
        links = _ip_links()
        assert inner not in links and outer not in links, links
    finally:
        subprocess.run(["ip", "link", "del", inner], capture_output=True, check=False)


def test_an_id_with_a_name_template_gets_the_pair_join_names_and_leave_removes_it() -> None:
    """``ip link add fdp%d...`` would make ``fdp0...``: Join would name an interface that
    does not exist, and Leave would remove none."""
    _real_ip_or_skip()
    eid = "%d-" + secrets.token_hex(8)
    inner, outer = VethLinks.names(eid)
    tag = inner[-6:]  # of the id's hash: in whatever name the pair was given

    def made() -> list[str]:
        return re.findall(rf"^\d+: ([^:@]*{tag})[@:]", _ip_links(), re.M)

    fake = FakeNetDriver(links=VethLinks())
    wire = Wire(fake)
    try:
        wire.network()
        wire.endpoint(eid)
        status, answer = wire("NetworkDriver.Join", {**ids(eid=eid), "SandboxKey": "/k"})
        if "not permitted" in answer.get("Err", ""):
            pytest.skip(f"SKIPPED LOUDLY: no CAP_NET_ADMIN here: {answer['Err']}")
        assert (status, answer["InterfaceName"]["SrcName"]) == (200, inner), answer
        assert sorted(made()) == [outer, inner], made()
        wire.ok("NetworkDriver.Leave", ids(NET, eid))
        wire.ok("NetworkDriver.DeleteEndpoint", ids(NET, eid))
        assert made() == []
    finally:
        for name in made():
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


def _real_ip_or_skip() -> str:
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: a real veth pair needs root (run the tests as root)")
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("SKIPPED LOUDLY: iproute2's `ip` is not installed")
    return ip


STALLING_IP = """#!/bin/sh
# `ip` as the server runs it, except that it stalls once a pair is made, so the test can
# kill the server while a Join is half done: the pair exists, the join is not saved.
{ip} "$@"; done=$?
if [ "$1 $2" = "link add" ] && [ $done = 0 ]; then echo $$ > "$FDT_STALLED"; exec sleep 60; fi
exit $done
"""


@pytest.mark.socket
def test_kill_9_while_a_pair_is_made_leaves_no_pair_after_the_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pair exists, the Join is not saved, the server dies: its intent was saved
    first, so the next start removes the pair (it is not in any join)."""
    real_ip = _real_ip_or_skip()
    eid = secrets.token_hex(32)
    inner, outer = VethLinks.names(eid)
    with temporary_short_dir() as folder:
        wrapper = folder / "bin"
        wrapper.mkdir()
        (wrapper / "ip").write_text(STALLING_IP.format(ip=real_ip))
        (wrapper / "ip").chmod(0o755)
        stalled = folder / "stalled"
        sock, state = str(folder / "x.sock"), folder / "state.json"
        args = ("--socket", sock, "--state", str(state), "--links", "veth")
        launcher = Launcher(folder)
        try:
            with monkeypatch.context() as env:
                env.setenv("PATH", f"{wrapper}:{os.environ['PATH']}")
                env.setenv("FDT_STALLED", str(stalled))
                first = launcher(*args).wait_ready()
            with contextlib.closing(Dockerd(sock)) as client, Conn(sock) as join:
                client.ok("NetworkDriver.CreateNetwork", create_network(NET))
                interface = {"Address": "10.0.0.2/24", "AddressIPv6": "", "MacAddress": ""}
                client.ok(
                    "NetworkDriver.CreateEndpoint",
                    {**ids(NET, eid), "Interface": interface, "Options": {}},
                )
                body = {**ids(NET, eid), "SandboxKey": "/k", "Options": {}}
                join.sock.sendall(dockerd_request("NetworkDriver.Join", body))  # no answer
                deadline = time.monotonic() + 10
                while not stalled.exists() or not stalled.read_text().strip():
                    assert time.monotonic() < deadline, first.text()
                    time.sleep(0.02)
                assert f": {outer}@{inner}:" in _ip_links()  # made, and the Join not saved
                first.proc.kill()  # SIGKILL
                first.wait()
                os.kill(int(stalled.read_text()), signal.SIGKILL)  # the stalled `ip` it left
            saved = peek_state(str(state)).snapshot()
            assert saved["links"] == [eid] and saved["endpoints"][eid]["join"] is None

            second = launcher(*args).wait_ready()
            assert inner not in _ip_links() and outer not in _ip_links()
            second.stop()
            assert peek_state(str(state)).snapshot()["links"] == []
            assert "removed the veth pairs of 1 endpoint(s)" in second.text()
            assert f"removed: {eid}" in second.text()
        finally:
            launcher.kill_all()
            subprocess.run([real_ip, "link", "del", inner], capture_output=True, check=False)
