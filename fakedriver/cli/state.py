"""``fakedriver state``: look into a state database (``show``), or make one from the JSON
state file of an earlier version (``import``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..core.ports import StoreError
from ..core.state import State
from ..persist.jsonfile import load
from ..persist.store import StateFileError, Store, peek_state
from ..server.log import printable
from .files import check_regular


def state_parser(commands: Any) -> None:
    """Add ``state show`` and ``state import`` to the ``fakedriver`` sub-commands."""
    state = commands.add_parser(
        "state",
        help="show a --state database, or import a JSON state file",
        description="Read a --state database that no running server holds.",
        allow_abbrev=False,
    )
    actions = state.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print what a state database holds", allow_abbrev=False)
    show.add_argument("file", metavar="FILE")
    show.add_argument("--json", action="store_true", help="the state snapshot as JSON")
    imported = actions.add_parser(
        "import",
        help="make a state database from the JSON state file of an earlier version",
        allow_abbrev=False,
    )
    imported.add_argument("json_file", metavar="JSON")
    imported.add_argument("file", metavar="FILE", help="the database to make (must not exist)")
    for sub in (show, imported):
        sub.set_defaults(subparser=sub)  # an unknown flag gets this command's usage


def state_command(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _import(args.json_file, args.file)
    check_regular(args.file, f"state file {args.file}")  # a FIFO would block the read
    state = peek_state(args.file)
    if args.json:
        print(json.dumps(state.snapshot(), indent=2, sort_keys=True))
    else:
        print("\n".join(describe(state, args.file)))
    return 0


def _import(source: str, path: str) -> int:
    if os.path.lexists(path):
        raise StateFileError(f"cannot import into {path}: it exists")
    if not os.path.exists(source):
        raise StateFileError(f"cannot load state file {source}: no such file")
    check_regular(source, f"state file {source}")
    try:
        state = load(source)
    except StateFileError:
        raise
    except Exception as exc:  # the old loader's checks are few: never a traceback
        raise StateFileError(f"cannot load state file {source}: {exc!r}") from None
    state.run -= 1  # the database's first load starts the next run, not this import
    store = Store.open(path)
    try:
        store.replace(state)
    except StoreError as exc:  # a value SQLite cannot store (text that is not UTF-8, ...)
        store.close()
        os.unlink(path)
        raise StateFileError(f"cannot import {source} into {path}: {exc}") from None
    store.close()
    try:
        peek_state(path)  # what the JSON loader let through, the database checks
    except StateFileError:
        os.unlink(path)
        raise
    print(f"fakedriver: imported {source} into {path}", file=sys.stderr)
    return 0


def describe(state: State, path: str) -> list[str]:
    """The state for a human: one line per record, grouped by kind, each character that
    is not printable escaped (see `printable()`)."""
    lines = [
        f"{path}: run {state.run}, epoch {state.epoch}, {len(state.networks)} network(s), "
        f"{len(state.endpoints)} endpoint(s), {len(state.pools)} pool(s), "
        f"{sum(len(p.leases) for p in state.pools.values())} address(es)"
    ]
    for nid, network in sorted(state.networks.items()):
        pools = ", ".join(str(d.pool) for d in network.ipv4_data + network.ipv6_data)
        internal = " internal" if network.internal else ""
        lines.append(f"network {nid} [{pools or 'no pools'}]{internal}")
        for eid, ep in sorted(network.endpoints.items()):
            where = " ".join(str(a) for a in (ep.address, ep.address_v6) if a is not None)
            joined = f" joined {ep.join.sandbox_key}" if ep.join is not None else ""
            link = " link" if eid in state.links else ""
            lines.append(f"  endpoint {eid} {where or '-'} {ep.mac or '-'}{joined}{link}")
    for pid, pool in sorted(state.pools.items()):
        lines.append(f"pool {pid}: {len(pool.leases)} address(es) leased")
        lines.extend(f"  {address}" for address in state.addresses[pid][:20])
        if len(pool.leases) > 20:
            lines.append(f"  ... and {len(pool.leases) - 20} more")
    lines.extend(f"allocation {nid}" for nid in sorted(state.allocations))
    lines.extend(f"node {address}" for address in sorted(state.nodes))
    orphans = sorted(state.links - set(state.joins))
    lines.extend(f"link intent {eid} (no join: removed at the next start)" for eid in orphans)
    lines.extend(f"violation {v}" for v in state.violations)
    return [printable(line) for line in lines]  # a client's ids: no line forged, no escapes
