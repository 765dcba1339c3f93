"""The state database of ``fakedriver serve --state FILE``: every call's changes are
committed before it is answered, a failed commit is an error answer that changes nothing,
one server holds the file, and loading checks everything it reads.

The tmpfs tests mount a small file system to fill it, so they need root; elsewhere they
skip, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.serve_env import Conn, Launcher, create_network, temporary_short_dir
from support.wire import EP, NET, Wire, ids
from test_faults_socket import control
from test_fuzz import (
    LIGHT,
    METHODS,
    PERSONAS,
    Request,
    check_indexes,
    near_valid_requests,
    seeded,
)
from test_links import FakeIp
from test_persist import build_rich_state

from fakedriver import FakeNetDriver, State
from fakedriver.core.changes import LinkAdded
from fakedriver.persist.schema import SCHEMA, TABLES
from fakedriver.persist.store import StateFileError, Store, peek_state, read, rows
from fakedriver.server.veth import Checkpointed, VethLinks


# -- helpers ----------------------------------------------------------------------------------
def attached(fake: FakeNetDriver, path: Path) -> tuple[FakeNetDriver, Store]:
    """Keep ``fake``'s state (as it is now) in a new database at ``path``; a driver on that
    state committing to it (see `driving()`), and the store."""
    store = Store.open(str(path))
    store.replace(fake.state)
    return driving(fake, store), store


def reloaded(path: Path) -> State:
    """The state the database at ``path`` holds, loaded as a new start loads it."""
    again = Store.open(str(path))
    try:
        return again.load()
    finally:
        again.close()


def driving(fake: FakeNetDriver, store: Store) -> FakeNetDriver:
    """A driver made as ``fake`` (persona, links, clock), on its state, committing each
    call to ``store``, which holds that state already."""
    return FakeNetDriver(
        fake.persona, links=fake.links, clock=fake.clock, store=store, state=fake.state
    )


def db_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as stored, sorted (JSON text compared as parsed)."""
    db = sqlite3.connect(str(path))
    try:
        return {
            table: sorted(
                (tuple(_plain(v) for v in row) for row in db.execute(f"SELECT * FROM {table}")),
                key=repr,
            )
            for table in TABLES
        }
    finally:
        db.close()


