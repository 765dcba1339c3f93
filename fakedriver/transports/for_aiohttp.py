"""The ``aiohttp`` transport: calls to a routed fake's URL are served in-process through
aioresponses, failing as aiohttp fails.

One ``aioresponses`` mock serves every routed URL and passes every other request through
to aiohttp (or to a mock of the user's started before it; one started after it needs
``passthrough=[fake.url]``). A dropped connection is ``aiohttp.ServerDisconnectedError``
(``aiohttp.ClientPayloadError`` in the middle of the answer), a hang past the request's
timeout (aiohttp's default: 300 s, on the fake's clock) ``aiohttp.ServerTimeoutError``.
A call that a rule may hold runs in a worker thread, so it never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import aiohttp
from aioresponses import CallbackResult, aioresponses

from ..core.http import CONTENT_TYPE, not_allowed
from ..core.reply import Outcome, Reply
from .registry import Registry, Routed

VERBS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
#: aiohttp's own default: ``ClientTimeout(total=300)``.
DEFAULT_TIMEOUT = 300.0
_mock: aioresponses | None = None


def _patch() -> Callable[[], None]:
    global _mock
    mock = aioresponses(passthrough_unmatched=True)
    mock.start()
    _mock = mock

    def stop() -> None:
        global _mock
        mock.stop()
        _mock = None

    return stop


def _changed(routes: list[Routed]) -> None:
    """Register the URLs of the active routes (aioresponses matches by pattern)."""
    if _mock is None:
        return
    _mock.clear()
    for route in routes:
        for verb in VERBS:
            _mock.add(route.pattern, method=verb, callback=partial(_callback, verb), repeat=True)


#: The routes aiohttp calls are served by.
ROUTES = Registry(_patch, _changed)


async def _callback(verb: str, url: Any, **kwargs: Any) -> CallbackResult:
    found = ROUTES.find(str(url))
    if found is None:
        raise aiohttp.ClientConnectionError(f"no fake is routed at {url}")
    route, method = found
    if verb != "POST":
        status, body = not_allowed(verb)
        return CallbackResult(status=status, body=body, content_type=CONTENT_TYPE)
    body, timeout = _body(kwargs), _timeout(kwargs.get("timeout"))
    driver = route.fake
    if driver.may_block:
        reply = await asyncio.to_thread(driver.respond, method, body, timeout=timeout)
    else:
        reply = driver.respond(method, body, timeout=timeout)
    rendered = RENDER[reply.outcome](reply, timeout)
    if isinstance(rendered, Exception):
        raise rendered
    return rendered


def _answer(reply: Reply, timeout: float | None) -> CallbackResult:
    return CallbackResult(status=reply.status, body=reply.body, content_type=CONTENT_TYPE)


def _cut(reply: Reply, timeout: float | None) -> Exception:
    return aiohttp.ClientPayloadError(
        f"{reply.why}: response payload is not completed "
        f"({len(reply.body) // 2} of {len(reply.body)} bytes)"
    )


def _timed_out(reply: Reply, timeout: float | None) -> Exception:
    return aiohttp.ServerTimeoutError(f"{reply.why}: no answer within {timeout} s")


#: What aiohttp gives its caller for each outcome: the response, or the error it raises.
RENDER: dict[Outcome, Callable[[Reply, float | None], CallbackResult | Exception]] = {
    Outcome.ANSWER: _answer,
    Outcome.DROP_BEFORE: lambda reply, timeout: aiohttp.ServerDisconnectedError(
        f"{reply.why}: server disconnected"
    ),
    Outcome.DROP_MID_BODY: _cut,
    Outcome.TIMED_OUT: _timed_out,
    Outcome.NEVER_ANSWERED: lambda reply, timeout: reply.never_answered(),
}


def _body(kwargs: dict[str, Any]) -> bytes:
    if kwargs.get("json") is not None:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data")
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    raise TypeError(f"fakedriver routes aiohttp bodies of bytes, str or json=, not {data!r}")


def _timeout(value: Any) -> float | None:
    """The seconds the caller waits for the answer: a ``ClientTimeout``'s ``sock_read``
    or ``total``, a number, or aiohttp's default."""
    if isinstance(value, aiohttp.ClientTimeout):
        chosen = value.sock_read or value.total
        return None if chosen is None else float(chosen)
    if isinstance(value, int | float):
        return float(value)
    return DEFAULT_TIMEOUT
