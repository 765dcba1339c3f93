"""Loading a state database refuses what this fakedriver does not write, each with the exact
one-line error: values that would be read differently from how they were stored (float
booleans, text not in canonical form, a pool id that is not its pool's), counters too large
to count on, and tables, views, triggers or indexes other than its own.

In-process and fast: each test writes such a row (or schema) into a real database and loads
it. ``test_state_db.py`` has the seeded corruption run and the server-level tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_persist import EP1, EP2, build_rich_state

from fakedriver import FakeNetDriver
from fakedriver.persist.store import StateFileError, Store, peek_state

PLAIN = "LocalDefault/10.200.0.0/24"  # a pool of the rich state, its id as written
V6 = "LocalDefault/fd00:fa4e::/64"


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of the rich state (``test_persist.build_rich_state``), made once."""
    path = tmp_path_factory.mktemp("clean") / "state.db"
    fake = FakeNetDriver(scope="global", strict=False)
    build_rich_state(fake)
    store = Store.open(str(path))
    store.replace(fake.state)
    store.close()
    return path


@pytest.fixture
def db(clean: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the clean database, to change."""
    path = tmp_path / "state.db"
    path.write_bytes(clean.read_bytes())
    yield path


def execute(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Run ``statements`` (SQL, or SQL with its parameters) on the database, committed."""
    conn = sqlite3.connect(str(path))
    try:
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, ())
            conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


def refusal(path: Path) -> str:
    """The error loading ``path`` raises (it must raise one)."""
    with pytest.raises(StateFileError) as refused:
        peek_state(str(path))
    message = str(refused.value)
    assert "\n" not in message
    return message.removeprefix(f"cannot load state file {path}: ")


def test_the_clean_database_loads(clean: Path) -> None:
    """What the refusals below change is the only thing wrong with their file."""
    assert EP1 in peek_state(str(clean)).endpoints


# -- values read differently from how they were stored ----------------------------------------
@pytest.mark.parametrize("value", [1.0, 0.0])
def test_a_float_boolean_is_refused(db: Path, value: float) -> None:
    execute(db, ("UPDATE endpoints SET mac_assigned = ? WHERE id = ?", (value, EP2)))
    assert refusal(db) == f"endpoints row {EP2!r}: {value!r} is not 0 or 1"


def test_a_float_boolean_of_a_node_is_refused(db: Path) -> None:
    execute(db, "UPDATE nodes SET self = 1.0 WHERE address = '192.0.2.1'")
    assert refusal(db) == "nodes row '192.0.2.1': 1.0 is not 0 or 1"


def test_an_upper_case_mac_is_refused(db: Path) -> None:
    """Loaded, it would escape the conflict check: a later endpoint with the same MAC in
    lower case would not be found in the network's index."""
    execute(db, ("UPDATE endpoints SET mac = '02:42:0A:5B:01:33' WHERE id = ?", (EP2,)))
    assert refusal(db) == (
        f"endpoints row {EP2!r}: '02:42:0A:5B:01:33' is not a MAC address in lower case"
    )


def test_an_upper_case_mac_of_a_lease_is_refused(db: Path) -> None:
    execute(db, ("UPDATE leases SET mac = upper(mac) WHERE pool_id = ?", (V6,)))
    assert (
        refusal(db) == f"leases row {V6!r}: '02:42:0A:5B:01:33' is not a MAC address in lower case"
    )


def test_an_uncompressed_ipv6_address_is_refused(db: Path) -> None:
    execute(
        db, ("UPDATE endpoints SET address_v6 = 'fd00:92:0:0:0:0:0:50/64' WHERE id = ?", (EP1,))
    )
    assert refusal(db) == (
        f"endpoints row {EP1!r}: 'fd00:92:0:0:0:0:0:50/64' is not an IPv6 address with its prefix"
    )


def test_an_uncompressed_ipv6_lease_is_refused(db: Path) -> None:
    execute(db, ("UPDATE leases SET address = 'fd00:fa4e:0::1' WHERE pool_id = ?", (V6,)))
    assert refusal(db) == f"leases row {V6!r}: 'fd00:fa4e:0::1' is not an IP address"


def test_an_upper_case_ipv6_node_is_refused(db: Path) -> None:
    execute(db, "UPDATE nodes SET address = '2001:DB8::7' WHERE address = '2001:db8::7'")
    assert refusal(db) == "nodes row '2001:DB8::7': '2001:DB8::7' is not an IP address"


def test_a_pool_id_that_is_not_its_pool_is_refused(db: Path) -> None:
    wrong = "LocalDefault/10.201.0.0/24"
    execute(
        db,
        ("UPDATE pools SET id = ? WHERE id = ?", (wrong, PLAIN)),
        ("UPDATE leases SET pool_id = ? WHERE pool_id = ?", (wrong, PLAIN)),
    )
    assert refusal(db) == (
        f"pools row {wrong!r}: the id of pool 10.200.0.0/24 in 'LocalDefault' is {PLAIN!r}"
    )


# -- counters -----------------------------------------------------------------------------------
LARGEST = 2**53 - 1  # the largest whole number a state file holds (exact in every JSON reader)