def _plain(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            return json.dumps(json.loads(value), sort_keys=True)
    return value


def rows_of(state: State) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sorted((tuple(_plain(v) for v in row) for row in values), key=repr)
        for table, values in rows(state).items()
    }


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a fresh directory (root only: skips elsewhere)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("SKIPPED LOUDLY: needs root (and mount) to mount a small tmpfs and fill it")
    with temporary_short_dir() as short_dir:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(short_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if mounted.returncode != 0:
            pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs: {mounted.stderr.strip()}")
        try:
            yield short_dir
        finally:
            subprocess.run(["umount", "-l", str(short_dir)], capture_output=True, timeout=30)


def fill(path: Path) -> None:
    """Write ``path`` until the file system has no room left."""
    with open(path, "wb", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc


def network_body(nid: str) -> dict[str, Any]:
    return {**create_network(nid), "Options": {"com.example.pad": "x" * 3000}}


# -- every call commits exactly what it changed ----------------------------------------------
@LIGHT
@given(
    persona=st.sampled_from(PERSONAS),
    requests=st.lists(near_valid_requests(list(METHODS)), min_size=2, max_size=8),
)
def test_after_every_call_the_database_holds_what_memory_holds(
    persona: dict[str, Any], requests: list[Request]
) -> None:
    """The records a call's changes name are all it changes: the database, written
    row by row, equals memory after every call, lenient or strict, refused or not."""
    with temporary_short_dir() as short_dir:
        fake = seeded(persona)
        path = short_dir / "state.db"
        fake, store = attached(fake, path)
        try:
            for request in requests:
                fake.handle(request.path, request.raw)
                assert fake.calls[-1].status != 500, fake.calls[-1]
                assert read(store.db, str(path)).snapshot() == fake.state.snapshot(), request
        finally:
            store.close()


class FlakyStore(Store):
    """A store whose commits fail at random, after writing their rows (so the rollback and
    the read-back both matter)."""

    rng = random.Random(0)

    def _write(self, state: State, changes: Any) -> None:
        super()._write(state, changes)
        if self.rng.random() < 0.4:
            raise sqlite3.OperationalError("disk I/O error (injected)")


@LIGHT
@given(
    persona=st.sampled_from(PERSONAS),
    requests=st.lists(near_valid_requests(list(METHODS)), min_size=2, max_size=8),
    seed=st.integers(0, 2**16),
)
def test_a_failed_commit_puts_back_exactly_what_the_call_changed(
    persona: dict[str, Any], requests: list[Request], seed: int
) -> None:
    """A commit that fails answers "state not saved", and the records the call changed are
    read back: memory is what it was before the call, and what the database holds."""
    with temporary_short_dir() as short_dir:
        fake = seeded(persona)
        path = short_dir / "state.db"
        store = FlakyStore.open(str(path))
        store.rng = random.Random(seed)
        store.replace(fake.state)
        fake = driving(fake, store)
        try:
            for request in requests:
                before = fake.state.snapshot()
                fake.handle(request.path, request.raw)
                call = fake.calls[-1]
                if call.error is not None and call.error.startswith("state not saved: "):
                    assert call.status == 500 and "(injected)" in call.error
                    assert fake.state.snapshot() == before, request
                assert read(store.db, str(path)).snapshot() == fake.state.snapshot(), request
                check_indexes(fake)
        finally:
            store.close()


def test_a_failed_commit_that_cannot_be_read_back_refuses_every_later_call(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory may then hold what the database does not: nothing is answered from it."""
    import fakedriver.persist.store as store_module

    store = FlakyStore.open(str(short_dir / "state.db"))
    fake = FakeNetDriver(store=store)
    store.replace(fake.state)
    wire = Wire(fake)
    wire.network("n1")
    store.rng = random.Random(0)
    store.rng.random = lambda: 0.0  # type: ignore[method-assign]  # every commit fails now

    def unreadable(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error (injected)")

    monkeypatch.setattr(store_module, "_put_back", unreadable)
    status, answer = wire("NetworkDriver.CreateNetwork", create_network("n2"))
    assert status == 500 and answer["Err"].startswith("state not saved: disk I/O"), answer
    for method in ("NetworkDriver.GetCapabilities", "NetworkDriver.DeleteNetwork"):
        status, answer = wire(method, {"NetworkID": "n1"})
        assert status == 500, answer
        assert answer["Err"] == (
            f"state not saved: cannot read back state file {short_dir / 'state.db'} "
            "(disk I/O error (injected)): restart the server"
        )
    store.close()
    assert list(peek_state(str(short_dir / "state.db")).networks) == ["n1"]


class FailingStore(Store):
    """A store whose commits raise :attr:`error` (any exception) after writing their rows."""

    error: BaseException | None = None

    def _write(self, state: State, changes: Any) -> None:
        super()._write(state, changes)
        if self.error is not None:
            raise self.error


FAILURES = [
    RuntimeError("injected"),
    KeyError("injected"),
    OverflowError("Python int too large to convert to SQLite INTEGER"),
    RecursionError("maximum recursion depth exceeded"),
    UnicodeEncodeError("utf-8", "sur\ud800", 3, 4, "surrogates not allowed"),
]


@pytest.mark.parametrize("error", FAILURES, ids=lambda error: type(error).__name__)
def test_a_commit_failing_with_any_exception_is_an_error_answer_that_changes_nothing(
    short_dir: Path, error: Exception
) -> None:
    """Only sqlite3.Error used to be caught: anything else left the call's changes in memory
    and not on disk (a lone surrogate in a NetworkID: 500, and the network gone after a
    restart)."""
    path = short_dir / "state.db"
    store = FailingStore.open(str(path))
    fake = FakeNetDriver(store=store)
    store.replace(fake.state)
    wire = Wire(fake)
    wire.network("n1")
    pool = {"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "Options": {}, "V6": False}
    calls = [("NetworkDriver.CreateNetwork", create_network("n2"), "Err"),
             ("IpamDriver.RequestPool", pool, "Error")]  # fmt: skip
    for method, body, key in calls:
        before = fake.state.snapshot()
        store.error = error
        status, answer = wire(method, body)
        assert (status, answer) == (500, {key: f"state not saved: {type(error).__name__}: {error}"})
        assert fake.calls[-1].error == answer[key]
        assert fake.state.snapshot() == before  # nothing of it in memory ...
        assert read(store.db, str(path)).snapshot() == before  # ... nor on disk
        check_indexes(fake)
        store.error = None
        wire.ok(method, body)  # the same call succeeds now: not "already exists"
    store.close()
    assert sorted(peek_state(str(path)).networks) == ["n1", "n2"]
    assert len(peek_state(str(path)).pools) == 1


def test_a_commit_interrupted_puts_memory_back_and_raises(short_dir: Path) -> None:
    """Not even KeyboardInterrupt (in-process, Ctrl-C) leaves a call's changes in memory."""
    path = short_dir / "state.db"
    store = FailingStore.open(str(path))
    fake = FakeNetDriver(store=store)
    store.replace(fake.state)
    before = fake.state.snapshot()
    store.error = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        fake.handle("NetworkDriver.CreateNetwork", json.dumps(create_network("n1")).encode())
    assert fake.state.snapshot() == before == read(store.db, str(path)).snapshot()
    store.close()


def test_a_record_that_cannot_be_encoded_is_not_kept(short_dir: Path) -> None:
    """A value the database cannot store (text that is not UTF-8, as a lone surrogate is)
    fails the commit in SQLite's binding, not as an sqlite3.Error: the call answers 500 and
    its record is read back as saved. The value is put in memory directly (through the
    state, which keeps its indexes): the decoder refuses such input before it can get
    there."""
    path = short_dir / "state.db"
    fake, store = attached(FakeNetDriver(), path)
    wire = Wire(fake)
    wire.network()
    wire.endpoint(mac="02:42:0a:00:00:02")
    saved = fake.state.snapshot()
    endpoint = fake.state.remove_endpoint(EP)
    endpoint.mac = "02:42:0a:00:00:0\ud800"
    fake.state.add_endpoint(endpoint)
    status, answer = wire("NetworkDriver.Join", {**ids(), "SandboxKey": "/k", "Options": {}})
    assert status == 500 and answer["Err"].startswith("state not saved: UnicodeEncodeError: ")
    assert fake.state.snapshot() == saved == read(store.db, str(path)).snapshot()
    check_indexes(fake)
    wire.join()  # and the server carries on
    store.close()


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("NetworkDriver.CreateNetwork", b'{"NetworkID": "sur\\ud800", "Options": {}, '
         b'"IPv4Data": [], "IPv6Data": []}'),
        ("NetworkDriver.CreateEndpoint", b'{"NetworkID": "n1", "EndpointID": "sur\\ud800", '
         b'"Options": {}, "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ""}}'),
    ],
    ids=["NetworkID", "EndpointID"],
)  # fmt: skip
def test_a_lone_surrogate_in_an_id_leaves_memory_and_disk_agreeing(
    short_dir: Path, method: str, body: bytes
) -> None:
    """The adversary's input: refused at decode (400) or not saved (500), never kept in
    memory alone."""
    path = short_dir / "state.db"
    fake, store = attached(FakeNetDriver(), path)
    wire = Wire(fake)
    wire.ok("NetworkDriver.CreateNetwork", create_network("n1"))
    before = fake.state.snapshot()
    status, answer = wire.raw(method, body)
    assert status in (400, 500) and answer["Err"], answer
    assert fake.state.snapshot() == before == read(store.db, str(path)).snapshot()
    wire.ok("NetworkDriver.CreateNetwork", create_network("n2"))  # and the server carries on
    store.close()


def test_a_link_intent_failing_with_any_exception_makes_no_pair(short_dir: Path) -> None:
    """The checkpoint before ``ip link add`` is a commit like any other."""
    ip = FakeIp()
    store = FailingStore.open(str(short_dir / "state.db"))
    checkpoint = lambda eid: store.commit(fake.state, [LinkAdded(eid)])  # noqa: E731
    fake = FakeNetDriver(links=Checkpointed(VethLinks(run=ip), checkpoint), store=store)
    wire = Wire(fake)
    store.replace(fake.state)
    wire.network()
    wire.endpoint()
    before = fake.state.snapshot()
    store.error = RuntimeError("injected")
    status, answer = wire("NetworkDriver.Join", {**ids(), "SandboxKey": "/k", "Options": {}})
    assert (status, answer) == (500, {"Err": "state not saved: RuntimeError: injected"})
    assert ip.argv == [] and fake.state.snapshot() == before
    assert read(store.db, str(short_dir / "state.db")).snapshot() == before
    store.close()


class CommitFails:
    """A connection whose COMMIT (and, with ``rollback_fails``, ROLLBACK) fails without
    running, as SQLite may leave a transaction open after a failed COMMIT (SQLITE_FULL,
    SQLITE_IOERR): its rows are then readable on this connection, and saved nowhere."""

    def __init__(self, db: sqlite3.Connection, rollback_fails: bool) -> None:
        self.db, self.failing = db, False
        self.refuse = ("COMMIT", "ROLLBACK") if rollback_fails else ("COMMIT",)

    def execute(self, sql: str, *args: Any) -> Any:
        if self.failing and sql in self.refuse:
            raise sqlite3.OperationalError(f"disk I/O error (injected at {sql})")
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@pytest.mark.parametrize("rollback_fails", [False, True], ids=["rolled-back", "left-open"])
def test_a_failed_commit_is_not_read_back_from_its_own_open_transaction(
    short_dir: Path, rollback_fails: bool
) -> None:
    path = short_dir / "state.db"
    opened = Store.open(str(path))
    db = CommitFails(opened.db, rollback_fails)
    store = Store(str(path), db)  # type: ignore[arg-type]
    fake = FakeNetDriver(store=store)
    store.replace(fake.state)
    wire = Wire(fake)
    wire.network("n1")
    before = fake.state.snapshot()
    db.failing = True
    status, answer = wire("NetworkDriver.CreateNetwork", create_network("n2"))
    assert status == 500 and answer["Err"].startswith("state not saved: disk I/O error"), answer
    db.failing = False
    if rollback_fails:  # memory cannot be put back from what is saved: nothing is answered
        status, answer = wire("NetworkDriver.CreateNetwork", create_network("n2"))
        assert status == 500 and "restart the server" in answer["Err"], answer
        store.close()
        assert list(peek_state(str(path)).networks) == ["n1"]
        return
    assert fake.state.snapshot() == before == read(store.db, str(path)).snapshot()
    wire.ok("NetworkDriver.CreateNetwork", create_network("n2"))
    store.close()
    assert sorted(peek_state(str(path)).networks) == ["n1", "n2"]


def test_a_link_intent_that_cannot_be_saved_makes_no_pair(short_dir: Path) -> None:
    """``serve --links veth --state`` commits the intent before ``ip link add``; when that
    commit fails, Join answers "state not saved", no pair is made, nothing changes."""
    ip = FakeIp()
    store = FlakyStore.open(str(short_dir / "state.db"))
    checkpoint = lambda eid: store.commit(fake.state, [LinkAdded(eid)])  # noqa: E731
    fake = FakeNetDriver(links=Checkpointed(VethLinks(run=ip), checkpoint), store=store)
    wire = Wire(fake)
    store.replace(fake.state)
    store.rng = random.Random(0)
    wire.network()
    wire.endpoint()
    store.rng.random = lambda: 0.0  # type: ignore[method-assign]  # every commit fails now
    before = fake.state.snapshot()
    status, answer = wire("NetworkDriver.Join", {**ids(), "SandboxKey": "/k", "Options": {}})
    assert status == 500 and answer["Err"].startswith("state not saved: "), answer
    assert ip.argv == [] and fake.state.snapshot() == before
    assert read(store.db, str(short_dir / "state.db")).snapshot() == before
    store.close()


def test_a_rich_state_round_trips_through_the_database(short_dir: Path) -> None:
    fake = FakeNetDriver(scope="global", strict=False)
    build_rich_state(fake)
    fake, store = attached(fake, short_dir / "state.db")
    store.close()
    loaded = reloaded(short_dir / "state.db")
    assert loaded.snapshot() == {**fake.state.snapshot(), "run": 1}
    assert peek_state(str(short_dir / "state.db")).run == 1  # the new run is saved at once
    network = loaded.networks[NET]
    assert network.endpoints
    assert all(loaded.endpoints[eid] is endpoint for eid, endpoint in network.endpoints.items())
    assert {str(ip) for ip in network.addresses} == {"10.91.1.50", "fd00:92::50", "10.91.1.51"}


@pytest.mark.parametrize("sent", ["FD00::1", "fd00:0::1", "::ffff:10.0.0.2", "::FFFF:1.2.3.4"])
def test_a_node_in_any_spelling_is_saved_as_it_loads(short_dir: Path, sent: str) -> None:
    """A node's addresses are saved in the canonical text the loader holds a file to, so
    the file loads again (a spelling kept as sent made every later start fail)."""
    fake, store = attached(FakeNetDriver(scope="global"), short_dir / "state.db")
    data = {"Address": sent, "BindAddress": sent, "Self": False}
    Wire(fake).ok("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": data})
    store.close()
    loaded = reloaded(short_dir / "state.db")
    assert loaded.snapshot() == {**fake.state.snapshot(), "run": 1}


