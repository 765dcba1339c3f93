"""The same fake, reached by every client an orchestrator may be written with."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
import pytest


def test_an_async_client_sees_its_own_errors(fake_netdriver):
    fake_netdriver.fail("Join", kind="drop", times=1)  # the connection closes, unanswered

    async def join() -> httpx.Response:
        async with httpx.AsyncClient(base_url=fake_netdriver.url) as client:
            return await client.post("/NetworkDriver.Join", json={})

    with pytest.raises(httpx.RemoteProtocolError):  # what httpx raises for a real drop
        asyncio.run(join())
    fake_netdriver.calls.assert_called("Join", times=1)


def test_a_client_in_another_process(fake_netdriver_server):
    curl = subprocess.run(
        ["curl", "-s", "--unix-socket", fake_netdriver_server.socket_path,
         "-X", "POST", "http://plugin/Plugin.Activate"],
        capture_output=True, text=True, timeout=10, check=True,
    )
    assert curl.stdout == '{"Implements":["NetworkDriver","IpamDriver"]}\n'
    fake_netdriver_server.fake.calls.assert_called("Plugin.Activate", times=1)