@pytest.mark.parametrize("key", ["run", "epoch"])
@pytest.mark.parametrize("value", [2**63 - 1, LARGEST + 1])
def test_a_counter_past_the_largest_is_refused(db: Path, key: str, value: int) -> None:
    """2**63 - 1 used to be an OverflowError traceback: the next run (or epoch) does not fit
    in SQLite's INTEGER."""
    execute(db, ("UPDATE meta SET value = ? WHERE key = ?", (value, key)))
    assert refusal(db) == f"meta row {key!r}: {value} is more than {LARGEST}, the largest it holds"
    store = Store.open(str(db))
    try:
        with pytest.raises(StateFileError, match=f"{value} is more than {LARGEST}"):
            store.load()
    finally:
        store.close()


def test_the_largest_run_is_refused_at_load_as_there_is_no_next(db: Path) -> None:
    execute(db, ("UPDATE meta SET value = ? WHERE key = 'run'", (LARGEST,)))
    assert peek_state(str(db)).run == LARGEST  # a file a server can no longer start on ...
    store = Store.open(str(db))
    try:
        with pytest.raises(StateFileError) as refused:
            store.load()
    finally:
        store.close()
    assert str(refused.value) == (
        f"cannot load state file {db}: meta row 'run': {LARGEST} leaves no next run"
    )
    assert peek_state(str(db)).run == LARGEST  # ... and that it leaves as it was


def test_a_record_number_past_the_largest_is_refused(db: Path) -> None:
    execute(db, ("UPDATE endpoints SET call = ? WHERE id = ?", (LARGEST + 1, EP2)))
    problem = f"call: {LARGEST + 1} is more than {LARGEST}, the largest it holds"
    assert refusal(db) == f"endpoints row {EP2!r}: {problem}"


# -- the schema: this module's tables, and nothing else -------------------------------------------
NETWORKS = "id, options, ipv4_data, ipv6_data, call, run"


def _networks_made_by(columns: str, strict: str = " STRICT") -> tuple[str, ...]:
    """Statements that put table networks back, made by ``columns``, with its rows."""
    return (
        "ALTER TABLE networks RENAME TO old",
        f"CREATE TABLE networks ({columns}){strict}",
        f"INSERT INTO networks SELECT {NETWORKS} FROM old",
        "DROP TABLE old",
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("CREATE TRIGGER wipe AFTER INSERT ON networks BEGIN DELETE FROM leases; END",),
            "the database holds trigger 'wipe', which this fakedriver does not make",
        ),
        (
            (
                "DROP TABLE networks",
                "CREATE VIEW networks AS SELECT 'n' id, '{}' options, '[]' ipv4_data, "
                "'[]' ipv6_data, 0 call, 0 run",
            ),
            "the database holds view 'networks', which this fakedriver does not make",
        ),
        (
            ("CREATE VIEW extra AS SELECT 1",),
            "the database holds view 'extra', which this fakedriver does not make",
        ),
        (
            ("CREATE INDEX by_mac ON leases (mac)",),
            "the database holds index 'by_mac', which this fakedriver does not make",
        ),
        (
            ("CREATE TABLE extra (x ANY) STRICT",),
            "the database holds table 'extra', which this fakedriver does not make",
        ),
        (("DROP TABLE links",), "the database has no table links"),
        (
            ("ALTER TABLE networks ADD COLUMN extra ANY",),
            f"table networks has the columns {NETWORKS}, extra; this fakedriver writes {NETWORKS}",
        ),
        (
            _networks_made_by(f"{NETWORKS.replace(',', ' ANY,')} ANY, PRIMARY KEY (id)", ""),
            "table networks is not STRICT",
        ),
        (
            _networks_made_by(
                f"{NETWORKS.replace(',', ' ANY,')} ANY, PRIMARY KEY (id COLLATE NOCASE)"
            ),
            "table networks is made by 'CREATE TABLE networks (id ANY, options ANY, ipv4_data "
            "ANY, ipv6_data ANY, call ANY, run ANY, PRIMARY KEY (id COLLATE NOCASE)) STRICT', "
            "not 'CREATE TABLE networks (id ANY, options ANY, ipv4_data ANY, ipv6_data ANY, "
            "call ANY, run ANY, PRIMARY KEY (id)) STRICT'",
        ),
    ],
    ids=[
        "trigger",
        "view-networks",
        "view",
        "index",
        "table",
        "no-table",
        "column",
        "not-strict",
        "collate",
    ],
)
def test_a_schema_this_module_does_not_write_is_refused(
    db: Path, change: tuple[str, ...], problem: str
) -> None:
    """Rows were checked, tables were not: a trigger deleting every lease at each insert was
    accepted (and the leases vanished after a restart); a view named ``networks`` or an
    extra column started, and then every write answered 500."""
    execute(db, *change)
    assert refusal(db) == problem
    with pytest.raises(StateFileError) as refused:  # a server refuses it at start, as it is
        Store.open(str(db))
    assert str(refused.value) == f"cannot load state file {db}: {problem}"
    assert refusal(db) == problem


def test_a_later_schema_version_says_so_before_its_tables(db: Path) -> None:
    execute(db, "UPDATE meta SET value = 2 WHERE key = 'schema'", "CREATE TABLE v2 (x ANY)")
    assert refusal(db) == "schema version 2, this fakedriver reads version 1"
