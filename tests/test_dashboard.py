"""The dashboard's listener (issue 22), without a browser: who gets the page and the control
API behind it (the listener's secret, its own origin only, a loopback ``Host`` only), the
control endpoint that removes one rule, the forwarding of ``fakedriver dashboard TARGET``
and the command line. Every request is written by hand, headers and all, as a browser (or
an attacker's page) would send them; tests/test_dashboard_browser.py drives real Chromium."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.serve_env import Dockerd, Launcher, create_network

from fakedriver import FakeNetDriver, serving
from fakedriver.cli.args import parser
from fakedriver.server.control import control
from fakedriver.server.dashboard import Dashboard, Remote, listen, local
from fakedriver.server.files import ServeError
from fakedriver.server.server import PluginServer

pytestmark = pytest.mark.socket  # the socket tier: the dashboard's listener, its servers

JSON = {"Content-Type": "application/json"}


class Page:
    """A dashboard listener of ``fake`` on a free loopback port, served in a thread."""

    def __init__(self, fake: FakeNetDriver, backend: Any = None) -> None:
        self.log = io.StringIO()
        self.server, self.dashboard = listen(
            backend or local(fake), ("127.0.0.1", 0), title="test", log=self.log
        )
        self.port = self.server.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.origin = f"http://{self.host}"
        self.key = self.dashboard.secret
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ask(
        self,
        verb: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
        host: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, with exactly these headers (and ``Host``: the listener's own)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest(verb, target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", host or self.host)
            data = b"" if body is None else json.dumps(body).encode()
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            if data or verb in ("POST", "PUT"):
                connection.putheader("Content-Length", str(len(data)))
            connection.endheaders(data or None)
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()

    def own(self, **more: str) -> dict[str, str]:
        """The headers of the page's own control request (a same-origin fetch)."""
        return {
            "Origin": self.origin,
            "Sec-Fetch-Site": "same-origin",
            "X-Fakedriver-Key": self.key,
            **JSON,
            **more,
        }

    def close(self) -> None:
        """Stop the listener (once); its log is whole after."""
        if self.thread.is_alive():
            self.server.close()
            self.thread.join(10)


@pytest.fixture
def fake() -> FakeNetDriver:
    return FakeNetDriver()


@pytest.fixture
def page(fake: FakeNetDriver) -> Iterator[Page]:
    served = Page(fake)
    try:
        yield served
    finally:
        served.close()


RULE = {"method": "Join", "message": "no veth left"}


# -- the page ------------------------------------------------------------------------------
def test_the_page_is_served_with_the_secret_in_its_address_only(page: Page) -> None:
    for target in ("/", "/?key=", "/?key=wrong", f"/?key={page.key}x"):
        status, _, body = page.ask("GET", target, {"Sec-Fetch-Site": "none"})
        assert status == 401, target
        assert page.key.encode() not in body
    status, headers, body = page.ask("GET", f"/?key={page.key}", {"Sec-Fetch-Site": "none"})
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert f'<meta name="fakedriver-key" content="{page.key}">' in body.decode()
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"  # the address carries the secret
    assert headers["cache-control"] == "no-store"
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in body.decode()


def test_the_page_loads_nothing_from_anywhere(page: Page) -> None:
    """Every asset is inlined: no URL in the page but its own origin's control API."""
    _, _, body = page.ask("GET", f"/?key={page.key}")
    text = body.decode()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", text)
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    assert "@import" not in text and "url(" not in text


