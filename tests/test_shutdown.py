"""``fakedriver serve --state`` stopped by a signal while eight clients write (issue 17):
SIGTERM, SIGHUP, and two signals in a row. Every round must end in exit 0 without a
traceback, with both sockets gone, and with every write that was answered 200 in the
state file afterwards.

The rounds per kind come from ``FAKEDRIVER_SHUTDOWN_ROUNDS`` (default 3, so the fast
suite stays fast); the acceptance run is 50::

    FAKEDRIVER_SHUTDOWN_ROUNDS=50 python -m pytest tests/test_shutdown.py -q
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.rawhttp import call, connect, eventually, read_one, until_eof
from support.serve_env import Conn, Launcher, create_network

from fakedriver import FakeNetDriver
from fakedriver.persist.store import Store, peek_state
from fakedriver.server.control import control
from fakedriver.server.server import PluginServer

pytestmark = pytest.mark.socket  # the socket tier: servers stopped under load

ROUNDS = int(os.environ.get("FAKEDRIVER_SHUTDOWN_ROUNDS", "3"))
WRITERS = 8
#: Acknowledged writes before the signal: the clients are well under way.
UNDER_WAY = 8 * WRITERS


@dataclass
class Acknowledged:
    """What the writers were answered 200 for, and how many, with a condition to wait on."""

    networks: list[str] = field(default_factory=list)
    addresses: list[tuple[str, str]] = field(default_factory=list)  # (pool id, address)
    count: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)
    ended: list[str] = field(default_factory=list)  # how each writer's connection ended

    def note(self, network: str | None = None, address: tuple[str, str] | None = None) -> None:
        with self.changed:
            if network is not None:
                self.networks.append(network)
            if address is not None:
                self.addresses.append(address)
            self.count += 1
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= count, timeout)


def _write(path: str, worker: int, acked: Acknowledged, done: threading.Event) -> None:
    """One dockerd-like client on one keep-alive connection: a pool of its own, then a
    network and an address in turn, until the server stops answering (or ``done``)."""
    how = "done"
    try:
        with Conn(path, timeout=10.0) as conn:
            pool = conn.send(
                "IpamDriver.RequestPool",
                {
                    "AddressSpace": "LocalDefault",
                    "Pool": f"10.{100 + worker}.0.0/16",
                    "SubPool": "",
                    "Options": {},
                    "V6": False,
                },
            )
            if pool.status != 200 or "PoolID" not in pool.json:
                how = f"pool: {pool.status} {pool.body!r}"
                return
            pool_id = pool.json["PoolID"]
            for i in range(1_000_000):
                if done.is_set():
                    return
                if i % 2 == 0:
                    nid = f"{worker:02x}{i:062x}"
                    answer = conn.send("NetworkDriver.CreateNetwork", create_network(nid))
                    if answer.status != 200 or answer.json.get("Err"):
                        how = f"{answer.status} {answer.body!r}"
                        return
                    acked.note(network=nid)
                else:
                    body = {"PoolID": pool_id, "Address": "", "Options": {}}
                    answer = conn.send("IpamDriver.RequestAddress", body)
                    if answer.status != 200 or answer.json.get("Error"):
                        how = f"{answer.status} {answer.body!r}"
                        return
                    acked.note(address=(pool_id, answer.json["Address"]))
    except OSError as exc:  # the server closed the connection (or reset it): not answered
        how = type(exc).__name__
    finally:
        acked.ended.append(how)


KINDS = {
    "SIGTERM": (signal.SIGTERM,),
    "SIGHUP": (signal.SIGHUP,),
    "SIGTERM+SIGINT": (signal.SIGTERM, signal.SIGINT),
}


@dataclass
class Round:
    """One round's outcome."""

    code: int | None
    problems: list[str]
    acked: int


