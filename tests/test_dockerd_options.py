"""dockerd 28's options under a real dockerd 28: an IPv6-only network
(``enable_ipv4: false``), ``no_proxy_6to4`` as a container's gateways come and go, and
GwAllocCheck's skip answers, each seen through the fake's journal and in the container.

A daemon older than the option (``dockerd_versions``) has none of this: there the tests
skip, loudly, naming its version. The IPv6-only network is made through the Engine API
(``EnableIPv4``, API 1.48), so that no docker CLI of 28 is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.dockerd_env import IMAGE, Dockerd, Plugin, run_name, unix_call
from support.dockerd_versions import Expect

pytestmark = pytest.mark.dockerd

NAME = run_name("fdo")
ENABLE_IPV4 = "com.docker.network.enable_ipv4"
NO_PROXY = "com.docker.network.driver.private.no_proxy_6to4"
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
Call = dict[str, Any]


@pytest.fixture(scope="module")
def plugin(dockerd: Dockerd) -> Iterator[Plugin]:
    served = Plugin(NAME, dockerd.base, "--links", "veth")
    served.start()
    yield served
    served.stop()


def needs(does: Expect, has: bool, what: str) -> None:
    if not has:
        pytest.skip(f"SKIPPED LOUDLY: {does.name} has no {what} (from dockerd 28.0)")


def ipv6_only(dockerd: Dockerd, name: str, driver: str) -> None:
    """``docker network create --ipv4=false --ipv6 -d DRIVER --ipam-driver DRIVER NAME``."""
    body = {"Name": name, "Driver": driver, "EnableIPv4": False, "EnableIPv6": True,
            "IPAM": {"Driver": driver}}  # fmt: skip
    status, answer = unix_call(dockerd.sock, "POST", "/networks/create", body)
    assert status == 201, answer


def named(calls: list[Call], method: str) -> list[Call]:
    return [call for call in calls if call["method"].endswith(f".{method}")]


def routes(dockerd: Dockerd, container: str) -> tuple[str, str, str]:
    """The container's addresses, IPv4 routes and IPv6 routes."""
    out = [
        dockerd.docker("exec", container, *argv).stdout
        for argv in (("ip", "-o", "addr"), ("ip", "route"), ("ip", "-6", "route"))
    ]
    return out[0], out[1], out[2]


def test_an_ipv6_only_network(dockerd: Dockerd, plugin: Plugin, dockerd_does: Expect) -> None:
    """No IPv4 pool asked, CreateNetwork with ``enable_ipv4: false`` and no IPv4Data, an
    endpoint with no IPv4 address, Join answering the IPv6 gateway only: the container
    has an IPv6 address and default route, and no IPv4 but loopback."""
    needs(dockerd_does, dockerd_does.enable_ipv4, f"{ENABLE_IPV4} (EnableIPv4)")
    net, ctr = run_name("fdo6-"), run_name("fdo6c")
    mark = len(plugin.calls())
    ipv6_only(dockerd, net, NAME)
    try:
        dockerd.docker("run", "-d", "--name", ctr, "--network", net, IMAGE, "sleep", "600")
        addresses, v4_routes, v6_routes = routes(dockerd, ctr)
        calls = plugin.calls()[mark:]
        assert [c["error"] for c in calls if c["error"]] == []
        assert [c["request"]["V6"] for c in named(calls, "RequestPool")] == [True]
        (create,) = named(calls, "CreateNetwork")
        assert create["request"]["Options"][ENABLE_IPV4] is False
        assert create["request"]["IPv4Data"] == []
        (endpoint,) = named(calls, "CreateEndpoint")
        assert endpoint["request"]["Interface"]["Address"] == ""
        v6 = endpoint["request"]["Interface"]["AddressIPv6"]
        (join,) = named(calls, "Join")
        assert "Gateway" not in join["response"], join["response"]
        gateway = join["response"]["GatewayIPv6"]
        assert f"inet6 {v6}" in addresses
        ipv4 = [line for line in addresses.splitlines() if " inet " in line]
        assert [line.split()[1] for line in ipv4] == ["lo"], addresses
        assert v4_routes.strip() == "" and f"default via {gateway}" in v6_routes
    finally:
        dockerd.docker("rm", "-f", ctr, check=False)
        dockerd.docker("network", "rm", net, check=False)


def _proxied(calls: list[Call], eid: str) -> bool:
    """The fake's last EndpointOperInfo answer for ``eid``: whether it would proxy 6to4."""
    answers = [c["response"]["Value"] for c in named(calls, "EndpointOperInfo")
               if c["request"]["EndpointID"] == eid]  # fmt: skip
    return bool(answers[-1]["Proxy6To4"])


def _programmed(calls: list[Call], eid: str) -> list[bool]:
    return [c["request"]["Options"][NO_PROXY] for c in named(calls, "ProgramExternalConnectivity")
            if c["request"]["EndpointID"] == eid]  # fmt: skip


