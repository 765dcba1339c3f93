"""``fakedriver.routed`` / ``Route``: requests to the fake's URL (or socket) reach it
in-process; every other URL goes where it would have gone without the route."""

from __future__ import annotations

import gc
import inspect
import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests
import requests_unixsocket
import responses
from support.wire import NET
from werkzeug.test import Client

import fakedriver
from fakedriver import FakeNetDriver, Route
from fakedriver.transports.registry import CLIENTS

PLUGIN = "http://plugin"
SOCKET = "/run/docker/plugins/fake.sock"
SOCKET_URL = "http+unix://%2Frun%2Fdocker%2Fplugins%2Ffake.sock"
IMPLEMENTS = {"Implements": ["NetworkDriver", "IpamDriver"]}
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
#: What requests and responses look like with no route active.
GET_ADAPTER = requests.Session.get_adapter
SEND = requests.adapters.HTTPAdapter.send


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"the network answered {self.command} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1: what "the network" answers."""
    httpd = HTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Every test leaves requests unpatched and responses' default mock empty."""
    yield
    assert requests.Session.get_adapter is GET_ADAPTER
    assert requests.adapters.HTTPAdapter.send is SEND
    assert responses.mock.registered() == []


def activate() -> dict[str, object]:
    response = requests.post(f"{PLUGIN}/Plugin.Activate")
    assert response.status_code == 200
    return dict(response.json())


# -- reaching the fake ---------------------------------------------------------------------


def test_requests_to_the_fake_url_reach_it() -> None:
    with fakedriver.routed(url=PLUGIN) as fake:
        assert fake.url == PLUGIN
        response = requests.post(f"{PLUGIN}/Plugin.Activate")
        assert response.json() == IMPLEMENTS
        assert response.headers["Content-Type"] == CONTENT_TYPE
        created = requests.post(
            f"{PLUGIN}/NetworkDriver.CreateNetwork", json={"NetworkID": NET, "Options": {}}
        )
        assert created.json() == {}
        refused = requests.post(f"{PLUGIN}/NetworkDriver.CreateNetwork", data=b"not json")
        assert refused.status_code == 400 and "Err" in refused.json()
    assert NET in fake.state.networks
    assert fake.calls.methods == ["Plugin.Activate"] + ["NetworkDriver.CreateNetwork"] * 2
    assert fake.calls[1].request == {"NetworkID": NET, "Options": {}}


def test_a_session_and_a_trailing_slash_are_fine() -> None:
    with fakedriver.routed(url=f"{PLUGIN}/") as fake, requests.Session() as session:
        assert session.post(f"{PLUGIN}/Plugin.Activate").json() == IMPLEMENTS
    assert fake.url == PLUGIN
    assert fake.calls.methods == ["Plugin.Activate"]


def test_an_unknown_method_is_a_json_404() -> None:
    with fakedriver.routed(url=PLUGIN) as fake:
        response = requests.post(f"{PLUGIN}/NetworkDriver.Nope")
    assert response.status_code == 404
    assert response.json() == {"Err": "unknown method NetworkDriver.Nope"}
    assert fake.calls[0].error == "unknown method NetworkDriver.Nope"


def test_the_unix_socket_url_reaches_the_fake_when_socket_is_given() -> None:
    with fakedriver.routed(url=PLUGIN, socket=SOCKET) as fake:
        assert fake.socket_path == SOCKET
        session = requests_unixsocket.Session()
        response = session.post(f"{SOCKET_URL}/NetworkDriver.GetCapabilities")
        assert response.status_code == 200
        assert response.json() == {"Scope": "local", "ConnectivityScope": ""}
        assert activate() == IMPLEMENTS  # the base URL still works too
    assert fake.calls.methods == ["NetworkDriver.GetCapabilities", "Plugin.Activate"]


