"""What the routing fixtures leave behind them: between tests that route, each client
library's patch stays started and is only reset, so a thousand routed tests must leave no
record and no memory behind; a test that routes nothing finds every library as it is
without fakedriver; and a respx or aioresponses mock of the user's keeps working."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

import fakedriver
from fakedriver.transports.registry import Registry, base_of

pytest_plugins = ["pytester"]

#: The inner suite: a session server on loopback (what "the network" answers), 1,000 tests
#: that each call the fake through requests, httpx (sync and async) and aiohttp, and the
#: network through each of them too (passed through the kept patches); the memory the
#: routing libraries hold, and their records, sampled after test 100 and after the last.
INNER_CONFTEST = """
import gc, json, threading, tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import pytest

class Answer(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass

@pytest.fixture(scope="session")
def network():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()

SAMPLES = []
WATCHED = ["*aioresponses*", "*responses*", "*aiohttp*", "*httpx*", "*requests*", "*fakedriver*"]

def records():
    from fakedriver.transports import for_aiohttp, for_requests
    mock = for_aiohttp._mock
    return {
        "aioresponses requests": sum(len(calls) for calls in mock.requests.values()),
        "aioresponses responses": len(mock._responses),
        "responses calls": len(for_requests._calls.calls),
        "responses dispatch calls": len(for_requests._dispatch.calls),
    }

def pytest_runtest_setup(item):
    number = int(item.name.split("_")[1])
    if number == 899:
        tracemalloc.start()  # traced for the last hundred tests: tracing slows every call
    if number in (900, 999):  # what the tests before this one left
        gc.collect()  # a fake is a cycle (its rules' journal is its own): garbage, not kept
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, pattern) for pattern in WATCHED]
        )
        top = [str(stat) for stat in snapshot.statistics("lineno")[:5]]
        SAMPLES.append({"bytes": sum(s.size for s in snapshot.statistics("filename")),
                        "top": top, **records()})

def pytest_sessionfinish(session):
    with open("samples.json", "w") as out:
        json.dump(SAMPLES, out)
"""

INNER_TESTS = """
import asyncio
import aiohttp, httpx, requests

HTTPX = httpx.Client(verify=False)  # httpx.post() makes a client, and loads certificates, each time

async def through_aiohttp(fake_url, network):
    async with aiohttp.ClientSession() as session:
        async with session.post(fake_url + "/Plugin.Activate") as answer:
            assert (await answer.json())["Implements"]
        async with session.post(network + "/elsewhere") as answer:
            assert await answer.json() == {}
    async with httpx.AsyncClient(verify=False) as client:
        assert (await client.post(fake_url + "/Plugin.Activate")).json()["Implements"]

def _routed(fake_netdriver, network):
    url = fake_netdriver.url
    assert requests.post(url + "/Plugin.Activate").json()["Implements"]
    assert requests.post(network + "/elsewhere").json() == {}
    assert HTTPX.post(url + "/Plugin.Activate").json()["Implements"]
    assert HTTPX.post(network + "/elsewhere").json() == {}
    asyncio.run(through_aiohttp(url, network))
    assert len(fake_netdriver.calls) == 4

for number in range(1000):
    globals()[f"test_{number}_routed"] = _routed
"""


def test_a_thousand_routed_tests_leave_no_record_and_no_memory(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-x", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1000)
    early, late = json.loads((pytester.path / "samples.json").read_text())
    for record in ("aioresponses requests", "responses calls", "responses dispatch calls"):
        assert early[record] == late[record] == 0, (early, late)
    assert early["aioresponses responses"] == late["aioresponses responses"] == 0, (early, late)
    # 99 tests between the samples, each of five routed calls and three passed through: a
    # test's fake kept (its journal, its route) or a record of each call would be 60 KB
    assert late["bytes"] - early["bytes"] < 16 * 1024, (early, late)


LIBRARIES_AS_THEY_ARE = """
import aiohttp, httpx, requests

REQUESTS = requests.Session.get_adapter
HTTPX = httpx.Client._transport_for_url, httpx.AsyncClient._transport_for_url
AIOHTTP = aiohttp.ClientSession._request

def test_1_routes(fake_netdriver):
    assert requests.Session.get_adapter is not REQUESTS
    assert httpx.Client._transport_for_url is not HTTPX[0]
    assert aiohttp.ClientSession._request is not AIOHTTP

def test_2_routes_too(fake_netdriver):
    assert requests.Session.get_adapter is not REQUESTS

def test_3_routes_nothing():
    assert requests.Session.get_adapter is REQUESTS
    assert (httpx.Client._transport_for_url, httpx.AsyncClient._transport_for_url) == HTTPX
    assert aiohttp.ClientSession._request is AIOHTTP
"""


def test_a_test_that_routes_nothing_finds_each_library_as_it_is(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=LIBRARIES_AS_THEY_ARE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=3)


def test_a_users_respx_mock_inside_a_route_answers_its_own_urls() -> None:
    route = fakedriver.routed(url="http://plugin", clients=["httpx"])
    with route as fake, respx.mock(using="httpx") as users:  # every URL: the fake's passes
        users.post("http://user/thing").respond(200, json={"user": True})
        users.route(url__startswith=fake.url).pass_through()
        assert httpx.post("http://user/thing").json() == {"user": True}
        assert httpx.post("http://plugin/Plugin.Activate").json()["Implements"]
        assert users.calls.call_count == 2  # the fake's call passed through it
    assert fake.calls.methods == ["Plugin.Activate"]


def test_a_users_respx_mock_around_a_route_answers_its_own_urls() -> None:
    with respx.mock(using="httpx") as users:
        users.post("http://user/thing").respond(200, json={"user": True})
        with fakedriver.routed(url="http://plugin", clients=["httpx"]) as fake:
            assert httpx.post("http://user/thing").json() == {"user": True}
            assert httpx.post("http://plugin/Plugin.Activate").json()["Implements"]
    assert fake.calls.methods == ["Plugin.Activate"]


def test_routes_are_found_by_host() -> None:
    assert base_of("HTTP://Node-7.Fake:80/NetworkDriver.Join?x#y") == "http://node-7.fake:80"
    assert base_of("http+unix://%2Frun%2Fx.sock/Plugin.Activate") == "http+unix://%2frun%2fx.sock"
    assert base_of("no scheme") == ""
    routes = Registry(lambda: lambda: None)
    fake = fakedriver.FakeNetDriver()
    many = [fakedriver.Route(fake, f"http://n{i}.f", clients=[]) for i in range(50)]
    for route in many:
        routes.attach(route)
    found = routes.find("http://N17.f/NetworkDriver.Join")
    assert found is not None and found[0] is many[17] and found[1] == "NetworkDriver.Join"
    assert routes.find("http://n17.f.other/NetworkDriver.Join") is None
    for route in many:
        routes.detach(route)
    assert routes.find("http://n17.f/NetworkDriver.Join") is None and not routes.started
