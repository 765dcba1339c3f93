"""The state in SQLite (``fakedriver serve --state FILE``): what each call changed is
committed in one transaction before its answer is sent.

A call's changes name the records it changed (``fakedriver.core.changes``: each names its
table and key); the driver hands them to `Store.commit()`, which writes or deletes exactly
those rows (a record's row is its codec's ``to_dict()``, column by column),
so a change costs the same in a state of 100 endpoints as of 50,000. When the commit fails,
whatever the failure (disk full, read-only file system, a value SQLite cannot store), it is
rolled back and is a `StoreError`, and `Store.revert()` reads those same records
back from the database, into the state through its own methods: memory is what the last
commit left, and the call answers an error.

The database is the server's alone: it is opened in SQLite's exclusive locking mode and
locked at once, so a second server on the same file is refused at start. A symlink at the
path is followed: the database (and its ``-wal`` file) is the file it points to; but not a
symlink the kernel would not follow either (``files.resolve()``). An existing file is
checked, read only, before anything changes it (its mode, its journal mode): a file that is
not an empty or fakedriver's database is refused as it is.

Loading checks the file's tables and every row (see ``schema``): what is not as this
module writes it is a `StateFileError` naming the file and the first problem.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..core.changes import Change
from ..core.errors import DriverError
from ..core.ports import StoreError
from ..core.state import State
from . import files
from .schema import (
    FLAG_FIELDS,
    JSON_FIELDS,
    LARGEST,
    SCHEMA,
    TABLES,
    Bad,
    Origin,
    fields,
    parse_allocation,
    parse_endpoint,
    parse_lease,
    parse_network,
    parse_node,
    parse_pool,
    read_meta,
    read_state,
    statements,
)


class StateFileError(Exception):
    """The state file cannot be used; the message is one line naming the file."""


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- rows, from records -----------------------------------------------------------------------
def row(table: str, key: tuple[Any, ...], data: dict[str, Any]) -> tuple[Any, ...]:
    """The row of a record of ``table``: its ``key`` columns, then its codec's ``data``,
    each value as its column holds it (`JSON_FIELDS` as JSON text, `FLAG_FIELDS` as 0
    or 1)."""
    cells = list(key)
    for name in fields(table):
        value = data[name]
        if name in JSON_FIELDS:
            value = None if value is None else _dump(value)
        elif name in FLAG_FIELDS:
            value = int(value)
        cells.append(value)
    return tuple(cells)


def record_row(state: State, table: str, key: Any) -> tuple[Any, ...] | None:
    """The row the record ``key`` of ``table`` has in ``state`` now, ``None`` when it is
    gone."""
    if table == "leases":
        pid, value = key
        pool = state.pools.get(pid)
        lease = None if pool is None else pool.leases.get(value)
        if pool is None or lease is None:
            return None
        return row(table, (pid, str(pool.address_of(value))), lease.to_dict())
    if table == "links":
        return (key,) if key in state.links else None
    if table not in _RECORDS:
        raise ValueError(f"no table {table!r}")
    record = getattr(state, table).get(key)  # the state's records of that name
    return None if record is None else row(table, (key,), record.to_dict())


#: The tables that hold the records of the state's attribute of the same name, by key.
_RECORDS = ("networks", "endpoints", "allocations", "nodes", "pools")


def rows(state: State) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``state``, by table (what `Store.replace()` writes)."""

    def of(table: str, records: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [row(table, (key,), record.to_dict()) for key, record in records.items()]

    leases = [
        row("leases", (pid, str(pool.address_of(value))), lease.to_dict())
        for pid, pool in state.pools.items()
        for value, lease in pool.leases.items()
    ]
    violations = [row("violations", (i,), v.to_dict()) for i, v in enumerate(state.violations)]
    return {
        "meta": [("epoch", state.epoch), ("run", state.run), ("schema", SCHEMA)],
        "networks": of("networks", state.networks),
        "endpoints": of("endpoints", state.endpoints),
        "allocations": of("allocations", state.allocations),
        "nodes": of("nodes", state.nodes),
        "pools": of("pools", state.pools),
        "leases": leases,
        "links": [(eid,) for eid in state.links],
        "violations": violations,
    }


# -- the store --------------------------------------------------------------------------------
class Store:
    """A state database, held exclusively by this process until `close()`."""

    def __init__(self, path: str, db: sqlite3.Connection, notes: Iterable[str] = ()) -> None:
        self.path, self.db = path, db
        self._violations = 0  # how many violations the database holds
        #: Why memory can no longer be trusted (a failed commit it could not read back
        #: from): every call answers this until a restart; ``None`` when all is well.
        self.broken: str | None = None
        #: What `open()` did that the user should hear of (a file made private).
        self.notes = list(notes)

    @classmethod
    def open(cls, path: str) -> Store:
        """Open (or create, mode 0600) the database at ``path`` and lock it for this
        process. An existing database (or its ``-wal`` or ``-shm``) that other users may
        open is made 0600 first, and `notes` says so."""
        real = _resolved(path)
        if os.path.isdir(real):
            raise StateFileError(f"cannot use state file {path}: it is a directory")
        created = _create(path, real)
        if not created:  # a file refused is left as it is: checked before it is changed
            try:
                files.check_ours(real)
            except files.Refused as exc:
                hint = ""
                if str(exc) == "file is not a database" and _starts_with_brace(real):
                    hint = f" (a JSON state file? import it: fakedriver state import {path} NEW)"
                raise StateFileError(f"cannot load state file {path}: {exc}{hint}") from None
        notes = [] if created else _private(path, real)
        try:
            db = sqlite3.connect(real, isolation_level=None, timeout=0, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StateFileError(f"cannot open state file {path}: {exc}") from None
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("BEGIN EXCLUSIVE")  # the lock, held from here on
            db.execute("COMMIT")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if not db.execute("SELECT 1 FROM sqlite_master").fetchone():
                with _transaction(db):
                    for statement in statements():
                        db.execute(statement)
                    db.executemany("INSERT INTO meta VALUES (?, ?)", rows(State())["meta"])
        except sqlite3.Error as exc:
            db.close()
            if created:
                os.unlink(real)
            if "locked" in str(exc):
                raise StateFileError(
                    f"cannot use state file {path}: another fakedriver serve holds it"
                ) from None
            unwritable = _unwritable(path, real)
            if unwritable:
                raise StateFileError(unwritable) from None
            hint = ""
            if "not a database" in str(exc) and _starts_with_brace(real):
                hint = f" (a JSON state file? import it: fakedriver state import {path} NEW)"
            raise StateFileError(f"cannot load state file {path}: {exc}{hint}") from None
        return cls(path, db, notes)

    def close(self) -> None:
        self.db.close()

    def load(self) -> State:
        """The state the database holds, validated, as its next run (which is saved)."""
        state = read(self.db, self.path)
        if state.run >= LARGEST:
            problem = f"meta row 'run': {state.run} leaves no next run"
            raise StateFileError(f"cannot load state file {self.path}: {problem}")
        state.set_counters(state.epoch, state.run + 1)
        self._violations = len(state.violations)
        try:
            with _transaction(self.db):
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'run'", (state.run,))
        except sqlite3.Error as exc:
            raise StateFileError(f"cannot save state file {self.path}: {exc}") from None
        return state

    def commit(self, state: State, changes: Sequence[Change]) -> None:
        """Write the rows of the records ``changes`` name as ``state`` has them now
        (deleting those it no longer has), the meta values and the violations added since
        the last commit."""
        try:
            with _transaction(self.db):
                self._write(state, changes)
        except Exception as exc:
            raise _failed(exc) from None
        self._violations = len(state.violations)

    def _write(self, state: State, changes: Sequence[Change]) -> None:
        db = self.db
        for table, key in {change.record for change in changes}:
            if table in ("meta", "violations"):  # written below, always
                continue
            values = record_row(state, table, key)
            if values is not None:
                marks = ", ".join("?" * len(values))
                db.execute(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", values)
            elif table == "leases":
                pid, value = key
                pool = state.pools.get(pid)
                if pool is not None:  # else it went with its pool
                    where = (pid, str(pool.address_of(value)))
                    db.execute("DELETE FROM leases WHERE pool_id = ? AND address = ?", where)
            else:
                db.execute(f"DELETE FROM {table} WHERE {TABLES[table][0]} = ?", (key,))
                if table == "pools":
                    db.execute("DELETE FROM leases WHERE pool_id = ?", (key,))
        db.executemany(
            "UPDATE meta SET value = ? WHERE key = ?", [(state.epoch, "epoch"), (state.run, "run")]
        )
        added = state.violations[self._violations :]
        db.executemany(
            "INSERT INTO violations VALUES (?, ?, ?, ?)",
            [row("violations", (self._violations + i,), v.to_dict()) for i, v in enumerate(added)],
        )

    def replace(self, state: State) -> None:
        """Make the database hold ``state`` and nothing else."""
        try:
            with _transaction(self.db):
                for table, values in rows(state).items():
                    self.db.execute(f"DELETE FROM {table}")
                    if values:
                        marks = ", ".join("?" * len(values[0]))
                        self.db.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        except Exception as exc:
            raise _failed(exc) from None
        self._violations = len(state.violations)

    def revert(self, state: State, changes: Sequence[Change]) -> None:
        """Put the records ``changes`` name (and the meta values and violations) back in
        ``state`` as the database has them: after a failed commit, the call's changes go.
        When they cannot be read, the store is `broken`."""
        db, path = self.db, self.path
        try:
            if db.in_transaction:  # its ROLLBACK failed: what it reads is not what is saved
                raise StoreError("the failed transaction is still open")
            read_meta(db, state)
            state.drop_violations(self._violations)
            origin = Origin(state)
            records = {change.record for change in changes}
            for table, key in sorted(records, key=lambda k: REVERT_ORDER.index(k[0])):
                if table not in ("meta", "violations"):
                    _put_back(db, state, table, key, origin)
        except Exception as exc:  # whatever it is, memory cannot be trusted
            self.broken = f"cannot read back state file {path} ({exc}): restart the server"
            raise StoreError(self.broken) from None


#: Tables in the order records are put back: a record's parent first.
REVERT_ORDER = ("meta", "violations", "networks", "endpoints", "allocations", "nodes", "pools",
                "leases", "links")  # fmt: skip


def _fetch(db: sqlite3.Connection, table: str, where: str, key: tuple[Any, ...]) -> Any:
    columns = ", ".join(TABLES[table])
    try:
        return db.execute(f"SELECT {columns} FROM {table} WHERE {where}", key).fetchone()
    except UnicodeEncodeError:  # a key SQLite cannot store (not UTF-8) is in no row
        return None


def _put_back(db: sqlite3.Connection, state: State, table: str, key: Any, origin: Origin) -> None:
    """Make the record ``key`` of ``table`` in ``state`` what the database holds, through
    the state's own methods (which keep its indexes)."""
    where = f"{table} row {key!r}"
    if table == "leases":
        pid, value = key
        pool = state.pools.get(pid)
        if pool is None:
            return  # gone with its pool (or put back whole with it)
        address = str(pool.address_of(value))
        saved = _fetch(db, "leases", "pool_id = ? AND address = ?", (pid, address))
        if value in pool.leases:
            state.release(pid, value)
        if saved is not None:
            state.lease(*parse_lease(state, tuple(saved), where, origin))
        return
    if table == "links":
        saved = _fetch(db, "links", "endpoint_id = ?", (key,))
        (state.add_link if saved is not None else state.drop_link)(key)
        return
    saved = _fetch(db, table, f"{TABLES[table][0]} = ?", (key,))
    if table == "networks":  # a call makes or removes a network, never changes one
        if key in state.networks and saved is None:
            state.remove_network(key)  # made by the call: no endpoint yet
        elif key not in state.networks and saved is not None:
            state.add_network(parse_network(tuple(saved), where, origin))
    elif table == "endpoints":
        if key in state.endpoints:
            state.remove_endpoint(key)
        if saved is not None:
            state.add_endpoint(parse_endpoint(state, tuple(saved), where, origin))
    elif table == "allocations":
        if key in state.allocations:
            state.free(key)
        if saved is not None:
            state.allocate(parse_allocation(tuple(saved), where, origin))
    elif table == "nodes":
        state.forget(key)
        if saved is not None:
            state.discover(parse_node(tuple(saved), where, origin))
    elif table == "pools":
        _put_back_pool(db, state, key, None if saved is None else tuple(saved), origin)


def _put_back_pool(
    db: sqlite3.Connection, state: State, pid: str, saved: tuple[Any, ...] | None, origin: Origin
) -> None:
    where = f"pools row {pid!r}"
    held = state.pools.get(pid)
    pool = None if saved is None else parse_pool(saved, where, origin)
    if (
        held is not None
        and pool is not None
        and held.to_dict() | {"epoch": 0} == (pool.to_dict() | {"epoch": 0})
    ):
        state.claim_pool(pid, pool.epoch)  # what a call may change; its leases stay
        return
    if held is not None:
        state.remove_pool(pid)
    if pool is None:
        return
    state.add_pool(pool)  # released by the call: its leases come back with it
    leases = f"SELECT {', '.join(TABLES['leases'])} FROM leases WHERE pool_id = ?"
    for saved_lease in db.execute(leases, (pid,)):
        state.lease(*parse_lease(state, tuple(saved_lease), where, origin))


def _resolved(path: str) -> str:
    """The file ``path`` names, its symlinks followed (`files.resolve()`)."""
    try:
        return files.resolve(path)
    except files.Refused as exc:
        raise StateFileError(f"cannot use state file {path}: {exc}") from None


def _create(path: str, real: str) -> bool:
    """Make the empty file of a new database, mode 0600 (SQLite would make it 0644, and
    gives its ``-wal`` the database's mode); ``False`` when it exists."""
    try:
        os.close(os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    except FileNotFoundError:
        folder = os.path.dirname(real)
        raise StateFileError(f"cannot create state file {path}: no folder {folder}") from None
    except OSError as exc:
        why = f"its folder is not writable ({exc.strerror})" if _denied(exc) else exc.strerror
        raise StateFileError(f"cannot create state file {path}: {why}") from None
    return True


def _private(path: str, real: str) -> list[str]:
    """Make the database's files that other users may open 0600; say what was done."""
    notes = []
    for name, suffix in ((path, ""), (f"{path}-wal", "-wal"), (f"{path}-shm", "-shm")):
        try:
            mode = stat.S_IMODE(os.stat(real + suffix).st_mode)
        except OSError:
            continue  # none (or none to see: opening it says why)
        if not mode & 0o007:
            continue
        try:
            os.chmod(real + suffix, 0o600)
        except OSError as exc:
            notes.append(f"warning: state file {name} is open to other users (mode "
                         f"{mode:04o}) and cannot be made 0600: {exc.strerror}")  # fmt: skip
            continue
        notes.append(f"state file {name} was open to other users (mode {mode:04o}): made it 0600")
    return notes


def _denied(exc: OSError) -> bool:
    return exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def _unwritable(path: str, real: str) -> str | None:
    """Why the database at ``path`` cannot be written, if that is why it cannot be used."""
    folder = os.path.dirname(real)
    try:
        readonly = os.statvfs(folder).f_flag & os.ST_RDONLY
    except OSError:
        readonly = 0
    why = os.strerror(errno.EROFS if readonly else errno.EACCES)
    if not os.access(folder, os.W_OK):
        return (f"cannot use state file {path}: its folder is not writable ({why}), and the "
                "database keeps its -wal file there")  # fmt: skip
    if not os.access(real, os.W_OK):
        return f"cannot use state file {path}: it is not writable ({why})"
    return None


def _starts_with_brace(path: str) -> bool:
    with contextlib.suppress(OSError), open(path, "rb") as head:
        return head.read(1) == b"{"
    return False


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction: committed, or (whatever failed, COMMIT included) rolled back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # a failed COMMIT may leave it open (SQLITE_FULL, SQLITE_IOERR)
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _failed(exc: Exception) -> StoreError:
    """The `StoreError` of a failed write: SQLite's own message, or what else failed
    (a value SQLite cannot store, as text that is not UTF-8 or an integer past 2**63 - 1)."""
    if isinstance(exc, sqlite3.Error):
        return StoreError(str(exc))
    return StoreError(f"{type(exc).__name__}: {exc}")


# -- reading, validated -----------------------------------------------------------------------
def read(db: sqlite3.Connection, path: str) -> State:
    """The state in ``db``, every row checked; `StateFileError` names the problem."""
    try:
        return read_state(db)
    except (Bad, sqlite3.Error, DriverError, ValueError, RecursionError) as exc:
        detail = " ".join(str(getattr(exc, "message", None) or exc).split())  # one line
        raise StateFileError(f"cannot load state file {path}: {detail}") from None


# -- reading without serving ------------------------------------------------------------------
def peek_state(path: str) -> State:
    """The state in the database at ``path`` as it is (no new run); nothing is written."""
    if not os.path.exists(path):
        raise StateFileError(f"cannot load state file {path}: no such file")
    try:  # read-write (and never written), so that closing it tidies the -wal file away
        db = sqlite3.connect(_resolved(path), timeout=0)
    except sqlite3.Error as exc:
        raise StateFileError(f"cannot open state file {path}: {exc}") from None
    try:
        return read(db, path)
    except StateFileError as exc:
        if "locked" in str(exc):
            raise StateFileError(
                f"cannot read state file {path}: a running fakedriver serve holds it "
                "(ask it: GET /fakedriver/state)"
            ) from None
        raise
    finally:
        db.close()
