"""The state in SQLite (``fakedriver serve --state FILE``): what each call changed is
committed in one transaction before its answer is sent.

The models say which records a call touched (:meth:`Model.touch`, by table and key); the
engine hands those keys to :meth:`Store.commit`, which writes or deletes exactly those rows,
so a change costs the same in a state of 100 endpoints as of 50,000. When the commit fails
(disk full, read-only file system), :meth:`Store.revert` reads those same records back
from the database: memory is what the last commit left, and the call answers an error.

The database is the server's alone: it is opened in SQLite's exclusive locking mode and
locked at once, so a second server on the same file is refused at start. A symlink at the
path is followed: the database (and its ``-wal`` file) is the file it points to.

Loading checks every row (types, addresses and networks in canonical form, leases inside
their pools, endpoints of known networks, epochs and runs no later than the state's) and
keeps what it reads exactly: a value that would not be written back as it was stored is a
:class:`StateFileError` naming the file and the first problem.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import _wire as w
from ._errors import DriverError
from ._methods import METHODS
from ._pool import Lease, Pool
from ._state import Allocation, Endpoint, Join, Network, Node, State, Violation

#: The schema this module writes and reads; kept in ``meta``.
SCHEMA = 1

#: A record a call touched: ``(table, key)`` (see :meth:`fakedriver._rules.Model.touch`).
Key = tuple[str, Any]

TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("key TEXT PRIMARY KEY", "value INTEGER NOT NULL"),
    "networks": ("id", "options", "ipv4_data", "ipv6_data", "call", "run"),
    "endpoints": (
        "id",
        "network_id",
        "address",
        "address_v6",
        "mac",
        "mac_assigned",
        "options",
        "call",
        "run",
        "joined",
        "connectivity",
    ),
    "allocations": ("id", "options", "ipv4_data", "ipv6_data", "call", "run"),
    "nodes": ("address", "bind_address", "self", "call", "run"),
    "pools": ("id", "address_space", "pool", "sub_pool", "options", "call", "epoch", "run"),
    "leases": ("pool_id", "address", "kind", "mac", "call", "epoch", "run"),
    "links": ("endpoint_id",),
    "violations": ("seq", "call", "method", "message"),
}
_PRIMARY = {"leases": "PRIMARY KEY (pool_id, address)", "violations": "PRIMARY KEY (seq)"}


class StateFileError(Exception):
    """The state file cannot be used; the message is one line naming the file."""


class StoreError(Exception):
    """A commit failed: nothing of it is in the database."""


class _Bad(Exception):
    """A row that does not hold what this module writes."""


def _schema() -> Iterator[str]:
    for table, columns in TABLES.items():
        if table == "meta":
            yield f"CREATE TABLE meta ({', '.join(columns)}) STRICT"
            continue
        spec = [f"{c} ANY" for c in columns]
        spec.append(_PRIMARY.get(table, f"PRIMARY KEY ({columns[0]})"))
        yield f"CREATE TABLE {table} ({', '.join(spec)}) STRICT"


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- rows, from records -----------------------------------------------------------------------
def _ipam(data: list[w.IPAMData]) -> str:
    return _dump([d.to_wire() for d in data])


def network_row(n: Network) -> tuple[Any, ...]:
    return (n.id, _dump(n.options), _ipam(n.ipv4_data), _ipam(n.ipv6_data), n.call, n.run)


def endpoint_row(e: Endpoint) -> tuple[Any, ...]:
    join = None
    if e.join is not None:
        j = e.join
        join = _dump(
            {
                "sandbox_key": j.sandbox_key,
                "options": j.options,
                "answer": j.answer,
                "call": j.call,
                "run": j.run,
            }
        )
    conn = None if e.connectivity is None else _dump(e.connectivity)
    address, address_v6 = str(e.address or ""), str(e.address_v6 or "")
    return (e.id, e.network_id, address, address_v6, e.mac, int(e.mac_assigned),
            _dump(e.options), e.call, e.run, join, conn)  # fmt: skip


def allocation_row(a: Allocation) -> tuple[Any, ...]:
    return (a.network_id, _dump(a.options), _ipam(a.ipv4_data), _ipam(a.ipv6_data), a.call, a.run)


def node_row(n: Node) -> tuple[Any, ...]:
    return (n.address, n.bind_address, int(n.self), n.call, n.run)


def pool_row(p: Pool) -> tuple[Any, ...]:
    sub = str(p.sub_pool) if p.sub_pool else ""
    return (p.id, p.address_space, str(p.network), sub, _dump(p.options), p.call, p.epoch, p.run)


def lease_row(p: Pool, value: int, lease: Lease) -> tuple[Any, ...]:
    address = str(p.address_of(value))
    return (p.id, address, lease.kind, lease.mac, lease.call, lease.epoch, lease.run)


def rows(state: State) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``state``, by table (what :meth:`Store.replace` writes)."""
    return {
        "meta": [("epoch", state.epoch), ("run", state.run), ("schema", SCHEMA)],
        "networks": [network_row(n) for n in state.networks.values()],
        "endpoints": [endpoint_row(e) for e in state.endpoints.values()],
        "allocations": [allocation_row(a) for a in state.allocations.values()],
        "nodes": [node_row(n) for n in state.nodes.values()],
        "pools": [pool_row(p) for p in state.pools.values()],
        "leases": [lease_row(p, v, x) for p in state.pools.values() for v, x in p.leases.items()],
        "links": [(eid,) for eid in state.links],
        "violations": [(i, v.call, v.method, v.message) for i, v in enumerate(state.violations)],
    }


