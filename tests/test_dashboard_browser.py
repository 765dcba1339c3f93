"""The dashboard in a real browser (issue 22): headless Chromium, driven by selenium, against
``fakedriver serve --dashboard``: a network created over the plugin protocol appears
without a reload, a Join fault added from the form fails the next Join, a held call is
released from the page, the views are keyboard navigable, and a page of another local
origin cannot change anything. Screenshots of each view go to ``artifacts/screenshots/``.
Skipped, loudly, without Debian's chromium (failed under FAKEDRIVER_REQUIRE_BROWSER=1)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.browser_env import chromium, need_browser, screenshot, wait_for
from support.serve_env import Dockerd, Launcher, Served, create_network

pytestmark = pytest.mark.browser  # the browser tier: the dashboard in Chromium

NET = "5d1c" + "0" * 60
EP = "e9a7" + "0" * 60


@dataclass
class Dashboard:
    served: Served
    socket: str
    url: str
    client: Dockerd

    def control(self, verb: str, path: str, body: Any = None) -> Any:
        """The control API on the plugin socket (not through the page)."""
        import http.client
        import socket

        class Unix(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(10)
                self.sock.connect(outer.socket)

        outer = self
        connection = Unix("localhost", timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data else {}
            connection.request(verb, path, body=data, headers=headers)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()


@pytest.fixture
def dashboard(serve: Launcher, short_dir: Path) -> Iterator[Dashboard]:
    need_browser()
    sock = str(short_dir / "p.sock")
    served = serve("--socket", sock, "--dashboard", "127.0.0.1:0").wait_ready()
    found = re.search(r"fakedriver: dashboard on (http://\S+)", served.text())
    assert found, served.text()
    client = Dockerd(sock)
    try:
        yield Dashboard(served, sock, found.group(1), client)
    finally:
        client.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def _open(browser: Any, url: str) -> None:
    browser.get(url)
    wait_for(lambda: browser.execute_script("return document.body.dataset.rendered"), what="render")
    browser.execute_script("window.fakedriverSameLoad = true")  # gone after a reload


def _rows(browser: Any, **match: str) -> list[Any]:
    """The timeline's rows in view, by their data- attributes."""
    selector = ".row[data-seq]" + "".join(f'[data-{k}="{v}"]' for k, v in match.items())
    return list(browser.find_elements("css selector", selector))


def _tab(browser: Any, name: str) -> None:
    browser.find_element("id", f"tab-{name}").click()
    wait_for(lambda: browser.find_element("id", f"view-{name}").is_displayed(), what=name)


def _fired(browser: Any, rule: int = 0) -> str:
    """How often rule ``rule`` fired, as the page shows it (the table is re-rendered)."""
    return str(browser.find_element("css selector", f'#faults tr[data-rule="{rule}"] .fired').text)


def _join(nid: str = NET, eid: str = EP) -> dict[str, Any]:
    return {
        "NetworkID": nid,
        "EndpointID": eid,
        "SandboxKey": "/var/run/docker/netns/1",
        "Options": {},
    }


def _lifecycle(client: Dockerd) -> None:
    client.ok("Plugin.Activate")
    client.ok("NetworkDriver.CreateNetwork", create_network(NET))
    endpoint = {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.0.0.2/24"}}
    client.ok("NetworkDriver.CreateEndpoint", {**endpoint, "Options": {}})


def test_a_network_created_over_the_plugin_protocol_appears_without_reloading(
    dashboard: Dashboard, browser: Any
) -> None:
    _open(browser, dashboard.url)
    assert _rows(browser) == []
    _lifecycle(dashboard.client)
    dashboard.client.ok("NetworkDriver.Join", _join())
    dashboard.client.refused("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": "nope"})
    wait_for(lambda: _rows(browser, method="NetworkDriver.Join"), what="the Join row")
    assert browser.execute_script("return window.fakedriverSameLoad") is True  # no reload
    assert len(_rows(browser)) == 5
    refused = _rows(browser, method="NetworkDriver.Leave", verdict="error")
    assert refused and "endpoint nope not found" in refused[0].text
    refused[0].click()  # the request and answer, one click away
    detail = browser.find_element("id", "detail")
    wait_for(lambda: '"EndpointID": "nope"' in detail.text, what="the request")
    assert (
        '"Err": "endpoint nope not found in network 5d1c'
        in browser.find_element("css selector", ".answer").text
    )
    screenshot(browser, "timeline")

    _tab(browser, "state")
    state = browser.find_element("id", "state")
    wait_for(lambda: "network 5d1c00000000" in state.text, what="the network in the tree")
    for summary in browser.find_elements("css selector", "#state summary"):
        if summary.text.startswith(("network ", "endpoint ")):
            summary.click()
    wait_for(lambda: "join /var/run/docker/netns/1" in state.text, what="the join")
    screenshot(browser, "state")
    _tab(browser, "leaks")
    leaks = browser.find_element("id", "leaks")
    assert "network 5d1c" in leaks.text and "(call #1 NetworkDriver.CreateNetwork)" in leaks.text
    screenshot(browser, "leaks")


