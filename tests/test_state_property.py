"""The state has one owner, `State`: its indexes follow one rule, live or loaded.

The rule: an address (a MAC) of a network belongs to the endpoint that took it first, in
creation order; when that endpoint goes, the next-oldest holder takes it (only a lenient
driver lets two share one). The three places that kept the indexes used to disagree: two
lenient endpoints on one address, ``zz`` first, then ``aa``: the live index said ``zz``, a
reload said ``aa``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NET, Wire

from fakedriver import FakeNetDriver
from fakedriver.persist.jsonfile import load, save
from fakedriver.persist.store import Store

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
