"""The JSON state file of earlier versions (``_persist``, read by ``fakedriver state
import``): save/load round trip, corrupt files, atomic writes; and, on the SQLite database
that ``fakedriver serve --state FILE`` keeps now, a corrupt file at start, a missing
directory and kill -9 (more in ``test_state_db.py``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from support.serve_env import BANNER, Conn, Dockerd, Launcher, create_network
from support.wire import EP, NET, Wire, ids

from fakedriver import FakeNetDriver, State
from fakedriver.persist.jsonfile import StateFileError, load, save
from fakedriver.persist.store import peek_state

EP1, EP2 = "e1" * 32, "e2" * 32
ALLOCATED = "a" * 64
MAC = "02:42:0a:5b:01:33"
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


def _pool(wire: Wire, pool: str = "", sub: str = "", v6: bool = False, **options: str) -> str:
    answer = wire.ok(
        "IpamDriver.RequestPool",
        {
            "AddressSpace": "LocalDefault",
            "Pool": pool,
            "SubPool": sub,
            "Options": options,
            "V6": v6,
        },
    )
    return str(answer["PoolID"])


def _address(wire: Wire, pid: str, address: str = "", options: Any = None) -> str:
    answer = wire.ok(
        "IpamDriver.RequestAddress", {"PoolID": pid, "Address": address, "Options": options}
    )
    return str(answer["Address"])


def _release(wire: Wire, pid: str, address: str) -> None:
    wire.ok("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": address})


def build_rich_state(fake: FakeNetDriver) -> dict[str, str]:
    """Something of everything the state holds; returns the pool ids."""
    wire = Wire(fake)
    wire.ok("Plugin.Activate")
    wire.ok("Plugin.Activate")  # epoch 2
    wire.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {
                "com.docker.network.enable_ipv6": True,
                "com.docker.network.generic": {"mtu": "1400", "com.example.foo": "bar"},
            },
            "IPv4Data": [
                {
                    "AddressSpace": "LocalDefault",
                    "Pool": "10.91.0.0/16",
                    "Gateway": "10.91.0.254/16",
                    "AuxAddresses": {"host1": "10.91.0.10/16", "gone": "<nil>"},
                }
            ],
            "IPv6Data": [
                {
                    "AddressSpace": "LocalDefault",
                    "Pool": "fd00:92::/64",
                    "Gateway": "fd00:92::1/64",
                    "AuxAddresses": {"router": "fd00:92::10/64"},
                }
            ],
        },
    )
    wire.endpoint(EP1, "10.91.1.50/16", v6="fd00:92::50/64")  # MAC generated
    wire.join(EP1, key="/var/run/docker/netns/5364ee04234e")
    wire.ok(
        "NetworkDriver.ProgramExternalConnectivity",
        {**ids(NET, EP1), "Options": {"com.docker.network.portmap": []}},
    )
    wire.endpoint(EP2, "10.91.1.51/16", mac=MAC)  # not joined
    wire.ok(
        "NetworkDriver.AllocateNetwork",
        {
            "NetworkID": ALLOCATED,
            "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4097"},
            "IPv4Data": [{"AddressSpace": "GlobalDefault", "Pool": "10.0.9.0/24"}],
            "IPv6Data": [],
        },
    )
    for data in (
        {"Address": "192.0.2.1", "BindAddress": "192.0.2.2", "Self": True},
        {"Address": "2001:db8::7", "BindAddress": "", "Self": False},
    ):
        wire.ok("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": data})

    plain = _pool(wire)  # carved: 10.200.0.0/24
    assert _address(wire, plain, options=GATEWAY) == "10.200.0.1/24"
    assert [_address(wire, plain) for _ in range(3)] == [
        "10.200.0.2/24",
        "10.200.0.3/24",
        "10.200.0.4/24",
    ]
    _release(wire, plain, "10.200.0.3")  # below the high-water mark

    ranged = _pool(wire, "10.93.0.0/24", "10.93.0.128/25", foo="bar")
    assert _address(wire, ranged, "10.93.0.1", GATEWAY) == "10.93.0.1/24"
    assert [_address(wire, ranged) for _ in range(3)] == [
        "10.93.0.128/24",
        "10.93.0.129/24",
        "10.93.0.130/24",
    ]
    _release(wire, ranged, "10.93.0.129")

    v6 = _pool(wire, v6=True)
    _address(wire, v6, options={"com.docker.network.endpoint.macaddress": MAC})

    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": "z" * 64})  # a violation (lenient)
    assert len(fake.violations) == 1
    return {"plain": plain, "ranged": ranged, "v6": v6}


def _json(state: State) -> str:
    return json.dumps(state.snapshot(), sort_keys=True)


@pytest.fixture
def saved(short_dir: Path) -> tuple[Path, FakeNetDriver, dict[str, str]]:
    fake = FakeNetDriver(scope="global", strict=False)
    pools = build_rich_state(fake)
    path = short_dir / "state.json"
    save(fake.state, str(path))
    return path, fake, pools


# -- round trip ------------------------------------------------------------------------------
def test_a_rich_state_round_trips(saved: tuple[Path, FakeNetDriver, dict[str, str]]) -> None:
    path, fake, _ = saved
    snapshot = fake.state.snapshot()
    assert snapshot["epoch"] == 2
    assert snapshot["endpoints"][EP1]["join"] is not None
    assert snapshot["endpoints"][EP1]["connectivity"] == {"com.docker.network.portmap": []}
    assert snapshot["networks"][NET]["ipv4_data"][0]["AuxAddresses"]["gone"] == "<nil>"
    assert snapshot["pools"]  # and so on: every part of the state is there

    loaded = load(str(path))
    assert loaded.snapshot() == {**snapshot, "run": 1}  # loading starts the state's next run
    assert json.loads(path.read_text()) == json.loads(_json(fake.state))
    # The indexes the conflict checks use are rebuilt too.
    network = loaded.networks[NET]
    assert {str(ip): eid for ip, eid in network.addresses.items()} == {
        "10.91.1.50": EP1,
        "fd00:92::50": EP1,
        "10.91.1.51": EP2,
    }
    assert network.macs[MAC] == EP2
    assert network.endpoints[EP1] is loaded.endpoints[EP1]


def test_the_restored_driver_allocates_the_lowest_free_address(
    saved: tuple[Path, FakeNetDriver, dict[str, str]],
) -> None:
    path, _, pools = saved
    fake = FakeNetDriver(scope="global")
    fake.restore(load(str(path)))
    wire = Wire(fake)
    # released below the high-water mark: reused first, then past the mark
    assert _address(wire, pools["plain"]) == "10.200.0.3/24"
    assert _address(wire, pools["plain"]) == "10.200.0.5/24"
    assert _address(wire, pools["ranged"]) == "10.93.0.129/24"
    assert _address(wire, pools["ranged"]) == "10.93.0.131/24"
    _release(wire, pools["plain"], "10.200.0.2")
    assert _address(wire, pools["plain"]) == "10.200.0.2/24"
    assert wire.ok("Plugin.Activate")
    assert fake.state.epoch == 3


def test_the_restored_driver_still_detects_conflicts(
    saved: tuple[Path, FakeNetDriver, dict[str, str]],
) -> None:
    path, _, pools = saved
    fake = FakeNetDriver(scope="global")  # strict: conflicts are refused
    fake.restore(load(str(path)))
    wire = Wire(fake)
    eid = "e3" * 32

    def endpoint(address: str, mac: str = "") -> dict[str, Any]:
        return {
            **ids(NET, eid),
            "Options": {},
            "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": mac},
        }

    assert wire.refused("NetworkDriver.CreateNetwork", create_network(NET)) == (
        f"network {NET} already exists"
    )
    assert wire.refused("NetworkDriver.DeleteNetwork", {"NetworkID": NET}).startswith(
        f"network {NET} has active endpoints: "
    )
    assert wire.refused("NetworkDriver.CreateEndpoint", endpoint("10.91.1.50/16")) == (
        f"address 10.91.1.50 is in use by endpoint {EP1}"
    )
    assert wire.refused("NetworkDriver.CreateEndpoint", endpoint("10.91.0.10/16")) == (
        "address 10.91.0.10 is the network's aux address host1"
    )
    assert wire.refused("NetworkDriver.CreateEndpoint", endpoint("10.91.1.60/16", MAC)) == (
        f"MAC address {MAC} is in use by endpoint {EP2}"
    )
    assert wire.refused(
        "NetworkDriver.Join", {**ids(NET, EP1), "SandboxKey": "/other", "Options": {}}
    ) == (f"endpoint {EP1} is already joined to sandbox /var/run/docker/netns/5364ee04234e")
    assert wire.refused(
        "NetworkDriver.AllocateNetwork", {"NetworkID": ALLOCATED, "Options": {}}
    ) == (f"network {ALLOCATED} is already allocated")
    assert wire.refused(
        "IpamDriver.RequestAddress", {"PoolID": pools["ranged"], "Address": "10.93.0.1"}
    ) == (f"address 10.93.0.1 is already allocated in pool {pools['ranged']}")
    assert "overlaps pool 10.93.0.0/24" in wire.refused(
        "IpamDriver.RequestPool",
        {"AddressSpace": "LocalDefault", "Pool": "10.93.0.0/16", "V6": False},
    )
    # and what is held can be let go, in order
    wire.ok("NetworkDriver.Leave", ids(NET, EP1))
    for endpoint_id in (EP1, EP2):
        wire.ok("NetworkDriver.DeleteEndpoint", ids(NET, endpoint_id))
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    wire.ok("NetworkDriver.FreeNetwork", {"NetworkID": ALLOCATED})
    wire.ok(
        "NetworkDriver.DiscoverDelete",
        {"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.1"}},
    )


def test_leaks_name_their_call_across_a_reload(short_dir: Path) -> None:
    """A record loaded back keeps the number of the call that made it, in the journal of
    its own run: the new journal is never consulted for it (it would name another call)."""
    fake = FakeNetDriver()
    wire = Wire(fake)
    wire.ok("Plugin.Activate")
    wire.ok("NetworkDriver.GetCapabilities")
    wire.network()  # call #2
    path = short_dir / "state.json"
    save(fake.state, str(path))

    again = FakeNetDriver()
    again.restore(load(str(path)))
    assert again.state.run == 1
    Wire(again).ok("Plugin.Activate")  # the new journal: #0 Activate, #1 GetCapabilities, ...
    Wire(again).ok("NetworkDriver.GetCapabilities")
    Wire(again).ok("NetworkDriver.GetCapabilities")
    Wire(again).endpoint()  # call #3 of run 1
    assert again.leaks() == [
        f"network {NET} (call #2 NetworkDriver.CreateNetwork, in run 0 of the state, "
        "before it was reloaded)",
        f"endpoint {EP} in network {NET} (call #3 NetworkDriver.CreateEndpoint)",
    ]
    save(again.state, str(path))
    third = FakeNetDriver()
    third.restore(load(str(path)))
    assert [leak.split(" (")[1] for leak in third.leaks()] == [
        "call #2 NetworkDriver.CreateNetwork, in run 0 of the state, before it was reloaded)",
        "call #3 NetworkDriver.CreateEndpoint, in run 1 of the state, before it was reloaded)",
    ]


def test_a_journal_that_disagrees_is_not_trusted_for_provenance() -> None:
    """A state handed to another fake in-process (no reload): the index would name a call
    of another method in that fake's journal, so the audit does not resolve it there."""
    fake = FakeNetDriver()
    Wire(fake).network()
    other = FakeNetDriver()
    Wire(other).ok("Plugin.Activate")
    other.restore(fake.state)
    assert other.leaks() == [
        f"network {NET} (call #0 NetworkDriver.CreateNetwork, in run 0 of the state, "
        "before it was reloaded)"
    ]


