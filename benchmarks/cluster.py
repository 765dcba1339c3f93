"""What a cluster of fakes costs, against one fake, measured in the same run.

    python benchmarks/cluster.py

1. Fixture cost: setup + teardown of ``fake_netdriver_cluster`` (3 and 10 nodes) against
   ``fake_netdriver``, 300 tests of each, interleaved, in one pytest session; once with
   every installed client routed, once with ``fake_netdriver_clients = requests``.
2. Per-call cost: CreateEndpoint then DeleteEndpoint of 2,000 endpoints on one fake
   against node-1 of a 3-node cluster whose other nodes hold 5,000 endpoints each on the
   same network (the timeline and the checks between nodes); 7 pairs, order alternating,
   a warm-up pair first; the median of the pairs' ratios.
3. A cluster of 1,000 nodes: built, routed and torn down (the median of 5, every installed
   client routed); a call to its last node against a call to a single fake, each routed
   (requests, CreateEndpoint then DeleteEndpoint), 7 rounds, interleaved.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from fakedriver import Cluster, FakeNetDriver, Route

TESTS = '''
import pytest

def _single(fake_netdriver):
    pass

def _cluster3(fake_netdriver_cluster):
    pass

@pytest.mark.fake_netdriver_cluster(nodes=10)
def _cluster10(fake_netdriver_cluster):
    pass

for i in range(300):  # interleaved: one of each kind, 300 times
    globals()[f"test_{i:03d}_single"] = _single
    globals()[f"test_{i:03d}_cluster3"] = _cluster3
    globals()[f"test_{i:03d}_cluster10"] = _cluster10
'''


class Timer:
    """Adds up each test's setup and teardown time, by kind."""

    def __init__(self) -> None:
        self.cost: dict[str, dict[str, float]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when in ("setup", "teardown"):
            per = self.cost.setdefault(report.nodeid.rsplit("_", 1)[-1], {})
            per[report.nodeid] = per.get(report.nodeid, 0.0) + report.duration


def fixture_cost(name: str, *args: str) -> None:
    with tempfile.TemporaryDirectory() as folder:  # a module name per run: one process
        (Path(folder) / f"test_cost_{name}.py").write_text(TESTS)
        timer = Timer()
        pytest.main(["-q", "-p", "no:cacheprovider", folder, *args], plugins=[timer])
    base = statistics.median(timer.cost["single"].values())
    for kind, per in timer.cost.items():
        median = statistics.median(per.values())
        print(f"  {kind:10} median {median * 1e3:6.2f} ms a test  ({median / base:.2f}x single)")


NET = {"NetworkID": "net", "IPv4Data": [{"Pool": "10.0.0.0/8", "Gateway": "10.0.0.1/8"}]}


def endpoints(count: int, base: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(count):
        value = base + i + 2
        ip = f"10.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}/8"
        ids: dict[str, Any] = {"NetworkID": "net", "EndpointID": f"e{base}-{i}"}
        create = {**ids, "Interface": {"Address": ip, "AddressIPv6": "", "MacAddress": ""}}
        out.append((json.dumps(create).encode(), json.dumps(ids).encode()))
    return out


def per_call(rounds: int = 7) -> float:
    """A call to node-1 of a 3-node cluster against a call to one fake: the median of
    ``rounds`` back-to-back pairs, each pair's ratio (as `thousand()`)."""
    todo = endpoints(2000, 0)

    def drive(fake: FakeNetDriver) -> float:
        # A full collection walks every object of the process (both fakes, the cluster,
        # their journals): where one falls is chance, and it costs a run 20 to 40 us a
        # call. Each run starts from none pending, so it pays its own collections only.
        gc.collect()
        start = time.perf_counter()
        for create, _ in todo:
            fake.handle("/NetworkDriver.CreateEndpoint", create)
        for _, delete in todo:
            fake.handle("/NetworkDriver.DeleteEndpoint", delete)
        return (time.perf_counter() - start) / (2 * len(todo)) * 1e6

    single, cluster = FakeNetDriver(), Cluster(3, scope="local")
    for number, fake in enumerate([single, *cluster.nodes.values()]):
        fake.handle("/NetworkDriver.CreateNetwork", json.dumps(NET).encode())
        for create, _ in endpoints(5000, number * 1_000_000) if number > 1 else ():
            fake.handle("/NetworkDriver.CreateEndpoint", create)
    node = cluster["node-1"]
    one, many, ratios = [], [], []
    for rep in range(rounds + 1):  # the order alternates; the first pair warms up
        if rep % 2:
            a, b = drive(single), drive(node)
        else:
            b, a = drive(node), drive(single)
        if rep:
            one.append(a)
            many.append(b)
            ratios.append(b / a)
    a, b, ratio = statistics.median(one), statistics.median(many), statistics.median(ratios)
    print(f"  one fake {a:.1f} us a call; a cluster's node {b:.1f} us ({ratio:.2f}x)")
    assert not cluster.violations, cluster.violations
    return ratio


def thousand(rounds: int = 7, calls: int = 300) -> tuple[float, float]:
    """Seconds to build, route and tear down a 1,000-node cluster (median of 5), and a
    routed call to its node-1000 / to a single routed fake (median of ``rounds`` pairs)."""
    import requests

    Cluster(2).close()  # the client libraries' modules are imported once, not timed
    builds = []
    for _ in range(5):
        start = time.perf_counter()
        with Cluster(1000):
            pass
        builds.append(time.perf_counter() - start)
    todo = endpoints(calls, 0)
    post = requests.Session().post

    def drive(url: str) -> float:
        start = time.perf_counter()
        for create, _ in todo:
            post(f"{url}/NetworkDriver.CreateEndpoint", data=create)
        for _, delete in todo:
            post(f"{url}/NetworkDriver.DeleteEndpoint", data=delete)
        return (time.perf_counter() - start) / (2 * len(todo))

    ratios = []
    single = FakeNetDriver()
    with Cluster(1000, scope="local") as cluster, Route(single, "http://single"):
        last = cluster.urls["node-1000"]
        for url in (last, "http://single"):
            post(f"{url}/NetworkDriver.CreateNetwork", data=json.dumps(NET).encode())
        for rep in range(rounds + 1):
            if rep % 2:
                b, s = drive("http://single"), drive(last)
            else:
                s, b = drive(last), drive("http://single")
            if rep:  # the first pair warms up
                ratios.append(s / b)
        assert not cluster.violations, cluster.violations
    return statistics.median(builds), statistics.median(ratios)


if __name__ == "__main__":
    print("1. fixture cost, every installed client routed")
    fixture_cost("all")
    print("1. fixture cost, requests only")
    fixture_cost("requests", "-o", "fake_netdriver_clients=requests")
    print("2. per-call cost")
    per_call()
    print("3. a cluster of 1,000 nodes")
    build, ratio = thousand()
    print(f"  built, routed and torn down in {build:.3f} s; a call to node-1000 {ratio:.2f}x")
    sys.exit(0)
