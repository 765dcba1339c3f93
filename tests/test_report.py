"""A failing test's picture (issue 22): when a test that used ``fake_netdriver``,
``fake_netdriver_server`` or ``fake_netdriver_cluster`` fails, one self-contained HTML
file of its fakes' calls and state (the dashboard's views, the data inlined) is written,
and its path is printed under the journal section; the folder is an option, and an empty
one turns it off. A failing cluster test's picture opens in Chromium with the
partitioned node's lane showing its dropped calls."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from support.browser_env import chromium, screenshot, wait_for

from fakedriver import FakeNetDriver
from fakedriver.server.page import fake_data, render

pytest_plugins = ["pytester"]

FAILING = """
import requests

def test_broken(fake_netdriver):
    requests.post(f"{fake_netdriver.url}/Plugin.Activate")
    requests.post(f"{fake_netdriver.url}/NetworkDriver.Join", json={
        "NetworkID": "n1", "EndpointID": "e1", "SandboxKey": "/k", "Options": {}
    })
    assert False, "my orchestrator is broken"

def test_passing(fake_netdriver):
    requests.post(f"{fake_netdriver.url}/Plugin.Activate")
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def pictures(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.html")) if folder.is_dir() else []


def _data(path: Path) -> dict:
    found = re.search(
        r'<script type="application/json" id="fakedriver-data">(.*?)</script>',
        path.read_text(),
        re.DOTALL,
    )
    assert found
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_a_failing_test_writes_its_picture_and_says_where(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FAILING)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    written = pictures(pytester.path / ".fakedriver-reports")
    nodeid = "test_a_failing_test_writes_its_picture_and_says_where.py::test_broken"
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]  # the node id, told apart
    assert [p.name for p in written] == [f"{nodeid.replace('::', '_')}-{digest}.html"]
    result.stdout.fnmatch_lines(
        [
            "*- fake_netdriver journal -*",
            "fake at http://fake-netdriver (seed 0, strict=True)",
            "calls:",
            "  #0 Plugin.Activate",
            "  #1 NetworkDriver.Join *!! 200 network n1 not found",
            "",
            f"picture: {written[0]}",
        ],
        consecutive=True,
    )
    data = _data(written[0])
    assert [lane["name"] for lane in data["lanes"]] == ["http://fake-netdriver"]
    calls = data["lanes"][0]["calls"]
    assert [c["method"] for c in calls] == ["Plugin.Activate", "NetworkDriver.Join"]
    assert calls[1]["error"] == "network n1 not found"
    assert "my orchestrator is broken" in data["failure"]
    assert data["lanes"][0]["state"]["epoch"] == 1 and data["lanes"][0]["leaks"] == []


def test_a_served_fakes_test_gets_a_picture_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_broken(fake_netdriver_server):
            assert False
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    (written,) = pictures(pytester.path / ".fakedriver-reports")
    result.stdout.fnmatch_lines([f"picture: {written}"])
    assert _data(written)["lanes"][0]["name"].endswith("/plugin.sock")


def test_a_test_without_a_fake_gets_no_picture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_broken():\n    assert False\n")
    run(pytester).assert_outcomes(failed=1)
    assert not (pytester.path / ".fakedriver-reports").exists()


def test_the_folder_is_an_option_and_empty_turns_it_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FAILING)
    result = run(pytester, "--fakedriver-report-dir=")
    result.assert_outcomes(passed=1, failed=1)
    assert "picture:" not in result.stdout.str()
    assert not (pytester.path / ".fakedriver-reports").exists()
    result = run(pytester, "--fakedriver-report-dir", "out/pics")
    (written,) = pictures(pytester.path / "out" / "pics")
    result.stdout.fnmatch_lines([f"picture: {written}"])


def test_the_ini_option_names_the_folder_under_the_rootdir(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfake_netdriver_report_dir = pictures\n")
    pytester.makepyfile(FAILING)
    run(pytester).assert_outcomes(passed=1, failed=1)
    assert len(pictures(pytester.path / "pictures")) == 1
    pytester.makeini("[pytest]\nfake_netdriver_report_dir =\n")
    result = run(pytester)
    assert "picture:" not in result.stdout.str()


def test_a_picture_holds_what_a_call_sent_as_text_only() -> None:
    """A request is inlined as JSON that cannot close its script element."""
    fake = FakeNetDriver()
    body = {"NetworkID": "</script><script>document.title='pwned'</script><!--"}
    fake.handle("/NetworkDriver.DeleteNetwork", json.dumps(body).encode())
    page = render("t</title>", data={"lanes": [fake_data(fake, "x")], "order": None})
    data = page.split('id="fakedriver-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data
    assert json.loads(data)["lanes"][0]["calls"][0]["request"] == body
    assert "<title>t&lt;/title&gt;</title>" in page


CLUSTER = """
import pytest, requests

@pytest.mark.fake_netdriver_cluster(nodes=3)
def test_split_brain(fake_netdriver_cluster):
    urls = fake_netdriver_cluster.urls
    for node in urls.values():
        requests.post(f"{node}/Plugin.Activate")
    with fake_netdriver_cluster.partition("node-2"):
        for node, url in urls.items():
            try:
                requests.post(f"{url}/NetworkDriver.GetCapabilities", timeout=5)
            except requests.ConnectionError:
                pass
        try:
            requests.post(f"{urls['node-2']}/NetworkDriver.GetCapabilities", timeout=5)
        except requests.ConnectionError:
            pass
    requests.post(f"{urls['node-2']}/NetworkDriver.GetCapabilities")
    assert False, "node-2 never answered"
"""


@pytest.mark.browser
def test_a_failing_cluster_tests_picture_shows_the_partitioned_nodes_dropped_calls(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(CLUSTER)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    (written,) = pictures(pytester.path / ".fakedriver-reports")
    result.stdout.fnmatch_lines(["*- fake_netdriver_cluster timeline -*", f"picture: {written}"])
    data = _data(written)
    assert [lane["name"] for lane in data["lanes"]] == ["node-1", "node-2", "node-3"]
    assert len(data["order"]) == 8 and data["cuts"][0]["lane"] == 1
    with chromium() as browser:
        browser.get(written.as_uri())
        wait_for(lambda: browser.execute_script("return document.body.dataset.rendered"))
        dropped = browser.find_elements(
            "css selector", '.row[data-lane="node-2"][data-verdict="dropped"]'
        )
        assert len(dropped) == 2
        assert all("fault: partition of node-2" in row.text for row in dropped)
        shaded = browser.execute_script(
            "return [...document.querySelectorAll('.row')].filter(row =>"
            " row.querySelector('.cut[data-lane=\"node-2\"]')).map(row => row.dataset.seq)"
        )
        assert shaded == ["3", "4", "5", "6"]  # every call while node-2 was cut off
        assert not browser.find_elements("css selector", '.cut:not([data-lane="node-2"])')
        ok = browser.find_elements("css selector", '.row[data-lane="node-2"][data-verdict="ok"]')
        assert len(ok) == 2  # before and after the partition
        failure = browser.find_element("id", "failure")
        assert failure.is_displayed() and "node-2 never answered" in failure.text
        assert not browser.find_element("id", "actions").is_displayed()  # a picture: no actions
        screenshot(browser, "report-cluster")
        browser.find_element("id", "tab-leaks").click()
        assert "Clean: nothing left behind." in browser.find_element("id", "leaks").text
