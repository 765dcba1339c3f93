"""A cluster at the scale orchestrators run: 1,000 nodes, each call found by its host
(one dict lookup), under one patch of each client library, not one per node."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from fakedriver import Cluster
from fakedriver.transports import for_requests
from fakedriver.transports.route import BaseRoute

NODES = 1000


def test_a_thousand_node_cluster_routes_each_call_by_its_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routes = for_requests.ROUTES
    starts: list[int] = []
    patch = routes._patch

    def counted_patch() -> Any:
        starts.append(1)
        return patch()

    monkeypatch.setattr(routes, "_patch", counted_patch)
    tried: list[str] = []
    method_of = BaseRoute.method_of

    def counted_method_of(self: BaseRoute[Any], url: str) -> str | None:
        tried.append(self.url)
        return method_of(self, url)

    monkeypatch.setattr(BaseRoute, "method_of", counted_method_of)
    cluster = Cluster(NODES, clients=["requests"])
    with cluster:
        for name in ("node-1", "node-500", f"node-{NODES}"):
            tried.clear()
            answer = requests.post(f"{cluster.urls[name]}/Plugin.Activate", timeout=5)
            assert answer.json()["Implements"]
            assert set(tried) == {cluster.urls[name]}  # its own route only, no other tried
        requests.post(f"{cluster.urls['node-2']}/NetworkDriver.GetCapabilities", timeout=5)
    assert len(starts) <= 1  # one patch for 1,000 routes (none if it was kept started)
    assert cluster.calls.methods == [
        ("node-1", "Plugin.Activate"),
        ("node-500", "Plugin.Activate"),
        (f"node-{NODES}", "Plugin.Activate"),
        ("node-2", "NetworkDriver.GetCapabilities"),
    ]
    assert not routes.started or routes.find(cluster.urls["node-1"] + "/x") is None


def test_a_route_finds_the_method_in_any_case_and_before_a_query() -> None:
    cluster = Cluster(2, clients=[])
    route = cluster._routes[1]
    assert route.method_of("HTTP://Node-2.Fake-Netdriver/Plugin.Activate?x=1#y") == (
        "Plugin.Activate"
    )
    assert route.method_of("http://node-2.fake-netdriver/NetworkDriver.Join/more") == (
        "NetworkDriver.Join"
    )
    assert route.method_of("http://node-2.fake-netdriver/") == ""
    assert route.method_of("http://node-2.fake-netdriver") is None
    assert route.method_of("http://node-2.fake-netdriver.other/Plugin.Activate") is None
    assert route.method_of("http://node-1.fake-netdriver/Plugin.Activate") is None