# requests-unixsocket leaves the socket of a failed connect() unclosed: collect it here.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.socket
def test_the_unix_socket_url_is_not_routed_without_socket() -> None:
    with (
        fakedriver.routed(url=PLUGIN) as fake,
        pytest.raises(requests.exceptions.ConnectionError),
    ):
        requests_unixsocket.Session().post(f"{SOCKET_URL}/Plugin.Activate")
    gc.collect()
    assert fake.calls == []


def test_two_routes_reach_their_own_fakes() -> None:
    with (
        fakedriver.routed(url=PLUGIN) as local,
        fakedriver.routed(url="http://overlay", scope="global") as overlay,
    ):
        assert activate() == IMPLEMENTS
        answer = requests.post("http://overlay/NetworkDriver.GetCapabilities").json()
        assert answer["Scope"] == "global"
    assert local.calls.methods == ["Plugin.Activate"]
    assert overlay.calls.methods == ["NetworkDriver.GetCapabilities"]


# -- not hijacking anything else -----------------------------------------------------------


@pytest.mark.socket
def test_other_urls_go_to_the_network(server: str) -> None:
    with fakedriver.routed(url=PLUGIN) as fake:
        assert requests.get(f"{server}/elsewhere").text == "the network answered GET /elsewhere"
        answer = requests.post(f"{server}/Plugin.Activate", json={})
        assert answer.text == "the network answered POST /Plugin.Activate"
        assert activate() == IMPLEMENTS
    assert fake.calls.methods == ["Plugin.Activate"]


@pytest.mark.socket
def test_a_route_under_a_path_leaves_its_siblings_alone(server: str) -> None:
    with fakedriver.routed(url=f"{server}/plugin") as fake:
        assert requests.post(f"{server}/plugin/Plugin.Activate").json() == IMPLEMENTS
        sibling = requests.post(f"{server}/plugin2/Plugin.Activate")
        assert sibling.text == "the network answered POST /plugin2/Plugin.Activate"
    assert fake.calls.methods == ["Plugin.Activate"]


