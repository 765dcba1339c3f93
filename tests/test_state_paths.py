"""Where a ``--state`` path leads, and what is there: a file that is not fakedriver's is
refused as it is (its mode, journal mode and bytes unchanged, nothing made next to it), and
a symlink another user planted in a sticky folder such as ``/tmp`` is not followed.

The planted-link tests give a link to uid 65534 with ``lchown`` (root only: elsewhere
they skip, saying so).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.serve_env import Launcher

from fakedriver.persist import files
from fakedriver.persist.store import StateFileError, Store, peek_state

NOBODY = 65534
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="SKIPPED LOUDLY: needs root, to give a symlink to another user"
)


def folder_as_it_is(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file in ``folder``: its mode and its bytes."""
    return {p.name: (stat.S_IMODE(p.lstat().st_mode), p.read_bytes()) for p in folder.iterdir()}


def refused(path: Path) -> str:
    with pytest.raises(StateFileError) as caught:
        Store.open(str(path)).close()
    return str(caught.value)


# -- a file that is not fakedriver's is refused as it is --------------------------------------
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"world-readable config\n", "file is not a database"),
        (
            b'{"networks": {}}',
            "file is not a database (a JSON state file? import it: fakedriver state import "
            "{path} NEW)",
        ),
        (b"SQLite format 3\x00" + b"\xff" * 200, "file is not a database"),
    ],
    ids=["text", "json", "bad-header"],
)
def test_a_file_that_is_not_a_database_is_refused_as_it_is(
    short_dir: Path, content: bytes, problem: str
) -> None:
    """A 0644 text file given as --state was made 0600, then refused."""
    path = short_dir / "state.db"
    path.write_bytes(content)
    path.chmod(0o644)
    before = folder_as_it_is(short_dir)
    said = f"cannot load state file {path}: {problem.format(path=path)}"
    assert refused(path) == said
    assert folder_as_it_is(short_dir) == before


def _foreign(path: Path, journal: str, killed: bool) -> None:
    """Make another program's database at ``path`` (one table ``t``); ``killed`` leaves it
    as a ``kill -9`` does, with its ``-wal`` and ``-shm``."""
    code = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        f"db.execute('PRAGMA journal_mode={journal}')\n"
        "db.execute('PRAGMA wal_autocheckpoint=0')\n"
        "db.execute('CREATE TABLE t (x)')\n"
        "db.execute('INSERT INTO t VALUES (1)')\n"
        "db.commit()\n"
        f"{'os._exit(0)' if killed else 'db.close()'}\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=30)


@pytest.mark.parametrize(
    ("journal", "killed"),
    [("delete", False), ("wal", False), ("wal", True)],
    ids=["rollback", "wal", "wal-killed"],
)
def test_another_programs_database_is_refused_as_it_is(
    short_dir: Path, journal: str, killed: bool
) -> None:
    """A foreign database was made 0600 and switched to WAL mode before it was refused."""
    path = short_dir / "theirs.db"
    _foreign(path, journal, killed)
    for p in short_dir.iterdir():
        p.chmod(0o644)
    assert sorted(p.name for p in short_dir.iterdir()) == sorted(
        ["theirs.db", "theirs.db-wal", "theirs.db-shm"] if killed else ["theirs.db"]
    )
    before = folder_as_it_is(short_dir)
    assert refused(path) == (
        f"cannot load state file {path}: the database holds table 't', "
        "which this fakedriver does not make"
    )
    assert folder_as_it_is(short_dir) == before


def test_an_empty_sqlite_database_is_taken_as_a_new_one(short_dir: Path) -> None:
    path = short_dir / "state.db"
    sqlite3.connect(str(path)).execute("VACUUM").connection.close()
    assert path.stat().st_size > 0
    store = Store.open(str(path))
    try:
        assert store.load().networks == {}
    finally:
        store.close()


