"""The ``httpx`` transport (sync and async): calls to a routed fake's URL are served
in-process through respx, failing as httpx fails.

One ``respx`` router (``using="httpx"``: it wraps each client's transport, so respx's own
users, who mock httpcore underneath, are untouched) serves every routed URL and passes
every other URL through to the client's real transport. A dropped connection is
``httpx.RemoteProtocolError``, a hang past the client's read timeout (httpx's default: 5
s, on the fake's clock) ``httpx.ReadTimeout``. Under ``AsyncClient`` a call that a rule
may hold runs in a worker thread, so a held call never blocks the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import respx

from ..core.http import CONTENT_TYPE, not_allowed
from ..core.ports import Responder
from ..core.reply import Outcome, Reply
from .registry import Registry

_HEADERS = [(b"Content-Type", CONTENT_TYPE.encode())]


def serve(driver: Responder, method: str, request: httpx.Request) -> httpx.Response:
    """Serve ``request`` on ``driver``; raise what httpx raises for a dropped or hung call."""
    if request.method != "POST":
        status, body = not_allowed(request.method)
        return httpx.Response(status, content=body, headers=_HEADERS)
    timeout = request.extensions.get("timeout", {}).get("read")
    reply = driver.respond(method, request.content, timeout=timeout)
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
    """`serve()` for an event loop: in a worker thread when a rule may hold the call."""
    if not driver.may_block:
        return serve(driver, method, request)
    return await asyncio.to_thread(serve, driver, method, request)


def _side_effect(request: httpx.Request) -> Any:
    found = ROUTES.find(str(request.url))
    if found is None:
        return request  # respx: pass through to the client's real transport
    route, method = found
    if not route.fake.may_block:  # nothing can hold the call: serve it here
        return serve(route.fake, method, request)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return serve(route.fake, method, request)
    return serve_async(route.fake, method, request)


def _patch() -> Callable[[], None]:
    router = respx.MockRouter(using="httpx", assert_all_called=False, assert_all_mocked=True)
    router.route().mock(side_effect=_side_effect)
    router.start()
    return router.stop


#: The routes httpx calls are served by.
ROUTES = Registry(_patch)


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
