"""Every way a client reaches a fake, behind one small interface, for the transport
contract suite: each transport serves a fake for a block, sends one call, and names the
exceptions its own client library raises for a dropped connection, an answer cut in the
middle, and a timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import pytest
import requests
from werkzeug.test import Client

import fakedriver
from fakedriver import FakeNetDriver, RealClock

URL = "http://fake-contract"


@dataclass(frozen=True)
class Transport:
    name: str
    dropped: type[BaseException]
    cut: type[BaseException]
    timeout: type[BaseException] | None  # None: the client has no timeout to give up on
    real_time: bool = False  # latency and hangs run on a real clock

    def fake(self, **persona: Any) -> FakeNetDriver:
        return FakeNetDriver(clock=RealClock() if self.real_time else None, **persona)

    @contextlib.contextmanager
    def serving(self, fake: FakeNetDriver) -> Iterator[str]:
        """Serve ``fake``; yield the base URL (or socket path) to send to."""
        if self.name == "socket":
            with fakedriver.serving(fake) as served:
                yield served.socket_path
        elif self.name == "wsgi":
            yield URL
        else:
            with fakedriver.routed(fake, url=URL, clients=[self.name.split("-")[0]]):
                yield URL

    def send(
        self, fake: FakeNetDriver, where: str, method: str, body: bytes, timeout: float | None
    ) -> tuple[int, bytes]:
        """One POST; the status and the raw body, or the client's own exception."""
        url = f"{where}/{method}"
        if self.name == "wsgi":
            response = Client(fake).post(f"/{method}", data=body)
            return response.status_code, response.get_data()
        if self.name == "requests":
            answer = requests.post(url, data=body, timeout=timeout)
            return answer.status_code, answer.content
        if self.name == "httpx":
            reply = httpx.post(url, content=body, timeout=timeout)
            return reply.status_code, reply.content
        if self.name == "socket":
            transport = httpx.HTTPTransport(uds=where)
            with httpx.Client(transport=transport, timeout=timeout) as client:
                reply = client.post(f"http://plugin/{method}", content=body)
                return reply.status_code, reply.content
        return asyncio.run(_send_async(self.name, url, body, timeout))


async def _send_async(name: str, url: str, body: bytes, timeout: float | None) -> tuple[int, bytes]:
    if name == "httpx-async":
        async with httpx.AsyncClient(timeout=timeout) as client:
            reply = await client.post(url, content=body)
            return reply.status_code, reply.content
    limit = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=limit) as session,
        session.post(url, data=body, timeout=limit) as response,
    ):
        return response.status, await response.read()


TRANSPORTS = [
    Transport("wsgi", fakedriver.ConnectionDropped, fakedriver.ConnectionDropped, None),
    Transport(
        "requests",
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        requests.ReadTimeout,
    ),
    Transport("httpx", httpx.RemoteProtocolError, httpx.RemoteProtocolError, httpx.ReadTimeout),
    Transport(
        "httpx-async", httpx.RemoteProtocolError, httpx.RemoteProtocolError, httpx.ReadTimeout
    ),
    Transport(
        "aiohttp",
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientPayloadError,
        asyncio.TimeoutError,
    ),
    Transport(
        "socket",
        httpx.RemoteProtocolError,
        httpx.RemoteProtocolError,
        httpx.ReadTimeout,
        real_time=True,
    ),
]


def param(transport: Transport, *values: Any, id: str | None = None) -> Any:
    """``transport`` (and ``values``) as a parametrize case, marked ``socket`` when it is
    served on a real socket (the socket tier)."""
    marks = [pytest.mark.socket] if transport.name == "socket" else []
    return pytest.param(transport, *values, id=id or transport.name, marks=marks)