# -- symlinks ---------------------------------------------------------------------------------
def test_resolve_follows_links_as_realpath_does(short_dir: Path) -> None:
    (short_dir / "a" / "b").mkdir(parents=True)
    (short_dir / "a" / "b" / "f").touch()
    (short_dir / "up").symlink_to("a/b/..")
    (short_dir / "abs").symlink_to(short_dir / "a" / "b")
    (short_dir / "chain").symlink_to("abs")
    (short_dir / "a" / "rel").symlink_to("../chain/f")
    (short_dir / "loop1").symlink_to("loop2")
    (short_dir / "loop2").symlink_to("loop1")
    here = os.getcwd()
    os.chdir(short_dir)
    try:
        names = ["a/b/f", "up/b/f", "chain/f", "chain/../b/./f", "a/rel", "a/rel/../x/y",
                 "missing/f", "chain/missing", "./a//b/", "..", str(short_dir / "up")]  # fmt: skip
        for name in names:
            assert files.resolve(name) == os.path.realpath(name), name
        with pytest.raises(files.Refused, match="passes through more than 40 symlinks"):
            files.resolve("loop1/f")
    finally:
        os.chdir(here)


def _sticky(folder: Path, owner: int = 0) -> Path:
    """``folder`` as ``/tmp`` is: sticky, anyone may make a file in it."""
    folder.mkdir()
    os.chown(folder, owner, owner)
    folder.chmod(0o1777)
    return folder


@needs_root
@pytest.mark.parametrize("planted", ["file", "folder"])
def test_a_symlink_another_user_planted_in_a_sticky_folder_is_not_followed(
    short_dir: Path, planted: str
) -> None:
    """``/tmp/s.db -> /root/x`` made by another user: root made /root/x, 0600 (the kernel's
    fs.protected_symlinks refuses that link to root; SQLite's own open side-steps it)."""
    tmp, private = _sticky(short_dir / "tmp"), short_dir / "private"
    private.mkdir(mode=0o700)
    if planted == "file":
        link, path = tmp / "s.db", tmp / "s.db"
        link.symlink_to(private / "victim.db")
    else:
        link, path = tmp / "d", tmp / "d" / "victim.db"
        link.symlink_to(private)
    os.lchown(link, NOBODY, NOBODY)
    said = (
        f"cannot use state file {path}: {link} is a symlink another user (uid {NOBODY}) made "
        f"in {tmp}, a sticky folder others may write: fakedriver does not follow it, as the "
        "kernel would not (fs.protected_symlinks)"
    )
    assert refused(path) == said
    (private / "victim.db").touch()
    with pytest.raises(StateFileError) as shown:
        peek_state(str(path))
    assert str(shown.value) == said
    assert [p.name for p in private.iterdir()] == ["victim.db"]
    assert (private / "victim.db").stat().st_size == 0


@needs_root
@pytest.mark.parametrize("case", ["own-link", "folder-owners-link", "not-sticky"])
def test_a_symlink_the_kernel_follows_is_followed(short_dir: Path, case: str) -> None:
    """One's own link, the folder owner's, and any link in a folder others may not write:
    the documented "a symlink at the path is followed"."""
    target = short_dir / "real" / "state.db"
    target.parent.mkdir()
    if case == "not-sticky":
        folder = short_dir / "plain"
        folder.mkdir(mode=0o755)
    else:
        folder = _sticky(short_dir / "tmp", NOBODY if case == "folder-owners-link" else 0)
    link = folder / "state.db"
    link.symlink_to(target)
    if case != "own-link":
        os.lchown(link, NOBODY, NOBODY)
    Store.open(str(link)).close()
    assert link.is_symlink() and target.stat().st_size > 0


@needs_root
def test_serve_refuses_a_planted_symlink_in_one_line(serve: Launcher, short_dir: Path) -> None:
    tmp = _sticky(short_dir / "tmp")
    link = tmp / "state.db"
    link.symlink_to(short_dir / "victim.db")
    os.lchown(link, NOBODY, NOBODY)
    served = serve("--socket", str(short_dir / "x.sock"), "--state", str(link))
    assert served.wait() == 2
    assert served.lines() == [
        f"fakedriver: cannot use state file {link}: {link} is a symlink another user "
        f"(uid {NOBODY}) made in {tmp}, a sticky folder others may write: fakedriver does not "
        "follow it, as the kernel would not (fs.protected_symlinks)"
    ]
    assert not (short_dir / "victim.db").exists()
