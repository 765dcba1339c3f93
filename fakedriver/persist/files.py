"""The file a ``--state`` path names, found and checked before anything is written to it.

`resolve()` follows symlinks as the kernel does under ``fs.protected_symlinks``: a symlink
in a sticky folder others may write (``/tmp``) is followed only when this process's user
or the folder's owner made it, so a link another user planted there cannot point the
server at a file of its choosing. (SQLite finds the real path of a symlink itself, and the
kernel's check never sees that open.)

`check_ours()` reads, without changing it, an existing file: it must be empty or an SQLite
database with no tables or exactly this fakedriver's (`schema.check_tables()`). A file it
refuses is left exactly as it was: its mode, its journal mode and its bytes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import urllib.parse

from .schema import Bad, check_tables

#: How many symlinks a path may pass through, as Linux's ``ELOOP`` limit.
MAX_LINKS = 40

#: The first 16 bytes of every SQLite database.
MAGIC = b"SQLite format 3\x00"


class Refused(Exception):
    """The path cannot be used; the message says why, to follow ``state file PATH: ``."""


def resolve(path: str) -> str:
    """The absolute path of the file ``path`` names, every symlink followed (as
    ``os.path.realpath`` does, a missing tail kept as written), and `Refused` for a
    symlink the kernel would not let this process follow."""
    done = "/"
    pending = [part for part in os.path.join(os.getcwd(), path).split("/") if part]
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            done = os.path.dirname(done)
            continue
        step = os.path.join(done, part)
        try:
            info = os.lstat(step)
        except OSError:  # missing (or not to be seen): the rest is as written
            return os.path.normpath(os.path.join(step, *pending))
        if not stat.S_ISLNK(info.st_mode):
            done = step
            continue
        links += 1
        if links > MAX_LINKS:
            raise Refused(f"{path} passes through more than {MAX_LINKS} symlinks")
        _may_follow(step, info, done)
        target = os.readlink(step)
        pending[:0] = [p for p in target.split("/") if p]
        if target.startswith("/"):
            done = "/"
    return done


def _may_follow(link: str, info: os.stat_result, folder: str) -> None:
    """Refuse ``link`` (in ``folder``) as ``fs.protected_symlinks`` does: in a sticky
    folder others may write, only its folder's owner's links and one's own are followed."""
    held = os.stat(folder)
    if not (held.st_mode & stat.S_ISVTX and held.st_mode & stat.S_IWOTH):
        return
    if info.st_uid in (os.geteuid(), held.st_uid):
        return
    raise Refused(
        f"{link} is a symlink another user (uid {info.st_uid}) made in {folder}, a sticky "
        "folder others may write: fakedriver does not follow it, as the kernel would not "
        "(fs.protected_symlinks)"
    )


def check_ours(real: str) -> None:
    """Refuse (`Refused`) the existing file at ``real`` unless it is empty or a database
    this fakedriver may use, reading it only: nothing is created, locked or written."""
    try:
        with open(real, "rb") as file:
            head = file.read(len(MAGIC))
    except OSError:
        return  # opening it says why it cannot be used
    if not head:
        return  # a new database
    if head != MAGIC:
        raise Refused("file is not a database")
    try:
        db = sqlite3.connect(_read_only(real), uri=True, timeout=0)
    except sqlite3.Error as exc:
        raise Refused(str(exc)) from None
    try:
        if db.execute("SELECT 1 FROM sqlite_master").fetchone():
            check_tables(db)
    except (Bad, sqlite3.Error) as exc:
        raise Refused(str(exc)) from None
    finally:
        db.close()


def _read_only(real: str) -> str:
    """The URI that reads the database at ``real`` creating and changing nothing: with
    its ``-wal`` and ``-shm`` (left by a process that was killed), read through them
    without writing; otherwise the database file alone, as it is."""
    uri = "file:" + urllib.parse.quote(real)
    with contextlib.suppress(OSError):
        if os.path.getsize(real + "-wal") and os.path.exists(real + "-shm"):
            return uri + "?mode=ro&readonly_shm=1"
    return uri + "?immutable=1"