def test_a_file_from_before_runs_and_link_intents_loads(short_dir: Path) -> None:
    """Files written by earlier versions have no ``run`` fields and no ``links``: records
    load as run 0, and the links are those the saved joins name."""
    fake = FakeNetDriver()
    wire = Wire(fake)
    wire.network()
    wire.endpoint(EP1, "10.0.0.2/24")
    wire.endpoint(EP2, "10.0.0.3/24")
    wire.join(EP1)
    old = fake.state.snapshot()
    old["endpoints"][EP1]["join"]["answer"]["InterfaceName"]["SrcName"] = "fdv0123456789ab"
    del old["run"], old["links"]
    for record in (old["networks"][NET], old["endpoints"][EP1], old["endpoints"][EP2]):
        del record["run"]
    del old["endpoints"][EP1]["join"]["run"]
    path = short_dir / "state.json"
    path.write_text(json.dumps(old))
    loaded = load(str(path))
    assert (loaded.run, loaded.links) == (1, {EP1})
    assert loaded.networks[NET].run == loaded.endpoints[EP1].join.run == 0


# -- missing and corrupt files ---------------------------------------------------------------
def test_a_missing_file_is_an_empty_state(short_dir: Path) -> None:
    assert load(str(short_dir / "nothing.json")).snapshot() == State().snapshot()