def test_pools_are_loaded_in_the_order_they_were_made(short_dir: Path) -> None:
    """They were loaded in id order: after a restart, a refused RequestPool named another
    of the pools it overlaps than before."""
    path = short_dir / "state.db"
    fake, store = attached(FakeNetDriver(), path)
    for pool in ("10.0.0.4/30", "10.0.0.0/30"):
        Wire(fake).ok("IpamDriver.RequestPool", {"AddressSpace": "LocalDefault", "Pool": pool})
    store.close()
    for run, pool in ((1, "10.0.1.0/30"), (2, "10.0.0.8/30")):  # a later run: call 0 again
        store = Store.open(str(path))
        wire = Wire(FakeNetDriver(store=store, state=store.load()))
        wire.ok("IpamDriver.RequestPool", {"AddressSpace": "LocalDefault", "Pool": pool})
        assert [(p.run, p.call) for p in wire.fake.state.pools.values()][-1] == (run, 0)
        made = list(wire.fake.state.pools)
        store.close()
    loaded = peek_state(str(path))
    assert list(loaded.pools) == made == [
        "LocalDefault/10.0.0.4/30", "LocalDefault/10.0.0.0/30", "LocalDefault/10.0.1.0/30",
        "LocalDefault/10.0.0.8/30",
    ]  # fmt: skip
    wire = Wire(FakeNetDriver(state=loaded))
    assert wire.refused(
        "IpamDriver.RequestPool", {"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24"}
    ) == "pool 10.0.0.0/24 overlaps pool 10.0.0.4/30 (LocalDefault/10.0.0.4/30)"


