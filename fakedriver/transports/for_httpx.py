"""The ``httpx`` transport (sync and async): calls to a routed fake's URL are served
in-process, failing as httpx fails.

httpx picks a transport per URL (``Client._transport_for_url``, as respx's ``using="httpx"``
mocker does); while a route is active, a routed fake's URL gets this module's transport,
and every other URL the client's own (or that of a respx mock started before or after the
route: the fake's calls never reach respx's routes, and respx's never reach the fake). A
dropped connection is ``httpx.RemoteProtocolError``, a hang past the client's read timeout
(httpx's default: 5 s, on the fake's clock) ``httpx.ReadTimeout``. Under ``AsyncClient`` a
call that a rule may hold runs in a worker thread, so a held call never blocks the event
loop; any other is served on the loop, with no thread hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from ..core.http import CONTENT_TYPE, not_allowed
from ..core.ports import Responder
from ..core.reply import Outcome, Reply
from .registry import Routed, serves

_HEADERS = [(b"Content-Type", CONTENT_TYPE.encode())]


def serve(driver: Responder, method: str, request: httpx.Request) -> httpx.Response:
    """Serve ``request`` on ``driver``; raise what httpx raises for a dropped or hung call."""
    if request.method != "POST":
        status, body = not_allowed(request.method)
        return httpx.Response(status, content=body, headers=_HEADERS)
    timeout = _timeout(request)
    return _render(driver.respond(method, request.content, timeout=timeout), request, timeout)


def _timeout(request: httpx.Request) -> float | None:
    timeout: float | None = request.extensions.get("timeout", {}).get("read")
    return timeout


def _render(reply: Reply, request: httpx.Request, timeout: float | None) -> httpx.Response:
    rendered = RENDER[reply.outcome](reply, request, timeout)
    if isinstance(rendered, Exception):
        raise rendered
    return rendered


def _answer(reply: Reply, request: httpx.Request, timeout: float | None) -> httpx.Response:
    return httpx.Response(reply.status, content=reply.body, headers=_HEADERS)


def _dropped(reply: Reply, request: httpx.Request, timeout: float | None) -> Exception:
    why = f"{reply.why}: server disconnected without sending a response"
    return httpx.RemoteProtocolError(why, request=request)


def _cut(reply: Reply, request: httpx.Request, timeout: float | None) -> Exception:
    why = (
        f"{reply.why}: peer closed connection without sending complete message body: "
        f"received {len(reply.body) // 2} bytes, expected {len(reply.body)}"
    )
    return httpx.RemoteProtocolError(why, request=request)


def _timed_out(reply: Reply, request: httpx.Request, timeout: float | None) -> Exception:
    return httpx.ReadTimeout(f"{reply.why}: no answer within {timeout} s", request=request)


#: What httpx gives its caller for each outcome: a response, or the error it raises.
RENDER: dict[Outcome, Callable[[Reply, httpx.Request, float | None], httpx.Response | Exception]]
RENDER = {
    Outcome.ANSWER: _answer,
    Outcome.DROP_BEFORE: _dropped,
    Outcome.DROP_MID_BODY: _cut,
    Outcome.TIMED_OUT: _timed_out,
    Outcome.NEVER_ANSWERED: lambda reply, request, timeout: reply.never_answered(),
}


async def serve_async(driver: Responder, method: str, request: httpx.Request) -> httpx.Response:
    """`serve()` for an event loop: in a worker thread when a rule may hold the call
    (`Responder.respond_now()` says so, in the same step as it serves any other)."""
    if request.method == "POST":
        reply = driver.respond_now(method, request.content)
        if reply is not None:
            return _render(reply, request, _timeout(request))
        return await asyncio.to_thread(serve, driver, method, request)
    return serve(driver, method, request)


class _Routed(httpx.BaseTransport):
    """The transport of a routed fake's URL, for ``httpx.Client``."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        route, method = _found(request)
        request.read()
        return serve(route.fake, method, request)


class _AsyncRouted(httpx.AsyncBaseTransport):
    """The transport of a routed fake's URL, for ``httpx.AsyncClient``."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route, method = _found(request)
        await request.aread()
        return await serve_async(route.fake, method, request)


def _found(request: httpx.Request) -> tuple[Routed, str]:
    found = ROUTES.find(str(request.url))
    if found is None:  # the route stopped after the client chose this transport
        raise httpx.ConnectError(f"no fake is routed at {request.url}", request=request)
    return found


_SYNC, _ASYNC = _Routed(), _AsyncRouted()


#: What httpx asks for the transport of a URL (on ``Client`` and ``AsyncClient``).
CHOOSE = "_transport_for_url"


def _patch() -> Callable[[], None]:
    sync_usual = getattr(httpx.Client, CHOOSE)
    async_usual = getattr(httpx.AsyncClient, CHOOSE)

    def sync_for_url(client: httpx.Client, url: httpx.URL) -> httpx.BaseTransport:
        return _SYNC if ROUTES.find(str(url)) is not None else sync_usual(client, url)

    def async_for_url(client: httpx.AsyncClient, url: httpx.URL) -> httpx.AsyncBaseTransport:
        return _ASYNC if ROUTES.find(str(url)) is not None else async_usual(client, url)

    setattr(httpx.Client, CHOOSE, sync_for_url)
    setattr(httpx.AsyncClient, CHOOSE, async_for_url)

    def stop() -> None:
        setattr(httpx.Client, CHOOSE, sync_usual)
        setattr(httpx.AsyncClient, CHOOSE, async_usual)

    return stop


#: The routes httpx calls are served by.
ROUTES = serves("httpx", _patch)


def _path_method(request: httpx.Request) -> str:
    return request.url.path.lstrip("/")


def client(driver: Responder, url: str, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` served by ``driver`` in-process, at ``url``."""
    kwargs.setdefault("base_url", url)
    transport = httpx.MockTransport(lambda request: serve(driver, _path_method(request), request))
    return httpx.Client(transport=transport, **kwargs)


def async_client(driver: Responder, url: str, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` served by ``driver`` in-process, at ``url``."""
    kwargs.setdefault("base_url", url)

    async def handler(request: httpx.Request) -> httpx.Response:
        return await serve_async(driver, _path_method(request), request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), **kwargs)
