"""The JSON state file of earlier versions: saving a state to it and loading it back.

``fakedriver serve --state FILE`` keeps the state in SQLite now (``persist.store``); ``fakedriver
state import`` reads one of these files into a database. The file is the JSON of
[`State.snapshot()`][fakedriver.State.snapshot]; it is written atomically (a temporary
file, fsync, rename), so a crash leaves either the old file or the new one.

Loading a state back starts a new run of it (`State.run`): its records keep the call
numbers of the journal they were made in, which is gone, and say so in the leak audit.
Files written before runs and link intents were kept load with run 0 and the links of
their joins.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
from typing import Any

from ..core import wire as w
from ..core.pool import Lease, Pool
from ..core.records import Allocation, Endpoint, Network, Node, Violation
from ..core.state import State
from .store import StateFileError


def save(state: State, path: str) -> None:
    data = json.dumps(state.snapshot(), sort_keys=True)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fakedriver-state-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str) -> State:
    """Read a state file, as a new run of the state; a missing file is an empty state, a
    corrupt one an error."""
    if not os.path.exists(path):
        return State()
    try:
        with open(path, "rb") as source:  # JSON as the server decodes it: no NaN, no 1e400
            state = restore(w.strict_json(source.read()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        detail = str(exc) if isinstance(exc, w.Unusable) else repr(exc)  # Unusable says why
        raise StateFileError(f"cannot load state file {path}: {detail}") from exc
    state.set_counters(state.epoch, state.run + 1)
    return state


def restore(data: dict[str, Any]) -> State:
    """The inverse of [`State.snapshot()`][fakedriver.State.snapshot]: each record through
    its codec, into the state through its own methods (which index the endpoints in the
    order the calls made them)."""
    state = State(epoch=int(data["epoch"]), run=int(data.get("run", 0)))
    for nid, n in data["networks"].items():
        state.add_network(Network.from_dict(nid, n))
    endpoints = [Endpoint.from_dict(eid, e) for eid, e in data["endpoints"].items()]
    for endpoint in endpoints:
        if endpoint.network_id not in state.networks:
            raise KeyError(f"endpoint {endpoint.id} of network {endpoint.network_id!r}")
    state.add_endpoints(endpoints)
    for nid, a in data["allocations"].items():
        state.allocate(Allocation.from_dict(nid, a))
    for address, n in data["nodes"].items():
        state.discover(Node.from_dict(address, n))
    for pid, p in data["pools"].items():
        state.add_pool(Pool.from_dict(pid, p))
        for ip, lease in p["leases"].items():
            state.lease(pid, int(ipaddress.ip_address(ip)), Lease.from_dict(lease))
    for text in data["violations"]:
        state.record_violation(Violation.parse(text))
    links = data.get("links")
    if links is None:  # an older file: the links its joins name
        links = [eid for eid, join in state.joins.items() if join.src_name]
    if not isinstance(links, list) or not all(isinstance(eid, str) for eid in links):
        raise TypeError(f"links must be a list of endpoint ids, not {links!r}")
    for eid in links:
        state.add_link(eid)
    return state