def test_reset_and_lost_reply_are_saved(short_dir: Path) -> None:
    path = short_dir / "state.db"
    fake, store = attached(FakeNetDriver(), path)
    wire = Wire(fake)
    wire.network("n1")
    fake.fail("CreateNetwork", kind="lost_reply", times=1)
    reply = fake.respond("/NetworkDriver.CreateNetwork", json.dumps(create_network("n2")).encode())
    assert reply.status != 200 or b"Err" in reply.body  # the client sees an error ...
    assert "n2" in fake.state.networks  # ... but the call was served
    assert sorted(read(store.db, str(path)).networks) == ["n1", "n2"]  # and saved
    fake.reset()
    assert read(store.db, str(path)).snapshot() == State().snapshot()
    wire.network("n3")
    store.close()
    assert sorted(peek_state(str(path)).networks) == ["n3"]


@pytest.mark.socket
def test_reset_and_lost_reply_over_the_control_api_survive_kill_9(
    serve: Launcher, short_dir: Path
) -> None:
    path, sock = short_dir / "state.db", str(short_dir / "x.sock")
    args = ("--socket", sock, "--state", str(path), "--quiet")
    first = serve(*args).wait_ready()
    with Conn(sock) as conn:
        for nid in ("n1", "n2"):
            assert conn.send("NetworkDriver.CreateNetwork", create_network(nid)).status == 200
        rule = {"method": "CreateNetwork", "kind": "lost_reply", "times": 1}
        assert control(sock, "POST", "/fakedriver/faults", rule)[0] == 200
        lost = conn.send("NetworkDriver.CreateNetwork", create_network("n3"))
        assert lost.json.get("Err"), lost.json  # served, but answered as an error
    first.proc.kill()
    first.wait()
    assert sorted(peek_state(str(path)).networks) == ["n1", "n2", "n3"]
    second = serve(*args).wait_ready()
    assert control(sock, "POST", "/fakedriver/reset")[0] == 200
    with Conn(sock) as conn:
        assert conn.send("NetworkDriver.CreateNetwork", create_network("n4")).status == 200
    second.proc.kill()
    second.wait()
    assert sorted(peek_state(str(path)).networks) == ["n4"]