def test_a_join_fault_added_from_the_form_fails_the_next_join(
    dashboard: Dashboard, browser: Any
) -> None:
    _lifecycle(dashboard.client)
    _open(browser, dashboard.url)
    _tab(browser, "faults")
    form = browser.find_element("id", "add-rule")
    method = form.find_element("name", "method")
    method.clear()
    method.send_keys("Jion")  # a typo: the control API's own message, in place
    form.find_element("name", "message").send_keys("no veth left")
    form.find_element("id", "add-rule-button").click()
    error = browser.find_element("id", "rule-error")
    wait_for(error.is_displayed, what="the error")
    assert "'Jion' is not a method of either protocol; did you mean 'Join'?" in error.text
    assert dashboard.control("GET", "/fakedriver/faults")["faults"] == []
    method.clear()
    method.send_keys("Join")
    form.find_element("name", "times").send_keys("1")
    form.find_element("id", "add-rule-button").click()
    wait_for(lambda: not error.is_displayed(), what="the error gone")
    rules = dashboard.control("GET", "/fakedriver/faults")["faults"]
    assert [(r["method"], r["kind"], r["message"], r["times"]) for r in rules] == [
        ("NetworkDriver.Join", "error", "no veth left", 1)
    ]
    assert dashboard.client.refused("NetworkDriver.Join", _join()) == "no veth left"
    wait_for(lambda: _fired(browser) == "1" or None, what="fired 1")
    screenshot(browser, "faults")
    _tab(browser, "timeline")
    row = wait_for(lambda: _rows(browser, method="NetworkDriver.Join", verdict="error"))
    assert "fault: error on NetworkDriver.Join" in row[0].text and "no veth left" in row[0].text
    dashboard.client.ok("NetworkDriver.Join", _join())  # times=1: it recovered


def test_a_held_call_is_released_from_the_page(dashboard: Dashboard, browser: Any) -> None:
    _lifecycle(dashboard.client)
    _open(browser, dashboard.url)
    _tab(browser, "faults")
    form = browser.find_element("id", "add-rule")
    form.find_element("name", "method").clear()
    form.find_element("name", "method").send_keys("Join")
    from selenium.webdriver.support.ui import Select

    Select(form.find_element("name", "kind")).select_by_value("hold")
    form.find_element("id", "add-rule-button").click()
    wait_for(lambda: browser.find_elements("css selector", '#faults tr[data-rule="0"]'))
    answers: list[dict[str, Any]] = []
    joining = threading.Thread(
        target=lambda: answers.append(dashboard.client.ok("NetworkDriver.Join", _join())),
        daemon=True,
    )
    joining.start()
    wait_for(lambda: _fired(browser) == "1" or None, what="the Join held")
    assert joining.is_alive() and answers == []
    browser.find_element("id", "release").click()
    joining.join(15)
    assert not joining.is_alive() and len(answers) == 1 and "InterfaceName" in answers[0]
    _tab(browser, "timeline")
    row = wait_for(lambda: _rows(browser, method="NetworkDriver.Join", verdict="ok"))
    assert "fault: hold on NetworkDriver.Join" in row[0].text


def test_rules_are_removed_the_phase_set_and_everything_reset_from_the_page(
    dashboard: Dashboard, browser: Any
) -> None:
    _lifecycle(dashboard.client)
    dashboard.control(
        "POST",
        "/fakedriver/faults",
        {"faults": [{"method": "Join", "name": "first"}, {"method": "Leave", "name": "second"}]},
    )
    _open(browser, dashboard.url)
    _tab(browser, "faults")
    remove = wait_for(
        lambda: browser.find_element("css selector", '#faults tr[data-rule="1"] .remove')
    )
    remove.click()
    wait_for(lambda: not browser.find_elements("css selector", '#faults tr[data-rule="1"]'))
    assert [r["name"] for r in dashboard.control("GET", "/fakedriver/faults")["faults"]] == [
        "first"
    ]
    phase = browser.find_element("id", "phase")
    phase.send_keys("upgrade")
    browser.find_element("css selector", "#phase-form button").click()
    wait_for(lambda: dashboard.control("GET", "/fakedriver/faults")["phase"] == "upgrade")
    reset = browser.find_element("id", "reset")
    reset.click()  # asks first
    assert "Click again" in reset.text
    assert dashboard.control("GET", "/fakedriver/state")["networks"] != {}
    reset.click()
    wait_for(lambda: dashboard.control("GET", "/fakedriver/state")["networks"] == {})
    _tab(browser, "timeline")
    wait_for(lambda: _rows(browser) == [] or None, what="the journal emptied in the page")
    dashboard.client.ok("Plugin.Activate")
    wait_for(lambda: _rows(browser, method="Plugin.Activate"), what="a call after the reset")