def _round(serve: Launcher, folder: Path, n: int, signums: tuple[int, ...], gap: float) -> Round:
    state = str(folder / f"s{n}.db")
    sock, control = str(folder / f"p{n}.sock"), str(folder / f"c{n}.sock")
    served = serve("--socket", sock, "--control-socket", control, "--state", state, "--quiet")
    served.wait_ready()
    acked, done = Acknowledged(), threading.Event()
    writers = [
        threading.Thread(target=_write, args=(sock, w, acked, done), daemon=True)
        for w in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    problems: list[str] = []
    code: int | None = None
    try:
        if not acked.wait_for(UNDER_WAY, timeout=30.0):
            problems.append(f"only {acked.count} writes acknowledged before the signal")
        for i, signum in enumerate(signums):
            if i:
                # the gap between two signals is the scenario itself (the second arrives
                # while the first one's shutdown runs), not a wait for something
                time.sleep(gap)
            served.proc.send_signal(signum)
        try:
            code = served.wait(timeout=20.0)
        except Exception:
            problems.append("did not exit within 20 s of the signal")
            served.kill()
    finally:
        done.set()
        for writer in writers:
            writer.join(15.0)
    log = served.text()
    if code != 0:
        problems.append(f"exit {code}")
    if "Traceback" in log:
        problems.append("a traceback on stderr:\n" + log[-2000:])
    for left in (sock, control):
        if os.path.lexists(left):
            problems.append(f"{os.path.basename(left)} left behind")
    if any(writer.is_alive() for writer in writers):
        problems.append("a writer still runs")
    if code is not None:  # the file is free again: what was acknowledged must be in it
        problems += _missing(state, acked)
    return Round(code, problems, acked.count)


def _missing(state: str, acked: Acknowledged) -> list[str]:
    try:
        saved = peek_state(state)
    except Exception as exc:
        return [f"the state file cannot be read: {exc}"]
    problems = [
        f"network {nid} acknowledged, not saved"
        for nid in acked.networks
        if nid not in saved.networks
    ]
    for pool_id, address in acked.addresses:
        pool = saved.pools.get(pool_id)
        if pool is None or int(ipaddress.ip_interface(address).ip) not in pool.leases:
            problems.append(f"address {address} of {pool_id} acknowledged, not saved")
    return problems


@pytest.mark.parametrize("signums", KINDS.values(), ids=KINDS.keys())
def test_a_signal_under_writing_clients_stops_cleanly_and_keeps_every_acknowledged_write(
    serve: Launcher, short_dir: Path, signums: tuple[int, ...]
) -> None:
    rng = random.Random(17)
    rounds: list[Round] = []
    for n in range(ROUNDS):
        rounds.append(_round(serve, short_dir, n, signums, gap=rng.uniform(0.0, 0.05)))
    failed = [(n, r) for n, r in enumerate(rounds) if r.problems]
    codes = Counter(r.code for r in rounds)
    summary = (
        f"{len(failed)} of {ROUNDS} rounds failed; exit codes {dict(codes)}; "
        f"{sum(r.acked for r in rounds)} writes acknowledged"
    )
    print(summary)
    assert not failed, summary + "".join(
        f"\nround {n}: " + "; ".join(r.problems) for n, r in failed[:5]
    )


# -- the parts: the driver closes its store once, the server drains its connections ---------
NET = "c" * 64


def test_a_closed_driver_refuses_every_call_503_and_its_store_is_closed(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s.db"))
    fake = FakeNetDriver(store=store, state=store.load())
    held_by_another_thread: list[bool] = []

    def close_store() -> None:  # the store is closed under the driver's lock
        probe = threading.Thread(
            target=lambda: held_by_another_thread.append(not fake._lock.acquire(False))
        )
        probe.start()
        probe.join(5)
        real_close()

    real_close, store.close = store.close, close_store  # type: ignore[method-assign]
    fake.close()
    assert held_by_another_thread == [True]
    assert fake.store is None
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        store.db.execute("SELECT 1")
    for method, key in (
        ("NetworkDriver.CreateNetwork", "Err"),
        ("IpamDriver.RequestPool", "Error"),
    ):
        body = create_network(NET) if method.endswith("CreateNetwork") else {"Pool": ""}
        reply = fake.respond(method, json.dumps(body).encode())
        assert reply.status == 503 and "shutting down" in json.loads(reply.body)[key]
    assert fake.state.networks == {} and fake.state.pools == {}  # nothing served into memory
    assert control(fake, "POST", "/fakedriver/reset", b"{}")[0] == 503
    fake.close()  # a second close does nothing


def test_close_answers_the_call_being_served_then_ends_its_connection(short_dir: Path) -> None:
    """A call the driver is serving when the server closes is answered (with
    ``Connection: close``) and saved; the connection serves nothing after it, and an idle
    connection is closed at once."""
    fake = FakeNetDriver()
    path = str(short_dir / "p.sock")
    server = PluginServer(fake, socket_path=path)
    accepting = threading.Thread(target=server.serve_forever, daemon=True)
    accepting.start()
    closer = threading.Thread(target=server.close)
    with connect(path) as idle, connect(path) as busy:
        assert eventually(lambda: server.connections == 2, 5.0)
        with fake._lock:  # the call waits for the driver's lock, inside the server
            busy.sendall(call("NetworkDriver.CreateNetwork", create_network(NET)))
            assert eventually(lambda: _in_a_request(server) == 1, 5.0)
            closer.start()
            assert eventually(lambda: all(c.closing for c in server._open), 5.0)
        answer = read_one(busy)
        assert answer.status == 200 and answer.headers["connection"] == "close"
        assert until_eof(busy) == b"" and until_eof(idle) == b""
    closer.join(10)
    assert not closer.is_alive() and not os.path.lexists(path)
    assert NET in fake.state.networks


def _in_a_request(server: PluginServer) -> int:
    with server._open_lock:
        return sum(c.idle_since is None for c in server._open)
