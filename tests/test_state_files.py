"""The files of a state database: only their owner may read them (the database, ``-wal`` and
``-shm`` are 0600; an existing one other users may open is made 0600, and the server says
so), and a folder or file the server cannot write is refused at start saying which.

The ``nobody`` tests run ``fakedriver`` as uid 65534 (root only: elsewhere they skip, saying
so); the read-only file system tests are in ``test_state_db.py`` (they mount a tmpfs).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.rawhttp import nobody_command
from support.serve_env import Conn, Launcher, create_network

from fakedriver import FakeNetDriver
from fakedriver.persist.store import StateFileError, Store, peek_state


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which SQLite alone makes files 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def with_wal(path: Path) -> None:
    """Leave ``path`` as a ``kill -9`` leaves a database: with changes in its ``-wal``."""
    writer = sqlite3.connect(str(path))
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # the change stays in the -wal
    writer.execute("UPDATE meta SET value = 5 WHERE key = 'epoch'")
    writer.commit()
    for name in (path.name, f"{path.name}-wal"):  # copied while open: as if it were killed
        (path.parent / f"killed-{name}").write_bytes((path.parent / name).read_bytes())
    writer.close()
    for name in (path.name, f"{path.name}-wal"):
        os.replace(path.parent / f"killed-{name}", path.parent / name)


# -- modes ----------------------------------------------------------------------------------------
def test_a_new_database_and_its_wal_are_0600(short_dir: Path, umask_022: None) -> None:
    """They were 0644: any local user could read every network, id and address."""
    path = short_dir / "state.db"
    store = Store.open(str(path))
    try:
        store.load()
        store.commit(FakeNetDriver().state, [])
        assert (short_dir / "state.db-wal").exists()
        assert {p.name: mode(p) for p in short_dir.iterdir()} == {
            "state.db": 0o600,
            "state.db-wal": 0o600,
        }
        assert store.notes == []
    finally:
        store.close()


@pytest.mark.parametrize("loose", [0o644, 0o604, 0o666], ids=oct)
def test_a_database_other_users_may_open_is_made_0600(
    short_dir: Path, umask_022: None, loose: int
) -> None:
    path = short_dir / "state.db"
    Store.open(str(path)).close()
    with_wal(path)
    path.chmod(loose)
    (short_dir / "state.db-wal").chmod(loose)
    store = Store.open(str(path))
    try:
        assert store.notes == [
            f"state file {name} was open to other users (mode {loose:04o}): made it 0600"
            for name in (path, f"{path}-wal")
        ]
        assert {p.name: mode(p) for p in short_dir.iterdir()} == {
            "state.db": 0o600,
            "state.db-wal": 0o600,
        }
        assert store.load().epoch == 5  # the -wal was read, not lost
    finally:
        store.close()


@pytest.mark.parametrize("shared", [0o600, 0o640, 0o660], ids=oct)
def test_a_database_only_its_owner_and_group_may_open_is_left_as_it_is(
    short_dir: Path, shared: int
) -> None:
    """A group the owner chose stays: only permissions for every user are taken away."""
    path = short_dir / "state.db"
    Store.open(str(path)).close()
    path.chmod(shared)
    store = Store.open(str(path))
    store.close()
    assert store.notes == [] and mode(path) == shared


@pytest.mark.socket
def test_serve_says_it_made_the_state_file_0600(serve: Launcher, short_dir: Path) -> None:
    path, sock = short_dir / "state.db", str(short_dir / "x.sock")
    Store.open(str(path)).close()
    path.chmod(0o644)
    served = serve("--socket", sock, "--state", str(path)).wait_ready()
    with Conn(sock) as conn:
        assert conn.send("NetworkDriver.CreateNetwork", create_network("n1")).status == 200
    assert mode(path) == 0o600 and mode(short_dir / "state.db-wal") == 0o600
    assert served.stop() == 0
    assert served.lines()[0] == (
        f"fakedriver: state file {path} was open to other users (mode 0644): made it 0600"
    )
    assert list(peek_state(str(path)).networks) == ["n1"]


# -- folders and files the server cannot write -------------------------------------------------
NOBODY = nobody_command()
needs_nobody = pytest.mark.skipif(
    NOBODY is None,
    reason="SKIPPED LOUDLY: needs root and /usr/bin/python3 of this Python's version, "
    "to run as nobody",
)


def as_nobody(folder: Path, path: Path) -> subprocess.CompletedProcess[str]:
    """``fakedriver serve --state path`` run as nobody, its socket in ``folder``."""
    assert NOBODY is not None
    return subprocess.run(
        [*NOBODY, "serve", "--socket", str(folder / "x.sock"), "--state", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        user=65534,
        group=65534,
        check=False,
    )


@needs_nobody
def test_a_folder_the_server_cannot_write_is_refused_saying_so(short_dir: Path) -> None:
    """It said ``unable to open database file`` (new) or ``attempt to write a readonly
    database`` (existing)."""
    short_dir.chmod(0o1777)  # the socket's folder: anyone may make a file, as in /tmp
    locked = short_dir / "locked"
    locked.mkdir()
    existing = locked / "state.db"
    Store.open(str(existing)).close()
    os.chown(existing, 65534, 65534)
    locked.chmod(0o555)
    new = locked / "new.db"
    done = as_nobody(short_dir, new)
    assert (done.returncode, done.stderr) == (
        2,
        f"fakedriver: cannot create state file {new}: its folder is not writable "
        "(Permission denied)\n",
    )
    done = as_nobody(short_dir, existing)
    assert (done.returncode, done.stderr) == (
        2,
        f"fakedriver: cannot use state file {existing}: its folder is not writable "
        "(Permission denied), and the database keeps its -wal file there\n",
    )
    assert sorted(p.name for p in locked.iterdir()) == ["state.db"]
    assert sorted(p.name for p in short_dir.iterdir()) == ["locked"]


@needs_nobody
def test_a_state_file_the_server_cannot_write_is_refused_saying_so(short_dir: Path) -> None:
    short_dir.chmod(0o1777)
    path = short_dir / "state.db"
    Store.open(str(path)).close()
    path.chmod(0o644)  # root's: nobody may read it, not write it
    done = as_nobody(short_dir, path)
    assert (done.returncode, done.stderr) == (
        2,
        f"fakedriver: cannot use state file {path}: it is not writable (Permission denied)\n",
    )
    assert mode(path) == 0o644  # nobody may not change it either


def test_a_missing_folder_is_refused_saying_so(short_dir: Path) -> None:
    path = short_dir / "no" / "state.db"
    with pytest.raises(StateFileError) as refused:
        Store.open(str(path))
    assert str(refused.value) == f"cannot create state file {path}: no folder {path.parent}"
    assert list(short_dir.iterdir()) == []
