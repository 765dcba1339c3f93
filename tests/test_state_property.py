"""The state has one owner, `State`: its indexes follow one rule, live or loaded.

The rule: an address (a MAC) of a network belongs to the endpoint that took it first, in
creation order; when that endpoint goes, the next-oldest holder takes it (only a lenient
driver lets two share one). The property, after any call sequence (the fuzz tests'
generators, and a dense one of lenient duplicates), strict or lenient:

* the indexes rebuilt from the records (``fakedriver.core.state.indexes()``) are the live
  ones, after every call;
* a reload, through the ``--state`` database and through the JSON state file of earlier
  versions, gives the same snapshot and the same indexes as memory.

The three places that kept the indexes used to disagree: two lenient endpoints on one
address, ``zz`` first, then ``aa``: the live index said ``zz``, a reload said ``aa``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support.wire import NET, Wire
from test_fuzz import (
    METHODS,
    NET2,
    PERSONAS,
    Request,
    endpoint_request,
    ids,
    near_valid_requests,
    seeded,
)

from fakedriver import FakeNetDriver, State
from fakedriver.core.state import indexes
from fakedriver.persist.jsonfile import load, save
from fakedriver.persist.store import Store, read

#: Bounded, so that the whole file takes a few seconds (it runs in the fast tier).
PROPERTY = settings(max_examples=100, derandomize=True, database=None, deadline=None)
#: Where the reloads write: in memory where there is a tmpfs (no disk flush per example).
MEMORY = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def live(state: State) -> dict[str, Any]:
    """Every network's indexes as the state keeps them."""
    return {nid: (n.addresses, n.macs, n.shared) for nid, n in state.networks.items()}


def assert_indexes_are_the_records(state: State) -> None:
    assert live(state) == {nid: indexes(n) for nid, n in state.networks.items()}


def assert_reloads_equal_memory(state: State) -> None:
    snapshot = state.snapshot()
    with tempfile.TemporaryDirectory(prefix="fdp", dir=MEMORY) as folder:
        store = Store.open(str(Path(folder) / "state.db"))
        try:
            store.replace(state)
            from_db = read(store.db, str(Path(folder) / "state.db"))
        finally:
            store.close()
        save(state, str(Path(folder) / "state.json"))
        from_json = load(str(Path(folder) / "state.json"))  # a new run of the state
    assert from_db.snapshot() == snapshot
    assert from_json.snapshot() == {**snapshot, "run": snapshot["run"] + 1}
    for loaded in (from_db, from_json):
        assert live(loaded) == live(state)
        assert_indexes_are_the_records(loaded)


def run(fake: FakeNetDriver, requests: list[Request]) -> None:
    for request in requests:
        fake.handle(request.path, request.raw)
        assert fake.calls[-1].status != 500, fake.calls[-1]
        assert_indexes_are_the_records(fake.state)
    assert_reloads_equal_memory(fake.state)


# -- lenient duplicates: endpoints whose ids sort otherwise than they were made ---------------
SHARED_IDS = ["z" * 64, "a" * 64, "m" * 64]
SHARED_ADDRESSES = ["10.1.0.5/24", "10.1.0.6/24", ""]
SHARED_MACS = ["02:00:00:00:00:05", ""]


def _request(method: str, body: dict[str, Any]) -> Request:
    return Request(f"/{method}", json.dumps(body).encode())


dense = st.one_of(
    st.builds(
        lambda eid, address, mac: _request(
            "NetworkDriver.CreateEndpoint", endpoint_request(NET2, eid, address, mac=mac)
        ),
        st.sampled_from(SHARED_IDS),
        st.sampled_from(SHARED_ADDRESSES),
        st.sampled_from(SHARED_MACS),
    ),
    st.sampled_from(SHARED_IDS).map(
        lambda eid: _request("NetworkDriver.DeleteEndpoint", ids(NET2, eid))
    ),
    st.sampled_from(SHARED_IDS).map(
        lambda eid: _request(
            "NetworkDriver.Join", {**ids(NET2, eid), "SandboxKey": "/k", "Options": {}}
        )
    ),
)


@PROPERTY
@given(
    persona=st.sampled_from(PERSONAS),
    requests=st.lists(near_valid_requests(list(METHODS)), min_size=1, max_size=8),
)
def test_after_any_calls_indexes_and_reloads_agree_with_memory(
    persona: dict[str, Any], requests: list[Request]
) -> None:
    run(seeded(persona), requests)


#: Three endpoints on one address and MAC, then the first goes: the next-oldest, not the
#: newest, takes both (an example the search must always try, whatever it draws).
THREE_SHARE_THEN_THE_FIRST_GOES = [
    _request(
        "NetworkDriver.CreateEndpoint",
        endpoint_request(NET2, eid, SHARED_ADDRESSES[0], mac=SHARED_MACS[0]),
    )
    for eid in SHARED_IDS
] + [_request("NetworkDriver.DeleteEndpoint", ids(NET2, SHARED_IDS[0]))]


@PROPERTY
@given(strict=st.booleans(), requests=st.lists(dense, min_size=1, max_size=12))
@example(strict=False, requests=THREE_SHARE_THEN_THE_FIRST_GOES)
def test_after_shared_addresses_indexes_and_reloads_agree_with_memory(
    strict: bool, requests: list[Request]
) -> None:
    run(seeded({"strict": strict}), requests)


# -- the case that was found ------------------------------------------------------------------
ZZ, AA = "z" * 64, "a" * 64


@pytest.mark.parametrize("through", ["database", "json"])
def test_two_lenient_endpoints_on_one_address_keep_its_first_owner_after_a_reload(
    through: str, short_dir: Path
) -> None:
    fake = FakeNetDriver(strict=False)
    wire = Wire(fake)
    wire.network()
    wire.endpoint(ZZ, "10.0.0.5/24", mac="02:00:00:00:00:05")
    wire.endpoint(AA, "10.0.0.5/24", mac="02:00:00:00:00:05")  # a violation, tolerated
    network = fake.state.networks[NET]
    owner = ({str(ip): eid for ip, eid in network.addresses.items()}, dict(network.macs))
    assert owner == ({"10.0.0.5": ZZ}, {"02:00:00:00:00:05": ZZ})
    if through == "database":
        store = Store.open(str(short_dir / "state.db"))
        store.replace(fake.state)
        store.close()
        again = Store.open(str(short_dir / "state.db"))
        loaded = again.load()
        again.close()
    else:
        save(fake.state, str(short_dir / "state.json"))
        loaded = load(str(short_dir / "state.json"))
    network = loaded.networks[NET]
    assert ({str(ip): eid for ip, eid in network.addresses.items()}, dict(network.macs)) == owner
    other = FakeNetDriver(strict=False)
    other.restore(loaded)
    Wire(other).ok("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": ZZ})
    assert {str(ip): eid for ip, eid in network.addresses.items()} == {"10.0.0.5": AA}
    assert network.macs == {"02:00:00:00:00:05": AA}