# -- a failed commit is an error answer and changes nothing ------------------------------------
def test_a_full_disk_is_an_error_answer_memory_unchanged_and_the_retry_succeeds() -> None:
    with tmpfs("512k") as short_dir:
        path, filler = short_dir / "state.db", short_dir / "filler"
        fake, store = attached(FakeNetDriver(), path)
        wire = Wire(fake)
        fill(filler)
        acked: list[str] = []
        for i in range(200):
            before = fake.state.snapshot()
            status, answer = wire("NetworkDriver.CreateNetwork", network_body(f"n{i}"))
            if status != 200:
                break
            acked.append(f"n{i}")
        else:
            pytest.fail("the file system never filled up")
        assert status == 500 and answer["Err"].startswith("state not saved: "), answer
        assert "full" in answer["Err"]
        assert fake.state.snapshot() == before  # memory as the last commit left it
        assert fake.calls[-1].error == answer["Err"]
        filler.unlink()  # space returns
        wire.ok("NetworkDriver.CreateNetwork", network_body(f"n{len(acked)}"))  # not "exists"
        store.close()
        assert sorted(peek_state(str(path)).networks) == sorted([*acked, f"n{len(acked)}"])


@pytest.mark.socket
def test_a_full_disk_answers_the_socket_client_with_500(serve: Launcher) -> None:
    with tmpfs("512k") as short_dir:
        path, filler = short_dir / "state.db", short_dir / "filler"
        sock = str(serve.folder / "x.sock")
        served = serve("--socket", sock, "--state", str(path), "--quiet").wait_ready()
        fill(filler)
        with Conn(sock) as conn:
            for i in range(200):
                response = conn.send("NetworkDriver.CreateNetwork", network_body(f"n{i}"))
                if response.status != 200:
                    break
            else:
                pytest.fail("the file system never filled up")
            assert response.status == 500, response.body
            assert response.json["Err"].startswith("state not saved: ")
            filler.unlink()
            again = conn.send("NetworkDriver.CreateNetwork", network_body(f"n{i}"))
            assert (again.status, again.json) == (200, {})
        assert served.stop() == 0
        assert len(peek_state(str(path)).networks) == i + 1


def test_a_read_only_folder_is_refused_at_start(serve: Launcher) -> None:
    with tmpfs("1m") as short_dir:
        existing = short_dir / "state.db"
        fake = FakeNetDriver()
        attached(fake, existing)[1].close()
        remount = ["mount", "-o", "remount,ro", str(short_dir)]
        subprocess.run(remount, check=True, timeout=30)
        new = short_dir / "new.db"
        said = {  # not "disk I/O error" or "unable to open database file"
            existing: f"cannot use state file {existing}: its folder is not writable "
            "(Read-only file system), and the database keeps its -wal file there",
            new: f"cannot create state file {new}: its folder is not writable "
            "(Read-only file system)",
        }
        for path in (existing, new):
            sock = str(serve.folder / "x.sock")
            served = serve("--socket", sock, "--state", str(path))
            assert served.wait() == 2, served.text()
            assert served.lines() == [f"fakedriver: {said[path]}"]
            assert not os.path.exists(sock)