@pytest.mark.socket
def test_a_routed_requests_call_skips_the_environment_another_call_reads_it(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A routed call never leaves the process: requests' scan of the environment for
    proxies and a CA bundle is skipped (it was a fifth of the call); any other URL still
    gets it, and a session's own settings still reach the routed call."""
    read: list[str] = []
    usual = requests.utils.get_environ_proxies

    def watched(url: str, no_proxy: object = None) -> dict[str, str]:
        read.append(url)
        return usual(url, no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", watched)
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.1:9")  # never reached by either call
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with fakedriver.routed(url=PLUGIN) as fake:
        assert activate() == IMPLEMENTS
        assert read == []
        session = requests.Session()
        session.verify = False
        assert session.post(f"{PLUGIN}/Plugin.Activate", timeout=5).json() == IMPLEMENTS
        assert requests.post(f"{server}/Plugin.Activate").text.startswith("the network")
    assert read == [f"{server}/Plugin.Activate"] and len(fake.calls) == 2


def test_a_user_mock_started_before_the_route_keeps_answering() -> None:
    with responses.RequestsMock() as user:
        user.get("http://api.example/v1", json={"from": "user mock"})
        with fakedriver.routed(url=PLUGIN) as fake:
            assert requests.get("http://api.example/v1").json() == {"from": "user mock"}
            assert activate() == IMPLEMENTS
            # what the user's mock does not know, it refuses, as it would without the route
            with pytest.raises(requests.exceptions.ConnectionError, match="Responses"):
                requests.get("http://api.example/unregistered")
        assert requests.get("http://api.example/v1").json() == {"from": "user mock"}
        assert len(user.calls) == 3
    assert fake.calls.methods == ["Plugin.Activate"]


def test_responses_activate_started_before_the_route() -> None:
    @responses.activate
    def user_test() -> None:
        responses.get("http://api.example/v1", json={"from": "user mock"})
        with fakedriver.routed(url=PLUGIN) as fake:
            assert requests.get("http://api.example/v1").json() == {"from": "user mock"}
            assert activate() == IMPLEMENTS
        assert fake.calls.methods == ["Plugin.Activate"]

    user_test()


def test_responses_activate_started_inside_the_route() -> None:
    @responses.activate
    def user_code() -> dict[str, object]:
        responses.get("http://api.example/v1", json={"from": "user mock"})
        assert requests.get("http://api.example/v1").json() == {"from": "user mock"}
        with pytest.raises(requests.exceptions.ConnectionError, match="Responses"):
            requests.get("http://api.example/unregistered")
        return activate()

    with fakedriver.routed(url=PLUGIN) as fake:
        assert user_code() == IMPLEMENTS
    assert fake.calls.methods == ["Plugin.Activate"]


def test_responses_activate_twice_inside_one_route() -> None:
    # BUG: @responses.activate resets responses.mock when it exits, which also drops the
    # callbacks the route registered there; the second call is refused by responses
    # ("Connection refused by Responses") instead of reaching the fake.
    @responses.activate
    def user_code() -> dict[str, object]:
        responses.get("http://api.example/v1", json={"from": "user mock"})
        assert requests.get("http://api.example/v1").json() == {"from": "user mock"}
        return activate()

    with fakedriver.routed(url=PLUGIN) as fake:
        assert user_code() == IMPLEMENTS
        assert user_code() == IMPLEMENTS
    assert fake.calls.methods == ["Plugin.Activate"] * 2


def test_a_user_requests_mock_started_inside_the_route() -> None:
    # BUG: only responses' default mock (@responses.activate) is joined; a user's own
    # RequestsMock started while the route is active hides the fake, and requests to the
    # fake's URL are refused by responses instead of served.
    with fakedriver.routed(url=PLUGIN) as fake, responses.RequestsMock() as user:
        user.get("http://api.example/v1", json={"from": "user mock"})
        assert requests.get("http://api.example/v1").json() == {"from": "user mock"}
        assert activate() == IMPLEMENTS
    assert fake.calls.methods == ["Plugin.Activate"]


def test_the_fakes_calls_stay_out_of_the_users_responses_calls() -> None:
    @responses.activate
    def user_code() -> None:
        responses.get("http://api.example/v1", json={"from": "user mock"})
        assert activate() == IMPLEMENTS
        requests.get("http://api.example/v1")
        assert [call.request.url for call in responses.calls] == ["http://api.example/v1"]
        responses.assert_call_count("http://api.example/v1", 1)

    with fakedriver.routed(url=PLUGIN) as fake:
        user_code()
    assert fake.calls.methods == ["Plugin.Activate"]


def test_a_route_for_a_client_that_is_not_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "respx" else real(name, *a)
    )
    with pytest.raises(fakedriver.MissingExtra, match=r"pip install 'fakedriver\[httpx\]'"):
        fakedriver.routed(url=PLUGIN, clients=["httpx"])
    with pytest.raises(fakedriver.MissingExtra, match="respx"):
        FakeNetDriver().httpx_client()
    route = fakedriver.routed(url=PLUGIN, clients=["requests", "aiohttp"])
    assert route.clients == ("requests", "aiohttp")


def test_a_client_installed_without_its_routing_library_is_an_error_not_a_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpx installed, respx not: routing "every installed client" would leave httpx's
    calls to the fake's URL going to the network without a word."""
    monkeypatch.setitem(sys.modules, "respx", None)  # as if not installed
    with pytest.raises(fakedriver.MissingExtra) as raised:
        fakedriver.routed(url=PLUGIN)
    assert str(raised.value) == (
        "httpx is installed but respx is not, so fakedriver cannot route its calls and they "
        "would reach the network: pip install 'fakedriver[httpx]'; or name the clients to "
        "route: clients=['requests', 'aiohttp'] (of routed() or the fake_netdriver marker) or "
        "the fake_netdriver_clients ini option"
    )
    assert fakedriver.routed(url=PLUGIN, clients=["requests"]).clients == ("requests",)


#: Run in a fresh interpreter where ``responses`` cannot be imported (``pip install
#: fakedriver requests``): what routed() does, as JSON.
WITHOUT_RESPONSES = """
import json, sys
sys.modules["responses"] = None  # as if not installed
import fakedriver

def attempt(**options):
    try:
        return list(fakedriver.routed(url="http://plugin", **options).clients)
    except fakedriver.MissingExtra as exc:
        return str(exc)

print(json.dumps([attempt(), attempt(clients=["requests"]), attempt(clients=["httpx"])]))
"""


def test_requests_without_responses_is_refused_naming_the_requests_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_RESPONSES], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    default, named, other = json.loads(done.stdout)
    assert default == (
        "requests is installed but responses is not, so fakedriver cannot route its calls "
        "and they would reach the network: pip install 'fakedriver[requests]'; or name the "
        "clients to route: clients=['httpx', 'aiohttp'] (of routed() or the fake_netdriver "
        "marker) or the fake_netdriver_clients ini option"
    )
    assert named == "routing requests calls needs requests and responses: " + (
        "pip install 'fakedriver[requests]'"
    )
    assert other == ["httpx"]  # naming the clients is the way out