def test_no_proxy_6to4_follows_the_containers_ipv6_gateway(
    dockerd: Dockerd, plugin: Plugin, dockerd_does: Expect
) -> None:
    """A container's IPv4-only gateway endpoint is programmed with ``no_proxy_6to4:
    false`` (the fake would proxy the host's IPv6 ports to it); once an IPv6-only network
    is connected, dockerd programs it again with ``true`` (no proxy: another endpoint is
    the IPv6 gateway), and with ``false`` when that network is disconnected."""
    needs(dockerd_does, dockerd_does.no_proxy_6to4, NO_PROXY)
    v4net, v6net, ctr = run_name("fdo4-"), run_name("fdo64-"), run_name("fdopc")
    dockerd.docker("network", "create", "-d", NAME, "--ipam-driver", NAME, v4net)
    ipv6_only(dockerd, v6net, NAME)
    try:
        mark = len(plugin.calls())
        dockerd.docker("run", "-d", "--name", ctr, "--network", v4net, IMAGE, "sleep", "600")
        (v4,) = [c["request"]["EndpointID"] for c in named(plugin.calls()[mark:], "Join")]
        assert _programmed(plugin.calls()[mark:], v4) == [False]
        assert _proxied(plugin.calls(), v4)
        mark = len(plugin.calls())
        dockerd.docker("network", "connect", v6net, ctr)
        calls = plugin.calls()[mark:]
        (v6,) = [c["request"]["EndpointID"] for c in named(calls, "Join")]
        assert _programmed(calls, v4) == [True] and _programmed(calls, v6) == [True]
        assert not _proxied(plugin.calls(), v4)
        mark = len(plugin.calls())
        dockerd.docker("network", "disconnect", v6net, ctr)
        assert _programmed(plugin.calls()[mark:], v4) == [False]
        assert _proxied(plugin.calls(), v4)
        assert [c["error"] for c in plugin.calls() if c["error"]] == []
    finally:
        dockerd.docker("rm", "-f", ctr, check=False)
        dockerd.docker("network", "rm", v4net, v6net, check=False)


@pytest.mark.parametrize("skipped", [4, 6], ids=["skip-ipv4", "skip-ipv6"])
def test_gw_alloc_check_leaves_out_the_skipped_gateway(
    dockerd: Dockerd, dockerd_does: Expect, skipped: int
) -> None:
    """A persona that skips one family's gateway: GwAllocCheck comes first, with the
    Options CreateNetwork then carries; no gateway address is asked for that family, its
    IPAM data has none, Join answers none, and the container has no default route of that
    family (the other family's gateway is its way out, so no docker_gwbridge)."""
    needs(dockerd_does, dockerd_does.gw_alloc_check, "GwAllocCheck")
    name, net, ctr = run_name(f"fdg{skipped}-"), run_name(f"fdg{skipped}n"), run_name("fdgc")
    checker = Plugin(name, dockerd.base, "--links", "veth", "--gw-alloc-checker",
                     f"--skip-ipv{skipped}")  # fmt: skip
    checker.start()
    try:
        dockerd.docker("network", "create", "-d", name, "--ipam-driver", name, "--ipv6", net)
        dockerd.docker("run", "-d", "--name", ctr, "--network", net, IMAGE, "sleep", "600")
        _, v4_routes, v6_routes = routes(dockerd, ctr)
        calls = [c for c in checker.calls() if not c["method"].endswith("Capabilities")]
        assert [c["error"] for c in calls if c["error"]] == []
        assert calls[1]["method"] == "NetworkDriver.GwAllocCheck", calls[1]  # after Activate
        (check,) = named(calls, "GwAllocCheck")
        (create,) = named(calls, "CreateNetwork")
        assert check["request"]["Options"] == create["request"]["Options"]
        assert check["response"] == {"SkipIPv4": skipped == 4, "SkipIPv6": skipped == 6}
        gateways = [c for c in named(calls, "RequestAddress") if c["request"]["Options"]]
        assert [c["request"]["Options"] for c in gateways] == [GATEWAY]
        data = {4: create["request"]["IPv4Data"][0], 6: create["request"]["IPv6Data"][0]}
        assert "Gateway" not in data[skipped] and "Gateway" in data[10 - skipped]
        (join,) = named(calls, "Join")
        assert ("Gateway" in join["response"], "GatewayIPv6" in join["response"]) == (
            skipped == 6, skipped == 4,
        )  # fmt: skip
        default = {4: "default via" in v4_routes, 6: "default via" in v6_routes}
        assert default == {skipped: False, 10 - skipped: True}, (v4_routes, v6_routes)
    finally:
        dockerd.docker("rm", "-f", ctr, check=False)
        dockerd.docker("network", "rm", net, check=False)
        checker.stop()
