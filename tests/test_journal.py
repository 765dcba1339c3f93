"""The journal helpers (matching, assertions, format) and the leak audit, driven in-process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import EP, NET, Wire, ids

from fakedriver import FakeNetDriver, LeakError

EP2 = "f" * 64
ONE, TWO = "/var/run/docker/netns/one", "/var/run/docker/netns/two"
POOL = "LocalDefault/10.1.0.0/24"
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


@pytest.fixture
def served() -> FakeNetDriver:
    """A fake whose journal reads:

    #0 Plugin.Activate, #1 NetworkDriver.GetCapabilities, #2 IpamDriver.GetCapabilities,
    #3 CreateNetwork, #4 CreateEndpoint EP, #5 CreateEndpoint EP2, #6 Join EP (one),
    #7 Join EP2 (two), #8 Leave EP
    """
    wire = Wire(FakeNetDriver())
    wire.ok("Plugin.Activate")
    wire.ok("NetworkDriver.GetCapabilities")
    wire.ok("IpamDriver.GetCapabilities")
    wire.network()
    wire.endpoint(EP, "10.0.0.2/24")
    wire.endpoint(EP2, "10.0.0.3/24")
    wire.join(EP, key=ONE)
    wire.join(EP2, key=TWO)
    wire.ok("NetworkDriver.Leave", ids())
    return wire.fake


# -- of / count_of / methods ---------------------------------------------------------------


def test_methods_lists_every_call_in_order(served: FakeNetDriver) -> None:
    assert served.calls.methods == [
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "IpamDriver.GetCapabilities",
        "NetworkDriver.CreateNetwork",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.Join",
        "NetworkDriver.Leave",
    ]


def test_plain_values_match_with_equality(served: FakeNetDriver) -> None:
    calls = served.calls
    assert calls.count_of("NetworkDriver.Join") == 2
    assert calls.count_of("Join", EndpointID=EP2) == 1
    assert [c.index for c in calls.of("Join", EndpointID=EP2)] == [7]
    assert calls.count_of("Join", EndpointID=EP2, SandboxKey=ONE) == 0
    assert calls.count_of("Join", NoSuchField="x") == 0
    assert calls.count_of("DeleteNetwork") == 0


def test_dicts_match_as_a_subset(served: FakeNetDriver) -> None:
    calls = served.calls
    assert calls.count_of("CreateEndpoint", Interface={"Address": "10.0.0.3/24"}) == 1
    assert calls.count_of("CreateEndpoint", Interface={"MacAddress": ""}) == 2
    assert calls.count_of("CreateEndpoint", Interface={"Address": "10.0.0.9/24"}) == 0
    assert calls.count_of("CreateEndpoint", Interface={"NoSuchKey": ""}) == 0
    nested = {"com.docker.network.generic": {}}
    assert [c.index for c in calls.of("CreateNetwork", Options=nested)] == [3]


def test_callables_match_as_predicates(served: FakeNetDriver) -> None:
    calls = served.calls
    assert [c.index for c in calls.of("Join", SandboxKey=lambda k: k.endswith("two"))] == [7]
    in_subnet = calls.of("CreateEndpoint", Interface=lambda i: i["Address"].startswith("10.0.0."))
    assert [c.index for c in in_subnet] == [4, 5]
    assert calls.count_of("Leave", EndpointID=lambda e: False) == 0


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("Join", "NetworkDriver.Join"),
        ("Activate", "Plugin.Activate"),
        ("GetDefaultAddressSpaces", "IpamDriver.GetDefaultAddressSpaces"),
        ("NetworkDriver.Join", "NetworkDriver.Join"),
        ("IpamDriver.GetCapabilities", "IpamDriver.GetCapabilities"),
    ],
)
def test_short_names_resolve(served: FakeNetDriver, short: str, full: str) -> None:
    assert served.calls.of(short) == served.calls.of(full)
    assert served.calls.count_of(short) == served.calls.methods.count(full)


def test_an_ambiguous_short_name_names_both_methods(served: FakeNetDriver) -> None:
    with pytest.raises(ValueError, match="ambiguous") as info:
        served.calls.count_of("GetCapabilities")
    assert "NetworkDriver.GetCapabilities" in str(info.value)
    assert "IpamDriver.GetCapabilities" in str(info.value)
    with pytest.raises(ValueError, match="ambiguous"):
        served.calls.assert_called("GetCapabilities")


def test_an_unknown_name_is_refused(served: FakeNetDriver) -> None:
    with pytest.raises(ValueError, match="'Joinn' is not a method of either protocol"):
        served.calls.of("Joinn")


# -- assert_called / assert_not_called -----------------------------------------------------


def test_assert_called_passes_and_returns_the_calls(served: FakeNetDriver) -> None:
    calls = served.calls
    assert [c.index for c in calls.assert_called("Join")] == [6, 7]
    assert [c.index for c in calls.assert_called("Join", times=2)] == [6, 7]
    assert [c.index for c in calls.assert_called("Join", times=1, SandboxKey=TWO)] == [7]
    assert calls.assert_called("DeleteNetwork", times=0) == []


def test_assert_called_shows_the_count_and_the_call_list(served: FakeNetDriver) -> None:
    with pytest.raises(AssertionError) as info:
        served.calls.assert_called("Join", times=1)
    message = str(info.value)
    assert "expected NetworkDriver.Join to be called 1 time(s), it was called 2 time(s)" in message
    assert "calls:\n  #0 Plugin.Activate\n  #1 NetworkDriver.GetCapabilities\n" in message
    assert "  #8 NetworkDriver.Leave" in message


def test_assert_called_shows_the_nearest_miss(served: FakeNetDriver) -> None:
    with pytest.raises(AssertionError) as info:
        served.calls.assert_called("Join", EndpointID=EP2, SandboxKey="/elsewhere")
    message = str(info.value)
    assert "to be called at least once, it was called 0 time(s)" in message
    # #7 differs in one field, #6 in two: #7 is the nearest miss.
    assert f"nearest miss: #7 NetworkDriver.Join: SandboxKey is '{TWO}', wanted '/elsewhere'" in (
        message
    )
    assert "calls:\n" in message


def test_the_nearest_miss_looks_inside_dicts(served: FakeNetDriver) -> None:
    with pytest.raises(AssertionError) as info:
        served.calls.assert_called("CreateEndpoint", Interface={"Address": "10.0.0.9/24"})
    assert (
        "nearest miss: #4 NetworkDriver.CreateEndpoint: "
        "Interface.Address is '10.0.0.2/24', wanted '10.0.0.9/24'"
    ) in str(info.value)


def test_a_method_never_called_suggests_a_close_one(served: FakeNetDriver) -> None:
    with pytest.raises(AssertionError) as info:
        served.calls.assert_called("DeleteNetwork")
    assert (
        "no call of NetworkDriver.DeleteNetwork at all; did you mean NetworkDriver.CreateNetwork?"
    ) in str(info.value)


def test_assert_not_called(served: FakeNetDriver) -> None:
    served.calls.assert_not_called("DeleteEndpoint")
    served.calls.assert_not_called("Join", SandboxKey="/elsewhere")
    with pytest.raises(AssertionError) as info:
        served.calls.assert_not_called("Join", SandboxKey=TWO)
    message = str(info.value)
    assert (
        f"expected NetworkDriver.Join with SandboxKey='{TWO}' not to be called, "
        "it was called 1 time(s): #7"
    ) in message
    assert "  #7 NetworkDriver.Join" in message


# -- assert_sequence -----------------------------------------------------------------------


def test_a_subsequence_passes(served: FakeNetDriver) -> None:
    got = served.calls.assert_sequence(
        "Activate", "CreateNetwork", ("Join", {"EndpointID": EP2}), "Leave"
    )
    assert [c.index for c in got] == [0, 3, 7, 8]


def test_a_contiguous_run_passes(served: FakeNetDriver) -> None:
    got = served.calls.assert_sequence(
        "CreateEndpoint", "CreateEndpoint", ("Join", {"SandboxKey": ONE}), contiguous=True
    )
    assert [c.index for c in got] == [4, 5, 6]
    got = served.calls.assert_sequence(("Join", {"SandboxKey": TWO}), "Leave", contiguous=True)
    assert [c.index for c in got] == [7, 8]


def test_a_sequence_out_of_order_says_where_it_stopped(served: FakeNetDriver) -> None:
    with pytest.raises(AssertionError) as info:
        served.calls.assert_sequence("CreateNetwork", "Leave", "Join")
    message = str(info.value)
    assert (
        "expected the sequence NetworkDriver.CreateNetwork -> NetworkDriver.Leave -> "
        "NetworkDriver.Join\n"
        "matched 2 step(s); then no NetworkDriver.Join after call #8\n"
    ) in message
    assert "calls:\n  #0 Plugin.Activate" in message


def test_a_sequence_step_with_fields_shows_the_nearest_miss(served: FakeNetDriver) -> None:
    with pytest.raises(AssertionError) as info:
        served.calls.assert_sequence("CreateNetwork", ("Join", {"SandboxKey": "/nope"}))
    message = str(info.value)
    assert "then no NetworkDriver.Join with SandboxKey='/nope' after call #3" in message
    assert f"nearest miss: #6 NetworkDriver.Join: SandboxKey is '{ONE}', wanted '/nope'" in message


def test_a_broken_contiguous_run_fails(served: FakeNetDriver) -> None:
    with pytest.raises(AssertionError) as info:
        served.calls.assert_sequence("Join", "Leave", "DeleteEndpoint", contiguous=True)
    message = str(info.value)
    assert "expected the contiguous sequence NetworkDriver.Join -> NetworkDriver.Leave" in message
    assert "then no NetworkDriver.DeleteEndpoint after call #8" in message


def test_a_contiguous_run_with_a_gap_fails_with_an_assertion(served: FakeNetDriver) -> None:
    # CreateNetwork (#3) and Join (#6) are in order but not adjacent: the contiguous check
    # must fail with a readable AssertionError.
    # BUG: Journal.assert_sequence raises IndexError here, because the fallback
    # subsequence match succeeds in full and ``wanted[len(best)]`` is out of range.
    with pytest.raises(AssertionError, match="contiguous sequence"):
        served.calls.assert_sequence("CreateNetwork", "Join", contiguous=True)


# -- format --------------------------------------------------------------------------------


def test_format_of_an_empty_journal() -> None:
    assert FakeNetDriver().calls.format() == "calls: (none)\n"


def test_format_marks_errors_and_violations() -> None:
    wire = Wire(FakeNetDriver(strict=False))
    wire.network()
    wire("NetworkDriver.CreateNetwork", {"NetworkID": NET})  # a tolerated duplicate
    wire.raw("NetworkDriver.Join", b"not json")  # malformed: refused in any mode
    wire("IpamDriver.RequestAddress", {"PoolID": "nope"})  # unknown pool: always refused
    lines = wire.fake.calls.format().splitlines()
    assert lines[0] == "calls:"
    assert lines[1] == f"  #0 NetworkDriver.CreateNetwork NetworkID={NET}"
    assert lines[2] == (
        f"  #1 NetworkDriver.CreateNetwork NetworkID={NET}"
        f"  ~ violation: network {NET} already exists"
    )
    assert lines[3].startswith("  #2 NetworkDriver.Join  !! 400 invalid request")
    assert lines[4] == "  #3 IpamDriver.RequestAddress PoolID=nope  !! 200 pool nope not found"
    assert len(lines) == 5


def test_format_shortens_hex_ids() -> None:
    wire = Wire(FakeNetDriver())
    hex_id = "0123456789abcdef" * 4
    wire.network(hex_id)
    assert (
        wire.fake.calls.format()
        == "calls:\n  #0 NetworkDriver.CreateNetwork NetworkID=0123456789ab\n"
    )


# -- the leak audit ------------------------------------------------------------------------


def _network(wire: Wire) -> None:
    wire.network()


def _endpoint(wire: Wire) -> None:
    wire.network()
    wire.endpoint()


def _join(wire: Wire) -> None:
    wire.network()
    wire.endpoint()
    wire.join(key=ONE)


def _allocation(wire: Wire) -> None:
    wire.ok("NetworkDriver.AllocateNetwork", {"NetworkID": NET, "Options": {}})


def _pool(wire: Wire) -> None:
    wire.ok("IpamDriver.RequestPool", {"AddressSpace": "LocalDefault", "Pool": "10.1.0.0/24"})


def _address(wire: Wire) -> None:
    _pool(wire)
    wire.ok("IpamDriver.RequestAddress", {"PoolID": POOL, "Options": GATEWAY})
    wire.ok("IpamDriver.RequestAddress", {"PoolID": POOL})


def _violation(wire: Wire) -> None:
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})


NETWORK_LEAK = f"network {NET} (call #0 NetworkDriver.CreateNetwork)"
ENDPOINT_LEAK = f"endpoint {EP} in network {NET} (call #1 NetworkDriver.CreateEndpoint)"
POOL_LEAK = f"pool {POOL} (call #0 IpamDriver.RequestPool)"


@pytest.mark.parametrize(
    ("leave", "persona", "expected"),
    [
        (_network, {}, [NETWORK_LEAK]),
        (_endpoint, {}, [NETWORK_LEAK, ENDPOINT_LEAK]),
        (
            _join,
            {},
            [
                NETWORK_LEAK,
                ENDPOINT_LEAK,
                f"join of endpoint {EP} to sandbox {ONE} (call #2 NetworkDriver.Join)",
            ],
        ),
        (
            _allocation,
            {"scope": "global"},
            [f"allocated network {NET} (call #0 NetworkDriver.AllocateNetwork)"],
        ),
        (_pool, {}, [POOL_LEAK]),
        (
            _address,
            {},
            [
                POOL_LEAK,
                f"address 10.1.0.1 (gateway) in pool {POOL} (call #1 IpamDriver.RequestAddress)",
                f"address 10.1.0.2 (address) in pool {POOL} (call #2 IpamDriver.RequestAddress)",
            ],
        ),
        (
            _violation,
            {"strict": False},
            [f"violation: call #0 NetworkDriver.DeleteNetwork: network {NET} not found"],
        ),
    ],
    ids=["network", "endpoint", "join", "allocation", "pool", "address", "violation"],
)
def test_each_kind_of_leak_is_found_with_its_origin(
    leave: Callable[[Wire], None], persona: dict[str, object], expected: list[str]
) -> None:
    wire = Wire(FakeNetDriver(**persona))
    leave(wire)
    assert wire.fake.leaks() == expected
    with pytest.raises(LeakError) as info:
        wire.fake.assert_clean()
    assert info.value.leaks == expected
    assert isinstance(info.value, AssertionError)
    assert str(info.value) == (
        f"the driver was left with {len(expected)} leak(s):\n"
        + "".join(f"  - {leak}\n" for leak in expected)
    )


def test_a_leak_names_the_call_that_made_it_not_the_first_one() -> None:
    wire = Wire(FakeNetDriver())
    wire.ok("Plugin.Activate")
    wire.network("a" * 64)
    wire.network()
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": "a" * 64})
    assert wire.fake.leaks() == [f"network {NET} (call #2 NetworkDriver.CreateNetwork)"]


def test_a_fully_torn_down_lifecycle_is_clean() -> None:
    wire = Wire(FakeNetDriver(scope="global"))
    wire.ok("Plugin.Activate")
    wire.ok("IpamDriver.RequestPool", {"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24"})
    pid = "LocalDefault/10.0.0.0/24"
    wire.ok("IpamDriver.RequestAddress", {"PoolID": pid, "Options": GATEWAY})
    wire.ok("NetworkDriver.AllocateNetwork", {"NetworkID": NET, "Options": {}})
    wire.network()
    wire.ok("IpamDriver.RequestAddress", {"PoolID": pid})
    wire.endpoint(address="10.0.0.2/24")
    wire.join()
    wire.ok("NetworkDriver.ProgramExternalConnectivity", {**ids(), "Options": {}})
    assert len(wire.fake.leaks()) == 7
    wire.ok("NetworkDriver.RevokeExternalConnectivity", ids())
    wire.ok("NetworkDriver.Leave", ids())
    wire.ok("NetworkDriver.DeleteEndpoint", ids())
    wire.ok("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.0.0.2"})
    wire.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    wire.ok("NetworkDriver.FreeNetwork", {"NetworkID": NET})
    wire.ok("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "10.0.0.1"})
    wire.ok("IpamDriver.ReleasePool", {"PoolID": pid})
    assert wire.fake.leaks() == []
    wire.fake.assert_clean()
    assert all(call.ok for call in wire.fake.calls)


def test_reset_forgets_leaks() -> None:
    fake = FakeNetDriver(strict=False)
    _violation(Wire(fake))
    assert fake.leaks()
    fake.reset()
    assert fake.leaks() == []