# -- one server per file -------------------------------------------------------------------------
@pytest.mark.socket
def test_a_second_server_on_the_same_file_is_refused(serve: Launcher, short_dir: Path) -> None:
    path = short_dir / "state.db"
    first = serve("--socket", str(short_dir / "a.sock"), "--state", str(path)).wait_ready()
    second = serve("--socket", str(short_dir / "b.sock"), "--state", str(path))
    assert second.wait() == 2
    assert second.lines() == [
        f"fakedriver: cannot use state file {path}: another fakedriver serve holds it"
    ]
    with Conn(str(short_dir / "a.sock")) as conn:  # the first carries on
        assert conn.send("NetworkDriver.CreateNetwork", create_network(NET)).status == 200
    shown = _cli("state", "show", str(path))  # nor can a reader look while it runs
    assert shown.returncode == 2 and "a running fakedriver serve holds it" in shown.stderr
    assert first.stop() == 0
    assert list(peek_state(str(path)).networks) == [NET]


@pytest.mark.socket
def test_a_symlink_is_followed_and_stays_a_symlink(serve: Launcher, short_dir: Path) -> None:
    (short_dir / "real").mkdir()
    target, link = short_dir / "real" / "state.db", short_dir / "state.db"
    link.symlink_to(target)
    sock = str(short_dir / "x.sock")
    served = serve("--socket", sock, "--state", str(link)).wait_ready()
    with Conn(sock) as conn:
        assert conn.send("NetworkDriver.CreateNetwork", create_network(NET)).status == 200
    assert served.stop() == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert list(peek_state(str(target)).networks) == [NET]
    assert sorted(p.name for p in (short_dir / "real").iterdir()) == ["state.db"]


# -- loading: a bad file is one line, never a traceback, never nonsense -------------------------
def _rich_db(path: Path) -> None:
    fake = FakeNetDriver(scope="global", strict=False)
    build_rich_state(fake)
    attached(fake, path)[1].close()


REPLACEMENTS: list[Any] = [
    None, 0, 1, -1, 2**40, 1.5, "", "1", "x", "10.0.0.1", "10.0.0.1/24", "10.0.0.0/24",
    "fd00::1/64", "02:42:AC:11:00:02", "{}", "[]", "null", '{"a": 1}', b"\x00\x01",
    "GlobalDefault", "gateway",
]  # fmt: skip


def _mutate(path: Path, rng: random.Random) -> str:
    """One change to the database at ``path``; returns what it did."""
    db = sqlite3.connect(str(path))
    try:
        tables = [t for t in TABLES if db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]]
        table = rng.choice(tables)
        rowids = [r[0] for r in db.execute(f"SELECT rowid FROM {table}")]
        rowid = rng.choice(rowids)
        kind = rng.random()
        if kind < 0.1:
            db.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
            what = f"deleted {table} row {rowid}"
        else:
            column = rng.choice(TABLES[table] if table != "meta" else ("key", "value"))
            column = column.split()[0]
            value = rng.choice(REPLACEMENTS)
            with contextlib.suppress(sqlite3.IntegrityError):  # a clash with a primary key
                db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (value, rowid))
            what = f"{table}.{column} of row {rowid} = {value!r}"
        db.commit()
        return what
    finally:
        db.close()


def _flip(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    at = rng.randrange(len(data))
    data[at] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return f"bit flipped at byte {at}"


def _loads_faithfully_or_refuses(path: Path, what: str) -> str:
    try:
        state = peek_state(str(path))
    except StateFileError as exc:
        message = str(exc)
        assert "\n" not in message and str(path) in message, (what, message)
        return "refused"
    assert rows_of(state) == db_rows(path), f"{what}: loaded, but not as stored"
    return "loaded"


@pytest.mark.parametrize(
    ("mutate", "reached"), [(_mutate, 100), (_flip, 10)], ids=["values", "bits"]
)
def test_mutated_databases_load_faithfully_or_are_refused_in_one_line(
    short_dir: Path, mutate: Any, reached: int
) -> None:
    """300 seeded mutations each: a changed value, a deleted row, or flipped bits (most
    land in free space). Loaded means loaded as stored: the rows the loaded state would
    write are the rows the file holds."""
    clean = short_dir / "clean.db"
    _rich_db(clean)
    rng = random.Random(9)
    outcomes: dict[str, int] = {"refused": 0, "loaded": 0}
    for i in range(300):
        path = short_dir / f"m{i}.db"
        shutil.copy(clean, path)
        what = " and ".join(mutate(path, rng) for _ in range(rng.choice((1, 1, 2))))
        outcomes[_loads_faithfully_or_refuses(path, what)] += 1
        path.unlink()
    assert outcomes["refused"] >= reached, outcomes  # the mutations do reach the checks


def test_a_bad_file_at_start_is_exit_2_with_one_line(serve: Launcher, short_dir: Path) -> None:
    path = short_dir / "state.db"
    _rich_db(path)
    db = sqlite3.connect(str(path))
    db.execute("UPDATE leases SET address = '1' WHERE rowid = (SELECT min(rowid) FROM leases)")
    db.commit()
    db.close()
    served = serve("--socket", str(short_dir / "x.sock"), "--state", str(path))
    assert served.wait() == 2
    assert len(served.lines()) == 1 and "Traceback" not in served.text()
    assert served.lines()[0].startswith(f"fakedriver: cannot load state file {path}: leases row")
    assert "'1' is not an IP address" in served.text()


def test_a_run_too_large_to_count_on_is_exit_2_with_one_line(
    serve: Launcher, short_dir: Path
) -> None:
    """2**63 - 1 was an OverflowError traceback and exit 1 (the next run overflows)."""
    path = short_dir / "state.db"
    _rich_db(path)
    db = sqlite3.connect(str(path))
    db.execute("UPDATE meta SET value = ? WHERE key = 'run'", (2**63 - 1,))
    db.commit()
    db.close()
    served = serve("--socket", str(short_dir / "x.sock"), "--state", str(path))
    assert served.wait() == 2, served.text()
    assert served.lines() == [
        f"fakedriver: cannot load state file {path}: meta row 'run': {2**63 - 1} is more than "
        f"{2**53 - 1}, the largest it holds"
    ]


def test_another_schema_version_is_refused(short_dir: Path) -> None:
    path = short_dir / "state.db"
    _rich_db(path)
    db = sqlite3.connect(str(path))
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA + 1,))
    db.commit()
    db.close()
    with pytest.raises(StateFileError, match=f"schema version {SCHEMA + 1}, this fakedriver"):
        peek_state(str(path))


