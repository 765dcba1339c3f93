"""The README's example, and the first test of the tutorial (docs/tutorial.md): a client
that speaks the protocol with requests."""

import requests

NETWORK = {
    "NetworkID": "n1",
    "Options": {},
    "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24"}],
}


def test_a_busy_plugin_recovers(fake_netdriver):
    fake_netdriver.fail("CreateNetwork", status=503, message="busy", times=1)
    create = f"{fake_netdriver.url}/NetworkDriver.CreateNetwork"

    busy = requests.post(create, json=NETWORK)
    assert (busy.status_code, busy.json()) == (503, {"Err": "busy"})
    assert requests.post(create, json=NETWORK).json() == {}  # it recovered
    assert "n1" in fake_netdriver.state.networks
    fake_netdriver.calls.assert_called("CreateNetwork", times=2)


def test_requesting_a_pool(fake_netdriver):
    answer = requests.post(
        f"{fake_netdriver.url}/IpamDriver.RequestPool",  # http://fake-netdriver/...
        json={"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "V6": False},
    ).json()
    assert answer["Pool"] == "10.200.0.0/24"  # the persona's first default pool
    assert answer["PoolID"] in fake_netdriver.state.pools
    fake_netdriver.calls.assert_called("RequestPool", times=1, AddressSpace="LocalDefault")