def _valid() -> dict[str, Any]:
    return State().snapshot()


CORRUPT = {
    "not JSON": "{not json",
    "truncated": json.dumps(_valid())[:-7],
    "empty file": "",
    "a list": "[]",
    "null": "null",
    "an empty object": "{}",
    "no epoch": json.dumps({k: v for k, v in _valid().items() if k != "epoch"}),
    "networks is a list": json.dumps({**_valid(), "networks": []}),
    "epoch is text": json.dumps({**_valid(), "epoch": "two"}),
    "endpoint of an unknown network": json.dumps(
        {
            **_valid(),
            "endpoints": {
                EP1: {
                    "network_id": "gone",
                    "address": "",
                    "address_v6": "",
                    "mac": "",
                    "mac_assigned": False,
                    "options": {},
                    "call": 0,
                    "join": None,
                    "connectivity": None,
                }
            },
        }
    ),
    "pool that is no CIDR": json.dumps(
        {
            **_valid(),
            "pools": {
                "p": {
                    "address_space": "LocalDefault",
                    "pool": "ten-dot-something",
                    "sub_pool": "",
                    "options": {},
                    "call": 0,
                    "epoch": 0,
                    "leases": {},
                }
            },
        }
    ),
    "violations is text": json.dumps({**_valid(), "violations": "oops"}),
    "links is text": json.dumps({**_valid(), "links": "e1e1"}),
    "run is text": json.dumps({**_valid(), "run": "one"}),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_file_raises_naming_the_file(short_dir: Path, content: str) -> None:
    path = short_dir / "state.json"
    path.write_text(content)
    with pytest.raises(StateFileError, match=f"cannot load state file {path}"):
        load(str(path))


# -- atomic writes ---------------------------------------------------------------------------
def test_saving_leaves_no_temporary_file(short_dir: Path) -> None:
    fake = FakeNetDriver()
    wire = Wire(fake)
    path = short_dir / "state.json"
    for nid in ("n1", "n2", "n3"):
        wire.network(nid)
        save(fake.state, str(path))
    assert os.listdir(short_dir) == ["state.json"]
    assert sorted(json.loads(path.read_text())["networks"]) == ["n1", "n2", "n3"]


def test_a_failed_serialization_keeps_the_old_file(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeNetDriver()
    Wire(fake).network()
    path = short_dir / "state.json"
    save(fake.state, str(path))
    before = path.read_bytes()
    Wire(fake).network("n2")

    def boom(*args: object, **kwargs: object) -> str:
        raise TypeError("cannot serialize")

    monkeypatch.setattr(json, "dumps", boom)
    with pytest.raises(TypeError, match="cannot serialize"):
        save(fake.state, str(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(short_dir) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary_file(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeNetDriver()
    Wire(fake).network()
    path = short_dir / "state.json"
    save(fake.state, str(path))
    before = path.read_bytes()
    Wire(fake).network("n2")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        save(fake.state, str(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(short_dir) == ["state.json"]


# -- the CLI ---------------------------------------------------------------------------------
def test_serve_with_a_corrupt_state_file_exits_2_naming_it(
    serve: Launcher, short_dir: Path
) -> None:
    state = short_dir / "state.json"
    state.write_text('{"networks": ')
    sock = short_dir / "x.sock"
    served = serve("--socket", str(sock), "--state", str(state))
    assert served.wait() == 2
    lines = served.lines()
    assert len(lines) == 1 and "Traceback" not in served.text(), served.text()
    assert lines[0].startswith(f"fakedriver: cannot load state file {state}: ")
    assert not sock.exists()
    assert state.read_text() == '{"networks": '  # not overwritten


def test_serve_with_a_state_file_in_a_missing_directory(serve: Launcher, short_dir: Path) -> None:
    """Either refuse at start (exit 2, naming the file) or create the directory: never
    accept calls it cannot persist."""
    state = short_dir / "no" / "such" / "state.json"
    sock = str(short_dir / "x.sock")
    served = serve("--socket", sock, "--state", str(state))
    deadline = time.monotonic() + 10
    while BANNER not in served.text():
        assert time.monotonic() < deadline, served.text()
        if served.proc.poll() is not None:  # refused at start: fine, if it says why
            assert served.proc.returncode == 2, served.text()
            assert str(state) in served.text()
            return
        time.sleep(0.02)
    with Conn(sock) as conn:
        response = conn.send("NetworkDriver.CreateNetwork", create_network(NET))
    assert (response.status, response.body) == (200, b"{}\n"), (
        "CreateNetwork was applied but could not be persisted, and answered: "
        f"{response.status} {response.headers.get('content-type')} {response.body[:40]!r}..."
    )
    assert NET in json.loads(state.read_text())["networks"]


@pytest.mark.socket
def test_kill_9_and_restart_loses_nothing(serve: Launcher, short_dir: Path) -> None:
    state = short_dir / "state.json"
    sock = str(short_dir / "x.sock")
    args = ("--socket", sock, "--state", str(state), "--quiet")
    first = serve(*args).wait_ready()
    client = Dockerd(sock)
    client.ok("Plugin.Activate")
    pool = client.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "Options": {}, "V6": False},
    )
    pid = pool["PoolID"]

    def address(wanted: str = "", options: Any = None) -> str:
        answer = client.ok(
            "IpamDriver.RequestAddress", {"PoolID": pid, "Address": wanted, "Options": options}
        )
        return str(answer["Address"])

    gateway = address(options=GATEWAY)
    assert gateway == "10.200.0.1/24"
    client.ok("NetworkDriver.CreateNetwork", create_network(NET, pool["Pool"], gateway))
    mine = address()
    assert mine == "10.200.0.2/24"
    endpoint = {"Address": mine, "AddressIPv6": "", "MacAddress": ""}
    mac = client.ok(
        "NetworkDriver.CreateEndpoint", {**ids(NET, EP1), "Interface": endpoint, "Options": {}}
    )["Interface"]["MacAddress"]
    key = "/var/run/docker/netns/5364ee04234e"
    client.ok("NetworkDriver.Join", {**ids(NET, EP1), "SandboxKey": key, "Options": {}})
    client.ok("NetworkDriver.ProgramExternalConnectivity", {**ids(NET, EP1), "Options": {}})
    assert [address(), address()] == ["10.200.0.3/24", "10.200.0.4/24"]
    client.ok("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.200.0.3"})
    client.close()

    first.proc.kill()  # SIGKILL right after the last answer: no chance to save at exit
    assert first.wait() == -9
    assert os.path.lexists(sock)  # a stale socket is left behind

    second = serve(*args).wait_ready()
    client = Dockerd(sock)
    client.ok("Plugin.Activate")
    assert client.refused("NetworkDriver.DeleteNetwork", {"NetworkID": NET}) == (
        f"network {NET} has active endpoints: {EP1}"
    )
    assert client.refused("NetworkDriver.CreateNetwork", create_network(NET)) == (
        f"network {NET} already exists"
    )
    assert (
        client.refused("NetworkDriver.Join", {**ids(NET, EP1), "SandboxKey": "/x", "Options": {}})
        == f"endpoint {EP1} is already joined to sandbox {key}"
    )
    assert client.ok("NetworkDriver.EndpointOperInfo", ids(NET, EP1)) == {
        "Value": {
            "Address": mine,
            "AddressIPv6": "",
            "MacAddress": mac,
            "SandboxKey": key,
            "ExternalConnectivity": True,
            "Proxy6To4": True,  # IPv4 only, and no no_proxy_6to4 came (a daemon before 28)
        }
    }
    for held in ("10.200.0.1", "10.200.0.2", "10.200.0.4"):
        assert (
            client.refused(
                "IpamDriver.RequestAddress", {"PoolID": pid, "Address": held, "Options": None}
            )
            == f"address {held} is already allocated in pool {pid}"
        )
    assert address() == "10.200.0.3/24"  # the released one, lowest free
    assert address() == "10.200.0.5/24"
    client.close()
    assert second.stop() == 0
    assert sorted(os.listdir(short_dir)) == sorted(
        ["state.json", *(p.name for p in short_dir.glob("serve*.log"))]
    )  # a clean stop leaves the database alone: no -wal, no temporaries
    assert peek_state(str(state)).snapshot()["epoch"] == 2
