"""Testing ``orchestrator.py`` against fakedriver's ``fake_netdriver`` fixture.

The fixture routes every ``requests`` call to ``fake_netdriver.url`` to an in-process fake
plugin, so the orchestrator runs unchanged: real ``requests`` calls, real JSON, no daemon.
``fake_netdriver.fail(...)`` makes chosen calls fail, the way a flaky plugin would, and
``@pytest.mark.fake_netdriver(faults="faults/....toml")`` loads a whole fault scenario.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import requests
from orchestrator import NetworkInUse, Orchestrator, PluginError, PluginUnavailable

from fakedriver import FakeNetDriver

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


@pytest.fixture
def sleeps() -> list[float]:
    """The delays the orchestrator waited between retries (it never really sleeps)."""
    return []


@pytest.fixture
def orchestrator(fake_netdriver: FakeNetDriver, sleeps: list[float]) -> Iterator[Orchestrator]:
    ids = (f"{n:02x}" * 32 for n in itertools.count(1))  # 0101…, 0202…: readable 64-hex ids

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        fake_netdriver.clock.sleep(seconds)  # virtual time: it passes, nothing waits

    with requests.Session() as session:
        yield Orchestrator(session, fake_netdriver.url, sleep=sleep, new_id=lambda: next(ids))


# -- the happy path -------------------------------------------------------------------------
def test_activation_checks_the_handshake(orchestrator, fake_netdriver):
    assert orchestrator.activate() == "local"
    fake_netdriver.calls.assert_sequence("Plugin.Activate", "NetworkDriver.GetCapabilities")


@pytest.mark.fake_netdriver(ipam=False)
def test_a_plugin_without_ipam_is_refused(orchestrator):
    with pytest.raises(PluginError, match="does not implement IpamDriver"):
        orchestrator.activate()


def test_create_network_allocates_from_the_plugins_ipam(orchestrator, fake_netdriver):
    net = orchestrator.create_network("backend")

    assert (net.subnet, net.gateway) == ("10.200.0.0/24", "10.200.0.1/24")
    assert fake_netdriver.state.addresses == {net.pool_id: ["10.200.0.1/24"]}
    ipv4 = fake_netdriver.state.networks[net.id].ipv4_data[0]
    assert (str(ipv4.pool), str(ipv4.gateway)) == ("10.200.0.0/24", "10.200.0.1/24")
    fake_netdriver.calls.assert_sequence(
        "IpamDriver.GetDefaultAddressSpaces",
        ("RequestPool", {"AddressSpace": "LocalDefault", "Pool": ""}),
        ("RequestAddress", {"PoolID": net.pool_id, "Options": GATEWAY}),
        ("CreateNetwork", {"NetworkID": net.id, "IPv4Data": [
            {"AddressSpace": "LocalDefault", "Pool": "10.200.0.0/24", "Gateway": "10.200.0.1/24"}
        ]}),
    )


def test_a_global_driver_gets_pools_in_the_global_space(fake_netdriver_factory):
    overlay = fake_netdriver_factory(scope="global", url="http://overlay")
    with requests.Session() as session:
        net = Orchestrator(session, overlay.url).create_network("mesh", subnet="10.9.0.0/16")

    assert net.pool_id == "GlobalDefault/10.9.0.0/16"
    overlay.calls.assert_called("RequestPool", AddressSpace="GlobalDefault", Pool="10.9.0.0/16")


def test_attach_and_detach(orchestrator, fake_netdriver):
    net = orchestrator.create_network("backend")
    web = orchestrator.attach("web", net)

    endpoint = fake_netdriver.state.endpoints[web.endpoint_id]
    assert str(endpoint.address) == web.address == "10.200.0.2/24"
    assert endpoint.join.sandbox_key == web.sandbox_key == "/var/run/docker/netns/web"
    assert web.gateway == "10.200.0.1" and endpoint.connectivity is not None
    assert web.mac_address == endpoint.mac  # the fake picked one, the orchestrator kept it

    orchestrator.detach(web)
    assert fake_netdriver.state.endpoints == {}
    assert fake_netdriver.state.addresses == {net.pool_id: ["10.200.0.1/24"]}
    ids = {"NetworkID": net.id, "EndpointID": web.endpoint_id}
    fake_netdriver.calls.assert_sequence(
        ("RevokeExternalConnectivity", ids),
        ("Leave", ids),
        ("DeleteEndpoint", ids),
        ("ReleaseAddress", {"PoolID": net.pool_id, "Address": "10.200.0.2"}),
        contiguous=True,
    )


def test_addresses_are_handed_out_lowest_first(orchestrator, fake_netdriver):
    net = orchestrator.create_network("backend", subnet="192.168.7.0/29")
    web, db = orchestrator.attach("web", net), orchestrator.attach("db", net)
    assert (web.address, db.address) == ("192.168.7.2/29", "192.168.7.3/29")

    orchestrator.detach(web)
    cache = orchestrator.attach("cache", net)
    assert cache.address == "192.168.7.2/29"  # web's address, free again
    assert fake_netdriver.calls.count_of("RequestAddress", PoolID=net.pool_id) == 4


@pytest.mark.fake_netdriver(audit=True)
def test_a_full_lifecycle_leaves_nothing_behind(orchestrator):
    net = orchestrator.create_network("backend")
    for name in ("web", "db"):
        orchestrator.detach(orchestrator.attach(name, net))
    orchestrator.delete_network(net)
    # audit=True: the fixture calls fake_netdriver.assert_clean() at teardown


def test_delete_network_refuses_while_containers_are_attached(orchestrator, fake_netdriver):
    net = orchestrator.create_network("backend")
    orchestrator.attach("web", net)

    with pytest.raises(NetworkInUse, match="web"):
        orchestrator.delete_network(net)
    fake_netdriver.calls.assert_not_called("ReleasePool")
    fake_netdriver.calls.assert_not_called("DeleteNetwork")


# -- failures: fake_netdriver.fail() injects them --------------------------------------------
def test_a_transient_500_is_retried(orchestrator, fake_netdriver, sleeps):
    net = orchestrator.create_network("backend")
    fake_netdriver.fail("Join", "busy, try again", status=500, times=1)

    web = orchestrator.attach("web", net)

    assert sleeps == [0.5]  # one retry, after the first backoff
    assert web.endpoint_id in fake_netdriver.state.joins
    first, second = fake_netdriver.calls.assert_called("Join", times=2, EndpointID=web.endpoint_id)
    assert (first.status, first.fault, second.ok) == (500, "status on NetworkDriver.Join", True)


def test_a_lost_connection_is_retried(orchestrator, fake_netdriver, sleeps):
    fake_netdriver.fail("RequestPool", kind="drop", times=1)  # requests.ConnectionError
    fake_netdriver.fail("RequestPool", status=503, times=1)

    orchestrator.create_network("backend")

    assert sleeps == [0.5, 1.0]
    assert [call.status for call in fake_netdriver.calls.of("RequestPool")] == [0, 503, 200]


def test_retries_are_bounded(orchestrator, fake_netdriver, sleeps):
    net = orchestrator.create_network("backend")
    fake_netdriver.fail("Join", "still down", status=500)  # every time

    with pytest.raises(PluginUnavailable, match="still down"):
        orchestrator.attach("web", net)

    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    fake_netdriver.calls.assert_called("Join", times=5)
    orchestrator.delete_network(net)
    fake_netdriver.assert_clean()  # the endpoint and its address were rolled back


def test_a_refused_join_is_rolled_back(orchestrator, fake_netdriver, sleeps):
    net = orchestrator.create_network("backend")
    fake_netdriver.fail("Join", "no such netns")  # HTTP 200 {"Err": "no such netns"}

    with pytest.raises(PluginError, match="no such netns") as refused:
        orchestrator.attach("web", net)

    assert refused.value.method == "NetworkDriver.Join" and sleeps == []  # not retried
    fake_netdriver.calls.assert_sequence(
        "CreateEndpoint", "Join", "DeleteEndpoint", "ReleaseAddress", contiguous=True
    )
    orchestrator.delete_network(net)
    fake_netdriver.assert_clean()


def test_a_failed_program_leaves_before_deleting(orchestrator, fake_netdriver):
    net = orchestrator.create_network("backend")
    fake_netdriver.fail("ProgramExternalConnectivity", "no iptables")

    with pytest.raises(PluginError, match="no iptables"):
        orchestrator.attach("web", net)

    fake_netdriver.calls.assert_sequence(
        "ProgramExternalConnectivity", "Leave", "DeleteEndpoint",
        ("ReleaseAddress", {"Address": "10.200.0.2"}),
        contiguous=True,
    )
    assert fake_netdriver.state.endpoints == {}


def test_a_refused_network_releases_its_pool(orchestrator, fake_netdriver):
    fake_netdriver.fail("CreateNetwork", "bridge name taken")

    with pytest.raises(PluginError, match="bridge name taken"):
        orchestrator.create_network("backend")

    fake_netdriver.calls.assert_sequence(
        "RequestPool", ("RequestAddress", {"Options": GATEWAY}), "CreateNetwork",
        ("ReleaseAddress", {"Address": "10.200.0.1"}), "ReleasePool",
    )
    fake_netdriver.assert_clean()
    assert orchestrator.networks == {}


def test_the_fake_refuses_what_a_real_driver_would(fake_netdriver):
    # An id factory that repeats itself: the second endpoint collides with the first.
    ids = iter(["a" * 64, "e" * 64, "e" * 64])
    with requests.Session() as session:
        orchestrator = Orchestrator(session, fake_netdriver.url, new_id=lambda: next(ids))
        net = orchestrator.create_network("backend")
        orchestrator.attach("web", net)
        with pytest.raises(PluginError, match=f"endpoint {'e' * 64} already exists"):
            orchestrator.attach("db", net)

    fake_netdriver.calls.assert_called("ReleaseAddress", times=1, Address="10.200.0.3")
    assert fake_netdriver.state.addresses == {net.pool_id: ["10.200.0.1/24", "10.200.0.2/24"]}


# -- scenario files: faults/*.toml, loaded by the marker ------------------------------------
WEB, DB = "02" * 32, "03" * 32  # the endpoint ids of the first and second attach


@pytest.mark.fake_netdriver(faults="faults/transient.toml")
def test_transient_faults_are_retried_until_the_plugin_recovers(
    orchestrator, fake_netdriver, sleeps
):
    net = orchestrator.create_network("backend")
    web = orchestrator.attach("web", net)

    # The journal names the rule behind every faulted call (status 0: no answer at all).
    faulted = [call for call in fake_netdriver.calls if call.fault]
    assert [(call.method, call.status, call.fault) for call in faulted] == [
        ("IpamDriver.RequestAddress", 200, "slow-ipam"),  # the gateway
        ("IpamDriver.RequestAddress", 200, "slow-ipam"),  # web's address
        ("NetworkDriver.CreateEndpoint", 0, "endpoint-connection-lost"),
        ("NetworkDriver.Join", 503, "join-busy"),
        ("NetworkDriver.Join", 503, "join-busy"),
    ]
    # One retry after the lost connection, two after the 503s (the backoff doubles per call).
    assert sleeps == [0.5, 0.5, 1.0]
    # 2 x 2 s of IPAM latency + 2 s of backoff, on the fake's virtual clock: no real waiting.
    assert fake_netdriver.clock.now() == 6.0

    # Each step took effect once: one endpoint, with web's address, joined and programmed.
    assert list(fake_netdriver.state.endpoints) == [web.endpoint_id]
    endpoint = fake_netdriver.state.endpoints[web.endpoint_id]
    assert str(endpoint.address) == web.address == "10.200.0.2/24"
    assert endpoint.join.sandbox_key == web.sandbox_key and endpoint.connectivity is not None
    assert fake_netdriver.state.addresses == {net.pool_id: ["10.200.0.1/24", "10.200.0.2/24"]}

    # The plugin has recovered: the rest of the lifecycle needs no retry.
    orchestrator.detach(web)
    orchestrator.delete_network(net)
    assert sleeps == [0.5, 0.5, 1.0]
    fake_netdriver.assert_clean()


@pytest.mark.fake_netdriver(faults="faults/permanent.toml")
def test_a_permanent_failure_is_rolled_back_in_dockerds_order(orchestrator, fake_netdriver, sleeps):
    net = orchestrator.create_network("backend")
    web = orchestrator.attach("web", net)  # endpoint 0202…: the scenario lets it through

    with pytest.raises(PluginError) as refused:
        orchestrator.attach("db", net)  # endpoint 0303…: no route to host, every time

    assert type(refused.value) is PluginError  # a refusal, not PluginUnavailable
    assert str(refused.value) == "NetworkDriver.ProgramExternalConnectivity: no route to host"
    assert sleeps == []  # an Err answer is not retried
    db = {"NetworkID": net.id, "EndpointID": DB}
    fake_netdriver.calls.assert_sequence(
        ("RequestAddress", {"PoolID": net.pool_id, "Options": None}),
        ("CreateEndpoint", db),
        ("Join", db),
        ("ProgramExternalConnectivity", db),
        # the rollback, newest step first: dockerd's order
        ("Leave", db),
        ("DeleteEndpoint", db),
        ("ReleaseAddress", {"PoolID": net.pool_id, "Address": "10.200.0.3"}),
        contiguous=True,
    )
    assert [(call.method, call.fault) for call in fake_netdriver.calls if call.fault] == [
        ("NetworkDriver.ProgramExternalConnectivity", "no-route")
    ]

    # Only web is left; taking it and the network down leaves the fake clean.
    assert list(orchestrator.attachments) == [web.endpoint_id] == [WEB]
    orchestrator.detach(web)
    orchestrator.delete_network(net)
    fake_netdriver.assert_clean()