def test_a_page_opened_from_another_site_is_refused(page: Page) -> None:
    status, _, _ = page.ask("GET", f"/?key={page.key}", {"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _, _ = page.ask("GET", f"/?key={page.key}", {"Sec-Fetch-Site": "same-site"})
    assert status == 403


# -- the control API behind it ---------------------------------------------------------------
def test_a_control_request_needs_the_secret(page: Page, fake: FakeNetDriver) -> None:
    for headers in ({}, {"X-Fakedriver-Key": "wrong"}, {"X-Fakedriver-Key": ""}):
        status, _, body = page.ask("GET", "/fakedriver/state", {**JSON, **headers})
        assert status == 401, headers
        assert "X-Fakedriver-Key".lower() in body.decode().lower()
    status, _, _ = page.ask("POST", "/fakedriver/faults", {**JSON}, RULE)
    assert status == 401 and fake.faults.rules == []
    status, headers, body = page.ask("GET", "/fakedriver/state", page.own())
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["networks"] == {}


def test_the_pages_own_request_changes_the_fake(page: Page, fake: FakeNetDriver) -> None:
    status, _, body = page.ask("POST", "/fakedriver/faults", page.own(), RULE)
    assert (status, json.loads(body)) == (200, {"added": [0]})
    assert [rule.name for rule in fake.faults.rules] == ["error on NetworkDriver.Join"]
    # a same-origin GET carries no Origin, only Sec-Fetch-Site
    status, _, body = page.ask(
        "GET", "/fakedriver/faults", {"Sec-Fetch-Site": "same-origin", "X-Fakedriver-Key": page.key}
    )
    assert status == 200 and json.loads(body)["faults"][0]["message"] == "no veth left"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://localhost:9999"},  # another port: the same site, another origin
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},  # a sandboxed frame, a file:// page
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "none"},
    ],
    ids=lambda headers: " ".join(f"{k}={v}" for k, v in headers.items()),
)
@pytest.mark.parametrize(
    ("verb", "target", "body"),
    [
        ("POST", "/fakedriver/faults", RULE),
        ("POST", "/fakedriver/reset", {}),
        ("DELETE", "/fakedriver/faults", None),
        ("PUT", "/fakedriver/phase", {"phase": "x"}),
        ("GET", "/fakedriver/calls", None),
    ],
)
def test_a_request_of_another_origin_is_refused_even_with_the_secret(
    page: Page,
    fake: FakeNetDriver,
    headers: dict[str, str],
    verb: str,
    target: str,
    body: Any,
) -> None:
    """Were the secret ever known to another page, its request still fails: its origin
    is not the listener's. Nothing changes, and the refusal is logged."""
    fake.fail("Leave")
    before = control(fake, "GET", "/fakedriver/faults", b"")
    sent = {**page.own(), **headers}
    if "Origin" not in headers:
        del sent["Origin"]
    status, _, answer = page.ask(verb, target, sent, body)
    assert status == 403, answer
    assert "own page only" in json.loads(answer)["Err"]
    assert control(fake, "GET", "/fakedriver/faults", b"") == before
    page.close()
    assert f"dashboard refused a request: 403 {verb} {target}" in page.log.getvalue()


def test_a_name_rebound_to_loopback_is_refused(page: Page, fake: FakeNetDriver) -> None:
    """DNS rebinding: a site whose name is made to resolve to 127.0.0.1 is the page's
    own origin to the browser, but its requests carry its own name as ``Host``."""
    evil = f"evil.example:{page.port}"
    headers = {**page.own(), "Origin": f"http://{evil}"}
    status, _, _ = page.ask("POST", "/fakedriver/reset", headers, {}, host=evil)
    assert status == 403
    status, _, body = page.ask("GET", f"/?key={page.key}", host=evil)
    assert status == 403 and page.key.encode() not in body
    assert fake.faults.rules == []


@pytest.mark.parametrize("host", ["localhost:{port}", "localhost:8000", "127.0.0.1:80"])
def test_a_loopback_name_on_any_port_is_the_pages_origin(page: Page, host: str) -> None:
    """``ssh -L 8000:127.0.0.1:PORT`` brings the page to another port of another host's
    loopback: its ``Host`` and ``Origin`` name that port."""
    host = host.format(port=page.port)
    headers = {**page.own(), "Origin": f"http://{host}"}
    status, _, _ = page.ask("PUT", "/fakedriver/phase", headers, {"phase": "p"}, host=host)
    assert status == 200


def test_a_control_post_must_be_json(page: Page, fake: FakeNetDriver) -> None:
    """A form, or a no-cors fetch, can only send text/plain and its like."""
    headers = page.own(**{"Content-Type": "text/plain"})
    status, _, _ = page.ask("POST", "/fakedriver/faults", headers, RULE)
    assert status == 415 and fake.faults.rules == []


def test_other_paths_and_verbs_are_refused(page: Page) -> None:
    assert page.ask("GET", "/favicon.ico", page.own())[0] == 404
    assert page.ask("POST", f"/?key={page.key}", page.own(), {})[0] == 405
    status, headers, _ = page.ask(
        "OPTIONS", "/fakedriver/reset", {"Origin": "http://localhost:1", **JSON}
    )
    assert status == 403 and "access-control-allow-origin" not in headers


def test_the_listener_is_on_loopback_only(fake: FakeNetDriver) -> None:
    with pytest.raises(ServeError, match="loopback only"):
        listen(local(fake), ("0.0.0.0", 0), title="x")
    server, _ = listen(local(fake), ("localhost", 0), title="x")
    try:
        assert server.address.startswith("tcp://127.0.0.1:")
    finally:
        server.close()


# -- removing one rule -----------------------------------------------------------------------
def _delete(fake: FakeNetDriver, target: str, body: Any = None) -> tuple[int, Any]:
    return control(fake, "DELETE", target, b"" if body is None else json.dumps(body).encode())


def test_one_rule_is_removed_by_its_place_in_the_list(fake: FakeNetDriver) -> None:
    """Two equal rules: the one at the index goes (with its counts), not the first equal."""
    first = fake.fail("Join", message="same")
    second = fake.fail("Join", message="same")
    first.fired = 3
    status, answer = _delete(fake, "/fakedriver/faults/1")
    assert status == 200 and answer["removed"] == 1
    assert fake.faults.rules == [first] and fake.faults.rules[0] is first
    assert second.released and not first.released