def _extras() -> dict[str, set[str]]:
    """pyproject's extras: each one's distribution names, its own extras expanded."""
    with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as source:
        declared = tomllib.load(source)["project"]["optional-dependencies"]

    def names(extra: str) -> set[str]:
        found: set[str] = set()
        for requirement in declared[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement)
            assert name is not None, requirement
            inner = re.search(r"\[(.*)\]", requirement) if name[0] == "fakedriver" else None
            for own in inner[1].split(",") if inner else []:
                found |= names(own.strip())
            if name[0] != "fakedriver":
                found.add(name[0])
        return found

    return {extra: names(extra) for extra in declared}


def test_every_install_hint_names_an_extra_that_installs_the_client() -> None:
    extras = _extras()
    for client, (_, needs, hint) in CLIENTS.items():
        extra = re.fullmatch(r"fakedriver\[(\w+)\]", hint)
        assert extra is not None and extra[1] in extras, (client, hint)
        assert set(needs) <= extras[extra[1]], (client, extras[extra[1]])
    assert set(CLIENTS["requests"][1]) <= extras["pytest"]  # the fixtures route requests


# -- lifecycle -----------------------------------------------------------------------------


@pytest.mark.socket
def test_after_stop_nothing_is_routed(server: str) -> None:
    route = fakedriver.routed(url=f"{server}/plugin")
    route.start()
    assert requests.Session.get_adapter is not GET_ADAPTER
    assert requests.post(f"{server}/plugin/Plugin.Activate").json() == IMPLEMENTS
    route.stop()
    assert requests.Session.get_adapter is GET_ADAPTER
    assert responses.mock.registered() == []
    answer = requests.post(f"{server}/plugin/Plugin.Activate")
    assert answer.text == "the network answered POST /plugin/Plugin.Activate"
    assert route.fake.calls.methods == ["Plugin.Activate"]
    route.stop()  # stopping twice is harmless


def test_a_route_starts_once_at_a_time_and_can_restart() -> None:
    route = fakedriver.routed(url=PLUGIN)
    with route:
        with pytest.raises(RuntimeError, match="already active"):
            route.start()
        activate()
    with route:
        activate()
    assert len(route.fake.calls) == 2


def test_a_route_is_a_decorator() -> None:
    route = fakedriver.routed(url=PLUGIN, strict=False)

    @route
    def user_code() -> dict[str, object]:
        assert requests.Session.get_adapter is not GET_ADAPTER
        return activate()

    assert responses.mock.registered() == []
    assert user_code() == IMPLEMENTS
    assert user_code() == IMPLEMENTS
    assert responses.mock.registered() == []
    assert route.fake.calls.methods == ["Plugin.Activate"] * 2