def test_a_json_state_file_is_refused_and_can_be_imported(short_dir: Path) -> None:
    from fakedriver.persist.jsonfile import save

    fake = FakeNetDriver(scope="global", strict=False)
    build_rich_state(fake)
    old, new = short_dir / "state.json", short_dir / "state.db"
    save(fake.state, str(old))
    with pytest.raises(StateFileError, match=f"state file {old}: file is not a database") as bad:
        Store.open(str(old)).load()
    assert str(bad.value).endswith(f"fakedriver state import {old} NEW)")
    done = _cli("state", "import", str(old), str(new))
    assert done.returncode == 0, done.stderr
    assert peek_state(str(new)).snapshot() == fake.state.snapshot()


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"networks": {"sur\ud800": {"options": {}, "ipv4_data": [], "ipv6_data": [], "call": 0}}},
         "body holds a string that is not Unicode text (an unpaired surrogate, "
         "\\ud800 to \\udfff)"),
        ({"epoch": 2**64}, "OverflowError: Python int too large to convert to SQLite INTEGER"),
    ],
    ids=["surrogate", "overflow"],
)  # fmt: skip
def test_a_json_state_file_the_database_cannot_hold_is_refused_in_one_line(
    short_dir: Path, state: dict[str, Any], problem: str
) -> None:
    """It was a traceback (exit 1), and left the new database behind."""
    empty = {"epoch": 0, "run": 0, "networks": {}, "endpoints": {}, "allocations": {},
             "nodes": {}, "pools": {}, "violations": []}  # fmt: skip
    old, new = short_dir / "state.json", short_dir / "state.db"
    old.write_text(json.dumps({**empty, **state}))
    done = _cli("state", "import", str(old), str(new))
    assert done.returncode == 2
    refused = (
        f"fakedriver: cannot import {old} into {new}: {problem}\n",  # the database refuses it
        f"fakedriver: cannot load state file {old}: {problem}\n",  # the decoder, before it
    )
    assert done.stderr in refused
    assert sorted(p.name for p in short_dir.iterdir()) == ["state.json"]