def test_removing_a_rule_releases_the_calls_it_holds(fake: FakeNetDriver) -> None:
    with serving(fake) as served:
        held = fake.hold("Join")
        client = Dockerd(served.socket_path)
        client.ok("NetworkDriver.CreateNetwork", create_network("n1"))
        answers: list[tuple[int, dict[str, Any]]] = []
        body = {"NetworkID": "n1", "EndpointID": "e1", "SandboxKey": "/k", "Options": {}}
        join = lambda: answers.append(client.call("NetworkDriver.Join", body))  # noqa: E731
        waiting = threading.Thread(target=join)
        waiting.start()
        assert held.wait_held(1, timeout=10)
        assert _delete(fake, "/fakedriver/faults/0", {"name": held.name})[0] == 200
        waiting.join(10)
        client.close()
    assert answers and answers[0][0] == 200 and fake.faults.rules == []


@pytest.mark.parametrize(
    ("target", "body", "status", "says"),
    [
        ("/fakedriver/faults/2", None, 404, "no fault rule 2: there are 2"),
        ("/fakedriver/faults/-1", None, 404, "N is a rule's index"),
        ("/fakedriver/faults/x", None, 404, "N is a rule's index"),
        ("/fakedriver/faults/", None, 404, "N is a rule's index"),
        ("/fakedriver/faults/1", {"name": "latency on *"}, 409, "list the rules again"),
        ("/fakedriver/faults/1", {"name": 3}, 400, "bad control request"),
        ("/fakedriver/faults/1", [], 400, "bad control request"),
    ],
)
def test_a_bad_removal_changes_nothing(
    fake: FakeNetDriver, target: str, body: Any, status: int, says: str
) -> None:
    fake.fail("Join")
    fake.fail("Leave")
    before = fake.fault_report()
    got, answer = _delete(fake, target, body)
    assert got == status and says in answer["Err"]
    assert fake.fault_report() == before


# -- forwarding to a running server ----------------------------------------------------------
def test_the_dashboard_of_a_socket_forwards_no_browser_header(fake: FakeNetDriver) -> None:
    """The plugin socket refuses a browser's request; the dashboard forwards the verb,
    path and body alone, so its page's requests get through (and only them)."""
    with serving(fake) as served:
        page = Page(fake, Remote(served.socket_path))
        try:
            status, _, body = page.ask("POST", "/fakedriver/faults", page.own(), RULE)
            assert status == 200 and json.loads(body) == {"added": [0]}
            status, _, _ = page.ask("POST", "/fakedriver/reset", {**page.own(), "Origin": "null"})
            assert status == 403
        finally:
            page.close()
    assert [rule.message for rule in fake.faults.rules] == ["no veth left"]