def test_a_decorated_function_gets_the_fake_as_fake_netdriver() -> None:
    """As respx passes ``respx_mock``: asked for by name, as a keyword."""

    @fakedriver.routed(url=PLUGIN, scope="global")
    def user_code(name: str, fake_netdriver: FakeNetDriver) -> tuple[str, list[str]]:
        activate()
        return name, fake_netdriver.calls.methods

    assert user_code("first") == ("first", ["Plugin.Activate"])
    assert user_code(name="again") == ("again", ["Plugin.Activate"] * 2)
    # the parameter is not the caller's: pytest would look for a fixture of that name
    assert list(inspect.signature(user_code).parameters) == ["name"]


def test_a_decorated_coroutine_is_routed_while_it_runs() -> None:
    import asyncio

    import httpx

    @fakedriver.routed(url=PLUGIN)
    async def user_code(fake_netdriver: FakeNetDriver) -> int:
        async with httpx.AsyncClient() as client:
            await client.post(f"{PLUGIN}/Plugin.Activate")
        return len(fake_netdriver.calls)

    assert asyncio.run(user_code()) == 1


@pytest.mark.parametrize("verb", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_verbs_get_a_json_405(verb: str) -> None:
    with fakedriver.routed(url=PLUGIN) as fake:
        response = requests.request(verb, f"{PLUGIN}/Plugin.Activate")
    assert response.status_code == 405
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.json() == {"Err": f"method {verb} not allowed; use POST"}
    assert fake.calls == []


def test_head_gets_a_405_too() -> None:
    # The WSGI app answers HEAD with a 405 and no body, as HTTP requires:
    wsgi = Client(FakeNetDriver()).head("/Plugin.Activate")
    assert wsgi.status_code == 405 and wsgi.get_data() == b""
    # BUG: Route._serve answers HEAD with the JSON body, which urllib3 rejects, so
    # requests.head() raises ChunkedEncodingError ("Response may not contain content")
    # instead of returning the 405.
    with fakedriver.routed(url=PLUGIN) as fake:
        assert requests.head(f"{PLUGIN}/Plugin.Activate").status_code == 405
    assert fake.calls == []


# -- httpx and construction ----------------------------------------------------------------


def test_httpx_client_is_served_in_process() -> None:
    fake = FakeNetDriver()
    with fake.httpx_client() as client:
        assert str(client.base_url) == "http://fake-netdriver"
        assert client.post("/Plugin.Activate").json() == IMPLEMENTS
        response = client.get("/Plugin.Activate")
        assert response.status_code == 405
    assert fake.calls.methods == ["Plugin.Activate"]


def test_httpx_client_uses_the_routed_url_and_takes_options() -> None:
    with fakedriver.routed(url=PLUGIN) as fake, fake.httpx_client(timeout=3) as client:
        assert str(client.base_url) == PLUGIN
        assert client.timeout.read == 3
        assert client.post("/NetworkDriver.GetCapabilities").json()["Scope"] == "local"
        assert activate() == IMPLEMENTS  # requests and httpx share the one fake
    assert fake.calls.methods == ["NetworkDriver.GetCapabilities", "Plugin.Activate"]


def test_routed_builds_a_fake_from_persona_options() -> None:
    route = fakedriver.routed(url=PLUGIN, scope="global", ipam=False)
    assert isinstance(route, Route)
    assert route.fake.persona.scope == "global"
    with route as fake:
        assert fake is route.fake
        assert activate() == {"Implements": ["NetworkDriver"]}
        capabilities = requests.post(f"{PLUGIN}/NetworkDriver.GetCapabilities").json()
        assert capabilities["Scope"] == "global"


def test_routed_takes_an_existing_fake() -> None:
    fake = FakeNetDriver(network=False)
    with fakedriver.routed(fake, url=PLUGIN) as served:
        assert served is fake
        assert activate() == {"Implements": ["IpamDriver"]}
    assert len(fake.calls) == 1


def test_a_fake_and_persona_options_together_are_refused() -> None:
    with pytest.raises(TypeError, match="not both"):
        fakedriver.routed(FakeNetDriver(), scope="global")
    with pytest.raises(TypeError, match="not both"):
        fakedriver.routed(FakeNetDriver(), url=PLUGIN, strict=False)