def _row_of(state: State, table: str, key: Any) -> tuple[Any, ...] | None:
    """The row ``key`` has in ``state`` now, ``None`` when it is gone."""
    if table == "networks":
        return None if (n := state.networks.get(key)) is None else network_row(n)
    if table == "endpoints":
        return None if (e := state.endpoints.get(key)) is None else endpoint_row(e)
    if table == "allocations":
        return None if (a := state.allocations.get(key)) is None else allocation_row(a)
    if table == "nodes":
        return None if (node := state.nodes.get(key)) is None else node_row(node)
    if table == "pools":
        return None if (p := state.pools.get(key)) is None else pool_row(p)
    if table == "leases":
        pid, value = key
        pool = state.pools.get(pid)
        lease = None if pool is None else pool.leases.get(value)
        return None if pool is None or lease is None else lease_row(pool, value, lease)
    if table == "links":
        return (key,) if key in state.links else None
    raise ValueError(f"no table {table!r}")


# -- the store --------------------------------------------------------------------------------
class Store:
    """A state database, held exclusively by this process until :meth:`close`."""

    def __init__(self, path: str, db: sqlite3.Connection) -> None:
        self.path, self.db = path, db
        self._violations = 0  # how many violations the database holds
        #: Why memory can no longer be trusted (a failed commit it could not read back
        #: from): every call answers this until a restart; ``None`` when all is well.
        self.broken: str | None = None

    @classmethod
    def open(cls, path: str) -> Store:
        """Open (or create) the database at ``path`` and lock it for this process."""
        real = os.path.realpath(path)
        if os.path.isdir(real):
            raise StateFileError(f"cannot use state file {path}: it is a directory")
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
                    for statement in _schema():
                        db.execute(statement)
                    db.executemany("INSERT INTO meta VALUES (?, ?)", rows(State())["meta"])
        except sqlite3.Error as exc:
            db.close()
            if "locked" in str(exc):
                raise StateFileError(
                    f"cannot use state file {path}: another fakedriver serve holds it"
                ) from None
            hint = ""
            if "not a database" in str(exc) and _starts_with_brace(real):
                hint = f" (a JSON state file? import it: fakedriver state import {path} NEW)"
            raise StateFileError(f"cannot load state file {path}: {exc}{hint}") from None
        return cls(path, db)

    def close(self) -> None:
        self.db.close()

    def load(self) -> State:
        """The state the database holds, validated, as its next run (which is saved)."""
        state = read(self.db, self.path)
        state.run += 1
        self._violations = len(state.violations)
        try:
            with _transaction(self.db):
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'run'", (state.run,))
        except sqlite3.Error as exc:
            raise StateFileError(f"cannot save state file {self.path}: {exc}") from None
        return state

    def commit(self, state: State, touched: Iterable[Key]) -> None:
        """Write the rows ``touched`` names as ``state`` has them now (deleting those it no
        longer has), the meta values and the violations added since the last commit."""
        try:
            with _transaction(self.db):
                self._write(state, touched)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from None
        self._violations = len(state.violations)

    def _write(self, state: State, touched: Iterable[Key]) -> None:
        db = self.db
        for table, key in touched:
            if table == "meta":  # written below, always
                continue
            row = _row_of(state, table, key)
            if row is not None:
                marks = ", ".join("?" * len(row))
                db.execute(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", row)
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
            [(self._violations + i, v.call, v.method, v.message) for i, v in enumerate(added)],
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
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from None
        self._violations = len(state.violations)

    def revert(self, state: State, touched: Iterable[Key]) -> None:
        """Put the records ``touched`` names (and the meta values and violations) back in
        ``state`` as the database has them: after a failed commit, the call's changes go.
        When they cannot be read, the store is :attr:`broken`."""
        db, path = self.db, self.path
        try:
            _meta(db, state)
            del state.violations[self._violations :]
            origin = _Origin(state)
            for table, key in sorted(touched, key=lambda k: REVERT_ORDER.index(k[0])):
                if table != "meta":
                    _put_back(db, state, table, key, origin)
        except (_Bad, sqlite3.Error, DriverError, ValueError) as exc:
            self.broken = f"cannot read back state file {path} ({exc}): restart the server"
            raise StoreError(self.broken) from None


#: Tables in the order records are put back: a record's parent first.
REVERT_ORDER = ("meta", "networks", "endpoints", "allocations", "nodes", "pools", "leases", "links")


def _fetch(db: sqlite3.Connection, table: str, where: str, key: tuple[Any, ...]) -> Any:
    columns = ", ".join(TABLES[table])
    return db.execute(f"SELECT {columns} FROM {table} WHERE {where}", key).fetchone()


def _put_back(db: sqlite3.Connection, state: State, table: str, key: Any, origin: _Origin) -> None:
    """Make the record ``key`` of ``table`` in ``state`` what the database holds."""
    where = f"{table} row {key!r}"
    if table == "leases":
        pid, value = key
        pool = state.pools.get(pid)
        if pool is None:
            return  # gone with its pool (or put back whole with it)
        address = str(pool.address_of(value))
        row = _fetch(db, "leases", "pool_id = ? AND address = ?", (pid, address))
        if value in pool.leases:
            pool.release(value)
        if row is not None:
            _lease(state, tuple(row), where, origin)
        return
    if table == "links":
        row = _fetch(db, "links", "endpoint_id = ?", (key,))
        (state.links.add if row is not None else state.links.discard)(key)
        return
    row = _fetch(db, table, f"{TABLES[table][0]} = ?", (key,))
    if table == "networks":
        held = state.networks.pop(key, None)
        if row is not None:
            network = state.networks[key] = _network(tuple(row), where, origin)
            if held is not None:  # its endpoints stay (those the call touched follow)
                network.endpoints, network.addresses, network.macs = (
                    held.endpoints, held.addresses, held.macs)  # fmt: skip
    elif table == "endpoints":
        if key in state.endpoints:
            _unlink_endpoint(state, state.endpoints[key])
        if row is not None:
            _link_endpoint(state, _endpoint(state, tuple(row), where, origin))
    elif table == "allocations":
        state.allocations.pop(key, None)
        if row is not None:
            state.allocations[key] = _allocation(tuple(row), where, origin)
    elif table == "nodes":
        state.nodes.pop(key, None)
        if row is not None:
            state.nodes[key] = _node(tuple(row), where, origin)
    elif table == "pools":
        held_pool = state.pools.pop(key, None)
        if row is None:
            return
        pool = _pool(tuple(row), where, origin)
        if held_pool is not None:  # same id, same network: what a call may change, and its leases
            held_pool.options, held_pool.call, held_pool.epoch, held_pool.run = (
                pool.options, pool.call, pool.epoch, pool.run)  # fmt: skip
            state.pools[key] = held_pool
            return
        state.pools[key] = pool  # released by the call: its leases come back with it
        leases = f"SELECT {', '.join(TABLES['leases'])} FROM leases WHERE pool_id = ?"
        for lease_row in db.execute(leases, (key,)):
            _lease(state, tuple(lease_row), where, origin)


def _starts_with_brace(path: str) -> bool:
    with contextlib.suppress(OSError), open(path, "rb") as head:
        return head.read(1) == b"{"
    return False


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# -- reading, validated -----------------------------------------------------------------------
def read(db: sqlite3.Connection, path: str) -> State:
    """The state in ``db``, every row checked; :class:`StateFileError` names the problem."""
    try:
        return _read(db)
    except (_Bad, sqlite3.Error, DriverError, ValueError, RecursionError) as exc:
        detail = " ".join(str(getattr(exc, "message", None) or exc).split())  # one line
        raise StateFileError(f"cannot load state file {path}: {detail}") from None


def _rows(db: sqlite3.Connection, table: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    columns = TABLES[table] if table != "meta" else ("key", "value")
    order = ", ".join(columns[:2] if table == "leases" else columns[:1])
    for row in db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"):
        if len(row) != len(columns):
            raise _Bad(f"{table}: a row of {len(row)} columns")
        yield f"{table} row {row[0]!r}", tuple(row)


def _read(db: sqlite3.Connection) -> State:
    check = db.execute("PRAGMA integrity_check(1)").fetchone()  # tables and indexes agree
    if check is None or check[0] != "ok":
        raise _Bad(f"the database is damaged: {check[0] if check else 'no answer'}")
    state = State()
    _meta(db, state)
    origin = _Origin(state)
    for where, row in _rows(db, "networks"):
        network = _network(row, where, origin)
        state.networks[network.id] = network
    for where, row in _rows(db, "endpoints"):
        _link_endpoint(state, _endpoint(state, row, where, origin))
    for where, row in _rows(db, "allocations"):
        allocation = _allocation(row, where, origin)
        state.allocations[allocation.network_id] = allocation
    for where, row in _rows(db, "nodes"):
        node = _node(row, where, origin)
        state.nodes[node.address] = node
    for where, row in _rows(db, "pools"):
        pool = _pool(row, where, origin)
        state.pools[pool.id] = pool
    for where, row in _rows(db, "leases"):
        _lease(state, row, where, origin)
    for where, (eid,) in _rows(db, "links"):
        state.links.add(_id(eid, where))
    for i, (where, (seq, call, method, message)) in enumerate(_rows(db, "violations")):
        if seq != i:
            raise _Bad(f"{where}: violations are numbered 0, 1, ...; {i} is missing")
        if method not in METHODS:
            raise _Bad(f"{where}: {method!r} is not a method of either protocol")
        state.violations.append(Violation(_int(call, where), method, _text(message, where)))
    return state


def _meta(db: sqlite3.Connection, state: State) -> None:
    meta = {}
    for where, (key, value) in _rows(db, "meta"):
        meta[key] = _int(value, where)
    if meta.get("schema") != SCHEMA:
        found = meta.get("schema", "none")
        raise _Bad(f"schema version {found}, this fakedriver reads version {SCHEMA}")
    if set(meta) != {"schema", "epoch", "run"}:
        raise _Bad(f"meta holds {sorted(meta)}, not epoch, run and schema")
    state.epoch, state.run = meta["epoch"], meta["run"]


def _link_endpoint(state: State, endpoint: Endpoint) -> None:
    """Put ``endpoint`` in the state, its network and the network's indexes."""
    network = state.networks[endpoint.network_id]
    state.endpoints[endpoint.id] = network.endpoints[endpoint.id] = endpoint
    for address in (endpoint.address, endpoint.address_v6):
        if address is not None:
            network.addresses.setdefault(address.ip, endpoint.id)
    if endpoint.mac:
        network.macs.setdefault(endpoint.mac, endpoint.id)


def _unlink_endpoint(state: State, endpoint: Endpoint) -> None:
    """The inverse of :func:`_link_endpoint`."""
    del state.endpoints[endpoint.id]
    network = state.networks.get(endpoint.network_id)
    if network is None:
        return
    network.endpoints.pop(endpoint.id, None)
    for address in (endpoint.address, endpoint.address_v6):
        if address is not None and network.addresses.get(address.ip) == endpoint.id:
            del network.addresses[address.ip]
    if network.macs.get(endpoint.mac) == endpoint.id:
        del network.macs[endpoint.mac]


def _network(row: tuple[Any, ...], where: str, origin: _Origin) -> Network:
    nid, options, v4, v6, call, run = row
    data = _ipam_of(v4, v6, where)
    return Network(_id(nid, where), _object(options, where), *data, *origin(call, run, where))


def _allocation(row: tuple[Any, ...], where: str, origin: _Origin) -> Allocation:
    nid, options, v4, v6, call, run = row
    opts = _object(options, where)
    if not all(isinstance(v, str) for v in opts.values()):
        raise _Bad(f"{where}: options must map names to strings")
    data = _ipam_of(v4, v6, where)
    return Allocation(_id(nid, where), opts, *data, *origin(call, run, where))


def _node(row: tuple[Any, ...], where: str, origin: _Origin) -> Node:
    address, bind, self_, call, run = row
    _ip(address, where, empty=False)
    _ip(bind, where, empty=True)
    return Node(address, bind, _bool(self_, where), *origin(call, run, where))


def _lease(state: State, row: tuple[Any, ...], where: str, origin: _Origin) -> None:
    """Put the lease of ``row`` in its pool (replacing the one it holds there, if any)."""
    pid, address, kind, mac, call, epoch, run = row
    pool = state.pools.get(pid) if isinstance(pid, str) else None
    if pool is None:
        raise _Bad(f"{where}: a lease of pool {pid!r}, which the state does not hold")
    ip = _ip(address, where, empty=False, version=pool.network.version)
    value = pool.check_specific(ip)  # type: ignore[arg-type]
    if kind not in ("gateway", "address"):
        raise _Bad(f"{where}: kind {kind!r} is neither 'gateway' nor 'address'")
    lease_call, lease_run = origin(call, run, where)
    lease = Lease(kind, _mac(mac, where), lease_call, origin.epoch(epoch, where), lease_run)
    if value in pool.leases:
        raise _Bad(f"{where}: address {address} is leased twice")
    pool.lease(value, lease)


class _Origin:
    """Checks a record's ``call`` and ``run`` (and ``epoch``) against the state's."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __call__(self, call: object, run: object, where: str) -> tuple[int, int]:
        call, run = _int(call, f"{where}: call"), _int(run, f"{where}: run")
        if run > self.state.run:
            raise _Bad(f"{where}: run {run} is later than the state's run {self.state.run}")
        return call, run

    def epoch(self, epoch: object, where: str) -> int:
        epoch = _int(epoch, f"{where}: epoch")
        if epoch > self.state.epoch:
            raise _Bad(f"{where}: epoch {epoch} is later than the state's {self.state.epoch}")
        return epoch


def _endpoint(state: State, row: tuple[Any, ...], where: str, origin: _Origin) -> Endpoint:
    eid, nid, address, address_v6, mac, assigned, options, call, run, joined, conn = row
    if nid not in state.networks:
        raise _Bad(f"{where}: network {nid!r}, which the state does not hold")
    v4 = _cidr(address, where, 4)
    v6 = _cidr(address_v6, where, 6)
    join = None
    if joined is not None:
        j = _object(joined, where)
        if set(j) != {"sandbox_key", "options", "answer", "call", "run"}:
            raise _Bad(f"{where}: a join must have sandbox_key, options, answer, call and run")
        if not isinstance(j["options"], dict) or not isinstance(j["answer"], dict):
            raise _Bad(f"{where}: a join's options and answer must be objects")
        if not isinstance(j["answer"].get("InterfaceName", {}), dict):
            raise _Bad(f"{where}: a join's InterfaceName must be an object")
        key = _text(j["sandbox_key"], f"{where}: sandbox_key")
        join = Join(key, j["options"], j["answer"], *origin(j["call"], j["run"], where))
    connectivity = None if conn is None else _object(conn, where)
    call, run = origin(call, run, where)
    mac, opts, assigned = _mac(mac, where), _object(options, where), _bool(assigned, where)
    return Endpoint(_id(eid, where), nid, v4, v6, mac, opts, call, assigned, join, connectivity,
                    run)  # fmt: skip


def _pool(row: tuple[Any, ...], where: str, origin: _Origin) -> Pool:
    pid, space, network, sub, options, call, epoch, run = row
    net = _subnet(network, where)
    sub_pool = _subnet(sub, where) if sub != "" else None
    if sub_pool is not None and (
        sub_pool.version != net.version or not sub_pool.subnet_of(net)  # type: ignore[arg-type]
    ):
        raise _Bad(f"{where}: sub-pool {sub} is not inside pool {network}")
    opts = _object(options, where)
    if not all(isinstance(v, str) for v in opts.values()):
        raise _Bad(f"{where}: options must map names to strings")
    expected = f"{space}/{network}" + (f"/{sub}" if sub else "")
    if pid != expected:
        raise _Bad(f"{where}: the id of pool {network} in {space!r} is {expected!r}")
    call, run = origin(call, run, where)
    return Pool(_id(pid, where), _text(space, where), net, sub_pool, opts, call,
                origin.epoch(epoch, where), run)  # fmt: skip


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(f"{where}: {value!r} is not a whole number")
    return value


def _bool(value: object, where: str) -> bool:
    if value not in (0, 1) or isinstance(value, float):
        raise _Bad(f"{where}: {value!r} is not 0 or 1")
    return bool(value)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{where}: {value!r} is not text")
    return value


def _id(value: object, where: str) -> str:
    if not _text(value, where):
        raise _Bad(f"{where}: an empty id")
    return str(value)


def _json(value: object, where: str) -> Any:
    try:
        return w.strict_json(_text(value, where))  # as the server decodes it: no NaN
    except ValueError:
        raise _Bad(f"{where}: {value!r} is not JSON") from None


def _object(value: object, where: str) -> dict[str, Any]:
    parsed = _json(value, where)
    if not isinstance(parsed, dict):
        raise _Bad(f"{where}: {value!r} is not a JSON object")
    return parsed


def _canonical(parse: Callable[[], Any], value: object, where: str, what: str) -> Any:
    try:
        parsed = parse()
    except DriverError:
        parsed = None
    if parsed is None or str(parsed) != value:
        raise _Bad(f"{where}: {value!r} is not {what}")
    return parsed


def _cidr(value: object, where: str, version: int) -> w.IPInterface | None:
    if value == "":
        return None
    parse = lambda: w.cidr(value, where, version)  # noqa: E731
    return _canonical(parse, value, where, f"an IPv{version} address with its prefix")  # type: ignore[no-any-return]


def _subnet(value: object, where: str) -> w.IPNetwork:
    return _canonical(lambda: w.subnet(value, where), value, where, "a network in CIDR form")  # type: ignore[no-any-return]


def _ip(value: object, where: str, *, empty: bool, version: int | None = None) -> object:
    if empty and value == "":
        return None
    return _canonical(lambda: w.address(value, where, version), value, where, "an IP address")


def _mac(value: object, where: str) -> str:
    if value == "":
        return ""
    _canonical(lambda: w.mac(value, where), value, where, "a MAC address in lower case")
    return str(value)


def _ipam_of(v4: object, v6: object, where: str) -> tuple[list[w.IPAMData], list[w.IPAMData]]:
    out = []
    for raw, version, key in ((v4, 4, "ipv4_data"), (v6, 6, "ipv6_data")):
        parsed = _json(raw, f"{where}: {key}")
        try:
            data = w.ipam_data({key: parsed}, key, version)
        except DriverError as exc:
            raise _Bad(f"{where}: {exc.message}") from None
        if parsed is None or [d.to_wire() for d in data] != parsed:
            raise _Bad(f"{where}: {key} {raw!r} is not a list of IPAM data as written")
        out.append(data)
    return out[0], out[1]


# -- reading without serving ------------------------------------------------------------------
def peek_state(path: str) -> State:
    """The state in the database at ``path`` as it is (no new run); nothing is written."""
    if not os.path.exists(path):
        raise StateFileError(f"cannot load state file {path}: no such file")
    try:  # read-write (and never written), so that closing it tidies the -wal file away
        db = sqlite3.connect(os.path.realpath(path), timeout=0)
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
