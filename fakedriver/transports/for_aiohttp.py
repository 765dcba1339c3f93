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
from aiohttp import ClientSession
from aioresponses import CallbackResult, aioresponses
from aioresponses.core import RequestMatch

from ..core.http import CONTENT_TYPE, not_allowed
from ..core.reply import Outcome, Reply
from .registry import serves

VERBS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
#: aiohttp's own default: ``ClientTimeout(total=300)``.
DEFAULT_TIMEOUT = 300.0


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
    reply = driver.respond_now(method, body)  # None: a rule may hold it, so not on the loop
    if reply is None:
        reply = await asyncio.to_thread(driver.respond, method, body, timeout=timeout)
    rendered = RENDER[reply.outcome](reply, timeout)
    if isinstance(rendered, Exception):
        raise rendered
    return rendered


class _Unrecorded(dict[Any, list[Any]]):
    """aioresponses' record of requests, which keeps nothing: a patch kept started across
    tests (see ``registry.keep()``) would otherwise keep every request ever made, the
    ones passed through to aiohttp included."""

    def setdefault(self, key: Any, default: Any = None) -> list[Any]:
        return []

    def __missing__(self, key: Any) -> list[Any]:
        return []


class _Patcher:
    """aioresponses' patch of ``ClientSession._request``, made by assignment: its own
    (``unittest.mock.patch(autospec=True)``) takes about 2 ms to start, every test."""

    def __init__(self, mock: _Mock) -> None:
        self.mock = mock
        self.temp_original: Any = None  # what aioresponses passes calls through to
        self.return_value: Any = None  # set by aioresponses.start(), unused here

    def start(self) -> None:
        usual, handle = getattr(ClientSession, _REQUEST), self.mock.handle

        async def request(session: ClientSession, *args: Any, **kwargs: Any) -> Any:
            return await handle(session, *args, **kwargs)

        self.temp_original = usual
        setattr(ClientSession, _REQUEST, request)

    def stop(self) -> None:
        setattr(ClientSession, _REQUEST, self.temp_original)


#: What aiohttp makes every request with, which aioresponses patches.
_REQUEST = "_request"


class _Mock(aioresponses):
    """The one mock of aiohttp: a call to a routed URL is answered by `_callback`, any
    other passes through; it records nothing."""

    def __init__(self) -> None:
        super().__init__(passthrough_unmatched=True)
        self.requests = _Unrecorded()
        self.patcher = _Patcher(self)  # type: ignore[assignment]

    async def handle(self, session: ClientSession, *args: Any, **kwargs: Any) -> Any:
        """Answer one request of ``session``, as aioresponses does."""
        return await self._request_mock(session, *args, **kwargs)

    def _build_request_call(self, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        return None  # nothing is recorded: no copy of the request to make

    def start(self) -> None:
        super().start()
        self._matches.update(_MATCHES)

    def reset(self) -> None:
        """Close the responses given so far (the mock keeps them to close at its stop)."""
        for response in self._responses:
            response.close()
        self._responses.clear()


def _routed(url: Any) -> bool:
    return ROUTES.find(str(url)) is not None


def _matcher(verb: str) -> RequestMatch:
    """The matcher of every routed URL for ``verb`` (found by URL, see `_routed()`)."""
    match = RequestMatch(verb, method=verb, callback=partial(_callback, verb), repeat=True)
    match.match_func = _routed
    return match


_MATCHES = {verb: _matcher(verb) for verb in VERBS}
_mock = _Mock()


def _patch() -> Callable[[], None]:
    _mock.start()
    return _mock.stop


#: The routes aiohttp calls are served by.
ROUTES = serves("aiohttp", _patch, _mock.reset)


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
