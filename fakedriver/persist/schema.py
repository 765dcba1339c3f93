"""What a state database holds (``fakedriver serve --state FILE``), and the checks that a
file holds only that: its tables, and every row read back.

Reading checks every row (types, addresses and networks in canonical form, leases inside
their pools, endpoints of known networks, epochs and runs no later than the state's) and
keeps what it reads exactly: a value that would not be written back as it was stored is
`Bad`, which ``store`` turns into a ``StateFileError`` naming the file.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from ..core import wire as w
from ..core.errors import DriverError
from ..core.methods import METHODS
from ..core.pool import Lease, Pool
from ..core.records import Allocation, Endpoint, Network, Node, Violation
from ..core.state import State

#: The schema this module writes and reads; kept in ``meta``.
SCHEMA = 1

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
#: The codec's keys (`fields()`) whose columns hold JSON text (NULL for ``None``), and
#: those that hold a boolean as 0 or 1.
JSON_FIELDS = frozenset({"options", "ipv4_data", "ipv6_data", "join", "connectivity"})
FLAG_FIELDS = frozenset({"mac_assigned", "self"})

#: The largest whole number a state file holds (a call number, a run, an epoch): exact in
#: every JSON reader (``GET /fakedriver/state``), and so far below SQLite's 2**63 - 1 that
#: counting on from it cannot overflow.
LARGEST = 2**53 - 1


class Bad(Exception):
    """A row (or table) that does not hold what this module writes."""


def statements() -> Iterator[str]:
    """The statements that make the tables."""
    for table, columns in TABLES.items():
        if table == "meta":
            yield f"CREATE TABLE meta ({', '.join(columns)}) STRICT"
            continue
        spec = [f"{c} ANY" for c in columns]
        spec.append(_PRIMARY.get(table, f"PRIMARY KEY ({columns[0]})"))
        yield f"CREATE TABLE {table} ({', '.join(spec)}) STRICT"


def check_tables(db: sqlite3.Connection) -> None:
    """Raise `Bad` naming the first way the database's schema differs from the one
    `statements()` makes: a table, view, trigger or index it does not make (other than
    the index SQLite makes for each table's primary key), a table it lacks, or a table made
    otherwise (its columns, STRICT, its declaration). A missing primary key index is damage,
    which ``PRAGMA integrity_check`` finds first."""
    found = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid")
    entries = [tuple(entry) for entry in found]
    tables = {name: sql for kind, name, _, sql in entries if kind == "table"}
    if "meta" in tables:  # a later version's file says so, whatever its tables
        with contextlib.suppress(sqlite3.Error):
            version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if version is not None and version[0] != SCHEMA:
                raise _other_version(version[0])
    made = dict(zip(TABLES, statements(), strict=True))
    keys = {f"sqlite_autoindex_{table}_1": table for table in TABLES}  # primary keys' indexes
    for kind, name, table, sql in entries:
        ours = (kind == "table" and name in made) or (
            kind == "index" and keys.get(name) == table and sql is None
        )
        if not ours:
            raise Bad(f"the database holds {kind} {name!r}, which this fakedriver does not make")
    for table, sql in made.items():
        if table not in tables:
            raise Bad(f"the database has no table {table}")
        if tables[table] != sql:
            raise Bad(_made_otherwise(db, table, tables[table], sql))


def _made_otherwise(db: sqlite3.Connection, table: str, sql: str, ours: str) -> str:
    """How table ``table``, made by ``sql``, differs from the one ``ours`` makes."""
    columns = [row[1] for row in db.execute(f"PRAGMA table_xinfo({table})")]
    want = [column.split()[0] for column in TABLES[table]]
    if columns != want:
        return (
            f"table {table} has the columns {', '.join(columns)}; "
            f"this fakedriver writes {', '.join(want)}"
        )
    strict = db.execute("SELECT strict FROM pragma_table_list WHERE name = ?", (table,))
    if strict.fetchone() != (1,):
        return f"table {table} is not STRICT"
    return f"table {table} is made by {sql!r}, not {ours!r}"


def _other_version(found: object) -> Bad:
    return Bad(f"schema version {found}, this fakedriver reads version {SCHEMA}")


# -- reading, validated -----------------------------------------------------------------------
def _rows(db: sqlite3.Connection, table: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    columns = TABLES[table] if table != "meta" else ("key", "value")
    order = ", ".join(columns[:2] if table == "leases" else columns[:1])
    for row in db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"):
        if len(row) != len(columns):
            raise Bad(f"{table}: a row of {len(row)} columns")
        yield f"{table} row {row[0]!r}", tuple(row)


def read_state(db: sqlite3.Connection) -> State:
    """The state in ``db``, every row checked (`Bad` names the first problem)."""
    check = db.execute("PRAGMA integrity_check(1)").fetchone()  # tables and indexes agree
    if check is None or check[0] != "ok":
        raise Bad(f"the database is damaged: {check[0] if check else 'no answer'}")
    check_tables(db)
    state = State()
    read_meta(db, state)
    origin = Origin(state)
    for where, row in _rows(db, "networks"):
        state.add_network(parse_network(row, where, origin))
    state.add_endpoints([parse_endpoint(state, row, where, origin)
                         for where, row in _rows(db, "endpoints")])  # fmt: skip
    for where, row in _rows(db, "allocations"):
        state.allocate(parse_allocation(row, where, origin))
    for where, row in _rows(db, "nodes"):
        state.discover(parse_node(row, where, origin))
    pools = [parse_pool(row, where, origin) for where, row in _rows(db, "pools")]
    for pool in sorted(pools, key=lambda pool: (pool.run, pool.call)):  # creation order,
        state.add_pool(pool)  # as memory held them: the first clash named is the same
    for where, row in _rows(db, "leases"):
        state.lease(*parse_lease(state, row, where, origin))
    for where, (eid,) in _rows(db, "links"):
        state.add_link(_id(eid, where))
    for i, (where, (seq, call, method, message)) in enumerate(_rows(db, "violations")):
        if seq != i:
            raise Bad(f"{where}: violations are numbered 0, 1, ...; {i} is missing")
        if method not in METHODS:
            raise Bad(f"{where}: {method!r} is not a method of either protocol")
        data = {"call": _int(call, where), "method": method, "message": _text(message, where)}
        state.record_violation(Violation.from_dict(data))
    return state


def read_meta(db: sqlite3.Connection, state: State) -> None:
    """Set ``state``'s epoch and run to what ``meta`` holds."""
    meta = {}
    for where, (key, value) in _rows(db, "meta"):
        meta[key] = _int(value, where)
    if meta.get("schema") != SCHEMA:
        raise _other_version(meta.get("schema", "none"))
    if set(meta) != {"schema", "epoch", "run"}:
        raise Bad(f"meta holds {sorted(meta)}, not epoch, run and schema")
    state.set_counters(meta["epoch"], meta["run"])


# -- rows: each record's codec (``to_dict()``/``from_dict()``) as the table's columns ---------
@functools.cache
def fields(table: str) -> tuple[str, ...]:
    """The codec's keys the columns of ``table`` hold, after its key columns."""
    columns = TABLES[table][2 if table == "leases" else 1 :]
    return tuple("join" if column == "joined" else column for column in columns)


def parse_network(row: tuple[Any, ...], where: str, origin: Origin) -> Network:
    nid, options, v4, v6, call, run = row
    data = _ipam_of(v4, v6, where)
    nid, options = _id(nid, where), _object(options, where)
    call, run = origin(call, run, where)
    return Network.from_dict(nid, {"options": options, **data, "call": call, "run": run})


def parse_allocation(row: tuple[Any, ...], where: str, origin: Origin) -> Allocation:
    nid, options, v4, v6, call, run = row
    opts = _object(options, where)
    if not all(isinstance(v, str) for v in opts.values()):
        raise Bad(f"{where}: options must map names to strings")
    data = _ipam_of(v4, v6, where)
    nid = _id(nid, where)
    call, run = origin(call, run, where)
    return Allocation.from_dict(nid, {"options": opts, **data, "call": call, "run": run})


def parse_node(row: tuple[Any, ...], where: str, origin: Origin) -> Node:
    address, bind, self_, call, run = row
    _ip(address, where, empty=False)
    _ip(bind, where, empty=True)
    self_ = _bool(self_, where)
    call, run = origin(call, run, where)
    data = {"bind_address": bind, "self": self_, "call": call, "run": run}
    return Node.from_dict(address, data)


def parse_lease(
    state: State, row: tuple[Any, ...], where: str, origin: Origin
) -> tuple[str, int, Lease]:
    """The pool id, the address (an integer) and the lease of ``row``, whose pool the
    state holds with that address free."""
    pid, address, kind, mac, call, epoch, run = row
    pool = state.pools.get(pid) if isinstance(pid, str) else None
    if pool is None:
        raise Bad(f"{where}: a lease of pool {pid!r}, which the state does not hold")
    ip = _ip(address, where, empty=False, version=pool.network.version)
    value = pool.check_specific(ip)  # type: ignore[arg-type]
    if kind not in ("gateway", "address"):
        raise Bad(f"{where}: kind {kind!r} is neither 'gateway' nor 'address'")
    lease_call, lease_run = origin(call, run, where)
    data = {"kind": kind, "mac": _mac(mac, where), "call": lease_call,
            "epoch": origin.epoch(epoch, where), "run": lease_run}  # fmt: skip
    if value in pool.leases:
        raise Bad(f"{where}: address {address} is leased twice")
    return pool.id, value, Lease.from_dict(data)


class Origin:
    """Checks a record's ``call`` and ``run`` (and ``epoch``) against the state's."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __call__(self, call: object, run: object, where: str) -> tuple[int, int]:
        call, run = _int(call, f"{where}: call"), _int(run, f"{where}: run")
        if run > self.state.run:
            raise Bad(f"{where}: run {run} is later than the state's run {self.state.run}")
        return call, run

    def epoch(self, epoch: object, where: str) -> int:
        epoch = _int(epoch, f"{where}: epoch")
        if epoch > self.state.epoch:
            raise Bad(f"{where}: epoch {epoch} is later than the state's {self.state.epoch}")
        return epoch


def parse_endpoint(state: State, row: tuple[Any, ...], where: str, origin: Origin) -> Endpoint:
    eid, nid, address, address_v6, mac, assigned, options, call, run, joined, conn = row
    if nid not in state.networks:
        raise Bad(f"{where}: network {nid!r}, which the state does not hold")
    _cidr(address, where, 4)
    _cidr(address_v6, where, 6)
    join = None
    if joined is not None:
        j = _object(joined, where)
        if set(j) != {"sandbox_key", "options", "answer", "call", "run"}:
            raise Bad(f"{where}: a join must have sandbox_key, options, answer, call and run")
        if not isinstance(j["options"], dict) or not isinstance(j["answer"], dict):
            raise Bad(f"{where}: a join's options and answer must be objects")
        if not isinstance(j["answer"].get("InterfaceName", {}), dict):
            raise Bad(f"{where}: a join's InterfaceName must be an object")
        _text(j["sandbox_key"], f"{where}: sandbox_key")
        join_call, join_run = origin(j["call"], j["run"], where)
        join = {**j, "call": join_call, "run": join_run}
    connectivity = None if conn is None else _object(conn, where)
    call, run = origin(call, run, where)
    mac, opts, assigned = _mac(mac, where), _object(options, where), _bool(assigned, where)
    data = {"network_id": nid, "address": address, "address_v6": address_v6, "mac": mac,
            "mac_assigned": assigned, "options": opts, "call": call, "run": run, "join": join,
            "connectivity": connectivity}  # fmt: skip
    return Endpoint.from_dict(_id(eid, where), data)


def parse_pool(row: tuple[Any, ...], where: str, origin: Origin) -> Pool:
    pid, space, network, sub, options, call, epoch, run = row
    net = _subnet(network, where)
    sub_pool = _subnet(sub, where) if sub != "" else None
    if sub_pool is not None and (
        sub_pool.version != net.version or not sub_pool.subnet_of(net)  # type: ignore[arg-type]
    ):
        raise Bad(f"{where}: sub-pool {sub} is not inside pool {network}")
    opts = _object(options, where)
    if not all(isinstance(v, str) for v in opts.values()):
        raise Bad(f"{where}: options must map names to strings")
    expected = f"{space}/{network}" + (f"/{sub}" if sub else "")
    if pid != expected:
        raise Bad(f"{where}: the id of pool {network} in {space!r} is {expected!r}")
    call, run = origin(call, run, where)
    pid = _id(pid, where)
    data = {"address_space": _text(space, where), "pool": network, "sub_pool": sub,
            "options": opts, "call": call, "epoch": origin.epoch(epoch, where),
            "run": run}  # fmt: skip
    return Pool.from_dict(pid, data)


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Bad(f"{where}: {value!r} is not a whole number")
    if value > LARGEST:
        raise Bad(f"{where}: {value} is more than {LARGEST}, the largest it holds")
    return value


def _bool(value: object, where: str) -> bool:
    if value not in (0, 1) or isinstance(value, float):
        raise Bad(f"{where}: {value!r} is not 0 or 1")
    return bool(value)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise Bad(f"{where}: {value!r} is not text")
    return value


def _id(value: object, where: str) -> str:
    if not _text(value, where):
        raise Bad(f"{where}: an empty id")
    return str(value)


def _json(value: object, where: str) -> Any:
    try:
        return w.strict_json(_text(value, where))  # as the server decodes it: no NaN
    except ValueError:
        raise Bad(f"{where}: {value!r} is not JSON") from None


def _object(value: object, where: str) -> dict[str, Any]:
    parsed = _json(value, where)
    if not isinstance(parsed, dict):
        raise Bad(f"{where}: {value!r} is not a JSON object")
    return parsed


def _canonical(parse: Callable[[], Any], value: object, where: str, what: str) -> Any:
    try:
        parsed = parse()
    except DriverError:
        parsed = None
    if parsed is None or str(parsed) != value:
        raise Bad(f"{where}: {value!r} is not {what}")
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


def _ipam_of(v4: object, v6: object, where: str) -> dict[str, list[Any]]:
    """The ``ipv4_data`` and ``ipv6_data`` of a row, checked, as their codec holds them."""
    out = {}
    for raw, version, key in ((v4, 4, "ipv4_data"), (v6, 6, "ipv6_data")):
        parsed = _json(raw, f"{where}: {key}")
        try:
            data = w.ipam_data({key: parsed}, key, version)
        except DriverError as exc:
            raise Bad(f"{where}: {exc.message}") from None
        if parsed is None or [d.to_wire() for d in data] != parsed:
            raise Bad(f"{where}: {key} {raw!r} is not a list of IPAM data as written")
        out[key] = parsed
    return out
