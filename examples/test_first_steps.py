"""The first test of the README tutorial: a client that speaks the protocol with requests."""

import requests


def test_requesting_a_pool(fake_netdriver):
    answer = requests.post(
        f"{fake_netdriver.url}/IpamDriver.RequestPool",  # http://fake-netdriver/...
        json={"AddressSpace": "LocalDefault", "Pool": "", "SubPool": "", "V6": False},
    ).json()
    assert answer["Pool"] == "10.200.0.0/24"  # the persona's first default pool
    assert answer["PoolID"] in fake_netdriver.state.pools
    fake_netdriver.calls.assert_called("RequestPool", times=1, AddressSpace="LocalDefault")