# -- fakedriver state show ----------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fakedriver", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_state_show(short_dir: Path) -> None:
    path = short_dir / "state.db"
    _rich_db(path)
    shown = _cli("state", "show", "--json", str(path))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == peek_state(str(path)).snapshot()
    text = _cli("state", "show", str(path))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"{path}: run 0, epoch 2, 1 network(s), 2 endpoint(s)")
    assert f"network {NET} [10.91.0.0/16, fd00:92::/64]" in text.stdout
    missing = _cli("state", "show", str(short_dir / "nope.db"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert not (short_dir / "nope.db").exists()


def test_state_show_escapes_a_clients_text(short_dir: Path) -> None:
    """A NetworkID with a newline forged a line of ``state show``, and its escape
    sequences reached the terminal of whoever looked."""
    nid = "real\nnetwork forged [10.99.0.0/16]\x1b[2K\x9b"
    fake = FakeNetDriver()
    wire = Wire(fake)
    wire.ok("NetworkDriver.CreateNetwork", {"NetworkID": nid, "IPv4Data": [], "IPv6Data": []})
    wire.ok("NetworkDriver.CreateEndpoint", {"NetworkID": nid, "EndpointID": "e\r1"})
    store = Store.open(str(short_dir / "s.db"))
    store.replace(fake.state)
    store.close()
    text = _cli("state", "show", str(short_dir / "s.db"))
    assert text.returncode == 0, text.stderr
    assert all(char.isprintable() for char in text.stdout.replace("\n", "")), ascii(text.stdout)
    lines = text.stdout.splitlines()
    assert len(lines) == 3, lines  # the header, the network, its endpoint
    assert lines[1] == r"network real\nnetwork forged [10.99.0.0/16]\x1b[2K\x9b [no pools]"
    assert lines[2].startswith(r"  endpoint e\r1 ")


# -- kill -9 under load ---------------------------------------------------------------------------
class Ledger:
    """What the clients were told: acknowledged creates and deletes, and the calls that got
    no answer (either outcome is right for those)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.present: set[str] = set()
        self.absent: set[str] = set()
        self.unknown: set[str] = set()

    def sent(self, key: str) -> None:
        with self.lock:
            self.present.discard(key)
            self.absent.discard(key)
            self.unknown.add(key)

    def acked(self, key: str, present: bool) -> None:
        with self.lock:
            self.unknown.discard(key)
            (self.present if present else self.absent).add(key)
            (self.absent if present else self.present).discard(key)


def _client(
    sock: str, tag: str, first: int, pool: str, ledger: Ledger, stop: threading.Event
) -> None:
    """Creates and deletes networks, requests and releases addresses (from ``first`` on in
    the pool, each once), until the server dies or ``stop``."""
    rng = random.Random(tag)
    mine: list[str] = []  # acknowledged networks and addresses of this client
    try:
        with Conn(sock, timeout=5) as conn:
            for i in range(1, 10_000):
                if stop.is_set():
                    return
                if mine and rng.random() < 0.3:
                    key = mine.pop(rng.randrange(len(mine)))
                    kind, _, name = key.partition(":")
                    ledger.sent(key)
                    if kind == "net":
                        response = conn.send("NetworkDriver.DeleteNetwork", {"NetworkID": name})
                    else:
                        body = {"PoolID": pool, "Address": name}
                        response = conn.send("IpamDriver.ReleaseAddress", body)
                    assert response.status == 200 and response.json == {}, response.json
                    ledger.acked(key, present=False)
                elif rng.random() < 0.5:
                    key = f"net:{tag}n{i}"
                    ledger.sent(key)
                    response = conn.send("NetworkDriver.CreateNetwork", create_network(key[4:]))
                    assert response.status == 200 and response.json == {}, response.json
                    ledger.acked(key, present=True)
                    mine.append(key)
                else:  # by address, so that an unanswered request names its address too
                    address = str(ipaddress.ip_address("10.64.0.0") + first + i)
                    key = f"ip:{address}"
                    ledger.sent(key)
                    body = {"PoolID": pool, "Address": address, "Options": {}}
                    response = conn.send("IpamDriver.RequestAddress", body)
                    assert response.status == 200, response.json
                    ledger.acked(key, present=True)
                    mine.append(key)
    except (OSError, ValueError):  # killed mid-call: that call's outcome is unknown
        return


def _on_disk(path: Path, pool: str) -> set[str]:
    state = peek_state(str(path))
    leased = {f"ip:{a.partition('/')[0]}" for a in state.addresses.get(pool, [])}
    return {f"net:{nid}" for nid in state.networks} | leased


@pytest.mark.socket
def test_kill_9_under_load_loses_nothing_acknowledged_and_resurrects_nothing(
    serve: Launcher, short_dir: Path
) -> None:
    path, sock = short_dir / "state.db", str(short_dir / "x.sock")
    args = ("--socket", sock, "--state", str(path), "--quiet")
    ledger = Ledger()
    first = serve(*args).wait_ready()
    with Conn(sock) as conn:
        answer = conn.send(
            "IpamDriver.RequestPool",
            {"AddressSpace": "LocalDefault", "Pool": "10.64.0.0/12", "SubPool": "", "V6": False},
        ).json
    pool = answer["PoolID"]
    first.proc.kill()
    first.wait()
    rng = random.Random(20)
    kills = unanswered = 0
    for cycle in range(24):
        served = serve(*args).wait_ready()
        stop = threading.Event()
        clients = [
            threading.Thread(
                target=_client,
                args=(sock, f"c{cycle}t{t}", (cycle * 4 + t) * 10_000, pool, ledger, stop),
            )
            for t in range(4)
        ]
        for client in clients:
            client.start()
        time.sleep(rng.uniform(0.05, 0.4))
        served.proc.kill()  # SIGKILL, mid-call for some client
        assert served.wait() == -9
        kills += 1
        stop.set()
        for client in clients:
            client.join(timeout=10)
            assert not client.is_alive()
        disk = _on_disk(path, pool)
        lost = ledger.present - disk
        resurrected = ledger.absent & disk
        assert not lost and not resurrected, (cycle, sorted(lost), sorted(resurrected))
        with ledger.lock:  # what the unanswered calls did, the database says
            unanswered += len(ledger.unknown)
            for key in ledger.unknown:
                (ledger.present if key in disk else ledger.absent).add(key)
            ledger.unknown.clear()
    assert kills >= 20 and unanswered >= 5, (kills, unanswered)  # killed mid-call
    assert len(ledger.present) > 100 and len(ledger.absent) > 20, (ledger.present, ledger.absent)