def test_the_dashboard_of_a_tcp_server_sends_its_token(fake: FakeNetDriver) -> None:
    server = PluginServer(
        fake,
        tcp=("127.0.0.1", 0),
        control=lambda verb, target, body: control(fake, verb, target, body),
        control_token="tok",
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = server.address.replace("tcp://", "http://")
    try:
        assert Remote(address, "tok")("GET", "/fakedriver/faults", b"")[0] == 200
        status, body = Remote(address, "wrong")("GET", "/fakedriver/faults", b"")
        assert status == 401 and b"Bearer" in body
        status, body = Remote("http://127.0.0.1:1", "tok")("GET", "/fakedriver/faults", b"")
        assert status == 502 and b"cannot reach the control API" in body
    finally:
        server.close()
        thread.join(10)


@pytest.mark.parametrize("target", ["https://x:1", "http://x:1/path", "ftp://x"])
def test_a_target_url_that_is_not_a_control_api_server_is_refused(target: str) -> None:
    with pytest.raises(ServeError):
        Remote(target)


def test_a_dashboard_serves_its_own_page_only(fake: FakeNetDriver) -> None:
    assert Dashboard(local(fake), "x").secret != Dashboard(local(fake), "x").secret


# -- the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("8000", ("127.0.0.1", 8000)),
        (":0", ("127.0.0.1", 0)),
        ("127.0.0.2:9", ("127.0.0.2", 9)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_the_dashboard_flag_takes_a_loopback_address(given: str, address: tuple[str, int]) -> None:
    assert parser().parse_args(["serve", "--dashboard", given]).dashboard == address


@pytest.mark.parametrize("given", ["0.0.0.0:8000", "192.0.2.1:0", "example.com:80", "[::]:0"])
def test_a_dashboard_beyond_loopback_is_a_usage_error(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["serve", "--dashboard", given])
    assert exit_.value.code == 2
    assert "loopback only" in capsys.readouterr().err


def _run(*argv: str, **popen: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fakedriver", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **popen,
    )


def test_the_dashboard_drives_the_control_api_so_not_with_no_control(tmp_path: Path) -> None:
    done = _run("serve", "--socket", str(tmp_path / "p.sock"), "--no-control", "--dashboard", "0")
    assert done.returncode == 2 and "which the dashboard drives" in done.stderr


def test_a_plugin_bundle_takes_no_dashboard() -> None:
    from fakedriver.cli.args import check_serve_args
    from fakedriver.plugin.bundle import BundleError

    with pytest.raises(BundleError, match="fakedriver dashboard plugin:NAME"):
        check_serve_args(["--dashboard", "8000"])


def _get(url: str, path: str) -> tuple[int, Any]:
    """GET ``path`` of the dashboard whose page is at ``url`` (with its secret)."""
    found = re.match(r"http://([^/]+)/\?key=(\S+)$", url)
    assert found, url
    host, key = found.groups()
    connection = http.client.HTTPConnection(host, timeout=10)
    try:
        connection.request("GET", path, headers={"X-Fakedriver-Key": key})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_serve_prints_the_dashboards_address(serve: Launcher, short_dir: Path) -> None:
    sock = str(short_dir / "p.sock")
    served = serve("--socket", sock, "--dashboard", "127.0.0.1:0").wait_ready()
    found = re.search(r"fakedriver: dashboard on (http://\S+)", served.text())
    assert found, served.text()
    client = Dockerd(sock)
    client.ok("Plugin.Activate")
    client.close()
    status, answer = _get(found.group(1), "/fakedriver/calls")
    assert status == 200 and [c["method"] for c in answer["calls"]] == ["Plugin.Activate"]


def test_the_dashboard_command_forwards_to_a_running_server(
    serve: Launcher, short_dir: Path
) -> None:
    sock = str(short_dir / "p.sock")
    serve("--socket", sock).wait_ready()
    client = Dockerd(sock)
    client.ok("Plugin.Activate")
    client.close()
    with subprocess.Popen(
        [sys.executable, "-m", "fakedriver", "dashboard", sock],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as command:
        try:
            assert command.stdout is not None
            line = command.stdout.readline()  # the process is killed below if it hangs
            found = re.search(rf"dashboard of unix://{re.escape(sock)} on (http://\S+)", line)
            assert found, line
            status, answer = _get(found.group(1), "/fakedriver/calls")
            assert status == 200 and answer["next"] == 1
        finally:
            command.terminate()
            assert command.wait(10) == 0


def test_the_dashboard_command_says_why_it_cannot_start(tmp_path: Path) -> None:
    done = _run("dashboard", str(tmp_path / "nothing.sock"))
    assert done.returncode == 2 and "No such file or directory" in done.stderr
    (tmp_path / "file").write_text("")
    done = _run("dashboard", str(tmp_path / "file"))
    assert done.returncode == 2 and "is not a socket" in done.stderr
    done = _run("dashboard", "http://127.0.0.1:1")
    assert done.returncode == 2 and "cannot reach the control API" in done.stderr
    done = _run("dashboard", "--listen", "0.0.0.0:0", "http://127.0.0.1:1")
    assert done.returncode == 2 and "loopback only" in done.stderr


def test_the_dashboard_of_a_managed_plugin_finds_its_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plugin:NAME`` is the socket ``docker plugin inspect`` names (a stand-in docker
    here, answering as the real one does), as ``fakedriver plugin socket NAME`` finds it."""
    from fakedriver.cli.dashboard import resolve
    from fakedriver.plugin.bundle import BundleError

    docker = tmp_path / "docker"
    docker.write_text(
        '#!/bin/sh\n[ "$5" = fake ] && { echo "abc123 fake.sock"; exit 0; }\n'
        'echo "Error: No such plugin: $5" >&2; exit 1\n'
    )
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert resolve("plugin:fake") == "/run/docker/plugins/abc123/fake.sock"
    with pytest.raises(BundleError, match="No such plugin: other"):
        resolve("plugin:other")
    done = _run("dashboard", "plugin:other", env={**os.environ})
    assert done.returncode == 2 and "No such plugin: other" in done.stderr


# -- the browser tests' own switch -------------------------------------------------------------
def test_the_browser_tests_skip_loudly_without_chromium_and_fail_when_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from support import browser_env

    monkeypatch.setattr(browser_env, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(browser_env, "REQUIRED", False)
    with pytest.raises(pytest.skip.Exception, match=r"SKIPPED LOUDLY: .*apt-get install chromium"):
        browser_env.need_browser()
    monkeypatch.setattr(browser_env, "REQUIRED", True)
    with pytest.raises(pytest.fail.Exception, match="FAKEDRIVER_REQUIRE_BROWSER=1 and no "):
        browser_env.need_browser()
