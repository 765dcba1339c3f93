"""A real web page cannot drive the fake (issue 17): headless Chromium opens a page of
another local origin whose script POSTs a plugin call to the fake's loopback TCP port, as
any site the user visits could. Skipped, loudly, where Debian's chromium is not installed
(``apt-get install chromium``)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fakedriver import FakeNetDriver
from fakedriver.server.server import PluginServer

pytestmark = pytest.mark.browser  # the browser tier: Chromium, against a real server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: The attacker's page: a no-cors fetch (a "simple" text/plain POST, which needs no
#: preflight) of CreateNetwork to the fake; the page's title says whether it went out.
PAGE = b"""<html><body><script>
const body = JSON.stringify({NetworkID: "csrf-net", Options: {}, IPv4Data: [], IPv6Data: []});
const url = location.hash.slice(1) + "/NetworkDriver.CreateNetwork";
fetch(url, {method: "POST", mode: "no-cors", body})
  .then(answer => { document.title = "sent " + answer.type; })
  .catch(error => { document.title = "failed " + error; });
</script></body></html>
"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    """The attacker's site: another origin (localhost, another port)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_page_in_headless_chromium_cannot_create_a_network_over_tcp(
    site: str, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        if os.environ.get("FAKEDRIVER_REQUIRE_BROWSER") == "1":
            pytest.fail("FAKEDRIVER_REQUIRE_BROWSER=1 and no chromium (apt-get install chromium)")
        pytest.skip("SKIPPED LOUDLY: no chromium here (apt-get install chromium)")
    fake, log = FakeNetDriver(), io.StringIO()
    server = PluginServer(fake, tcp=("127.0.0.1", 0), log=log)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = f"http://127.0.0.1:{server.listener.getsockname()[1]}"
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless=new",
                *(["--no-sandbox"] if os.geteuid() == 0 else []),
                "--disable-gpu",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                f"{site}#{target}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.close()
        thread.join(5)
    assert "<title>sent opaque</title>" in done.stdout, done.stderr[-2000:]  # it went out
    assert "refused a request: 403 POST /NetworkDriver.CreateNetwork" in log.getvalue()
    assert fake.state.networks == {} and fake.calls == []