def test_the_views_are_keyboard_navigable(dashboard: Dashboard, browser: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    _lifecycle(dashboard.client)
    _open(browser, dashboard.url)
    wait_for(lambda: len(_rows(browser)) == 3 or None)
    body = browser.find_element("tag name", "body")
    body.send_keys(Keys.TAB)  # the first tab, then the filters, then the list
    focused = lambda: browser.switch_to.active_element  # noqa: E731
    assert focused().get_attribute("id") == "tab-timeline"
    focused().send_keys(Keys.ARROW_RIGHT)
    assert focused().get_attribute("id") == "tab-state"
    assert browser.find_element("id", "view-state").is_displayed()
    focused().send_keys(Keys.ARROW_LEFT)
    assert browser.find_element("id", "view-timeline").is_displayed()
    viewport = browser.find_element("id", "viewport")
    for _ in range(20):
        if focused().get_attribute("id") == "viewport":
            break
        focused().send_keys(Keys.TAB)
    assert focused().get_attribute("id") == "viewport"
    viewport.send_keys(Keys.ARROW_DOWN)
    viewport.send_keys(Keys.ARROW_DOWN)
    wanted = ["NetworkDriver.CreateNetwork", True]  # the second row, and said so to readers
    selected = lambda: browser.execute_script(  # noqa: E731
        "const row = document.querySelector('.row.selected');"
        "const list = document.getElementById('viewport');"
        "const active = list.getAttribute('aria-activedescendant');"
        "return row && [row.dataset.method, row.id === active]"
    )
    # the page handles each key after send_keys returns: wait for the second one's effect
    wait_for(lambda: selected() == wanted or None, what="the second row (CreateNetwork) selected")
    assert '"NetworkID": "5d1c' in browser.find_element("id", "detail").text
    viewport.send_keys(Keys.END)
    wait_for(lambda: "CreateEndpoint" in browser.find_element("id", "detail").text)


# -- another origin ---------------------------------------------------------------------------
#: The attacker's page, on another local origin: it tries every way a page has to change
#: the fake through the dashboard's control API (the address after '#'), with the secret
#: even (after '#', as if it had leaked): a no-cors text/plain fetch, a JSON fetch with
#: the secret's header (preflighted), and a form posted into a frame.
ATTACK = b"""<html><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" target="sink" enctype="text/plain">
<input name='{"method": "Join", "x": "' value='"}'></form>
<script>
const [target, key] = location.hash.slice(1).split("|");
const rule = JSON.stringify({method: "Join", message: "csrf"});
const tries = [
  fetch(target + "/fakedriver/faults", {method: "POST", mode: "no-cors", body: rule}),
  fetch(target + "/fakedriver/reset", {method: "POST", mode: "no-cors", body: "{}"}),
  fetch(target + "/fakedriver/faults", {method: "POST", body: rule,
    headers: {"Content-Type": "application/json", "X-Fakedriver-Key": key}}),
  fetch(target + "/fakedriver/faults", {method: "DELETE", headers: {"X-Fakedriver-Key": key}}),
];
Promise.allSettled(tries).then(results => {
  const form = document.getElementById("form");
  form.action = target + "/fakedriver/faults";
  form.submit();
  const seen = results.map(r => r.status + ":" + (r.value ? r.value.type : r.reason.name));
  document.title = "tried " + seen.join(",");
});
</script></body></html>
"""


class _Attacker(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(ATTACK)))
        self.end_headers()
        self.wfile.write(ATTACK)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[str]:
    """The attacker's site: another origin of this host (localhost, another port)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_page_on_another_origin_cannot_change_anything(
    dashboard: Dashboard, browser: Any, attacker: str
) -> None:
    _lifecycle(dashboard.client)
    dashboard.control("POST", "/fakedriver/faults", {"method": "Leave", "name": "kept"})
    before = (
        dashboard.control("GET", "/fakedriver/state"),
        dashboard.control("GET", "/fakedriver/faults"),
    )
    _open(browser, dashboard.url)  # the user has the dashboard open, in the same browser
    origin, key = re.match(r"(http://[^/]+)/\?key=(\S+)", dashboard.url).groups()  # type: ignore[union-attr]
    browser.get(f"{attacker}#{origin}|{key}")
    wait_for(lambda: browser.title.startswith("tried ") and browser.title, what="the attack")
    # every fetch failed: the no-cors ones went out, but their answers may not be read
    # (Cross-Origin-Resource-Policy); the others were stopped at their preflight
    assert browser.title == "tried " + ",".join(["rejected:TypeError"] * 4)

    def refused() -> str | None:
        log = dashboard.served.text()
        return log if log.count("refused a request: 403 POST /fakedriver/faults") >= 2 else None

    log = wait_for(refused, what="the fetch and the form refused")  # the form posts last
    assert "dashboard refused a request: 403 POST /fakedriver/reset" in log
    assert "dashboard refused a request: 403 OPTIONS /fakedriver/faults" in log  # preflights
    after = dashboard.control("GET", "/fakedriver/state")
    assert (after, dashboard.control("GET", "/fakedriver/faults")) == before
    assert "own page only, not one from http://localhost:" in log
