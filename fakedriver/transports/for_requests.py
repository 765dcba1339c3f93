"""The ``requests`` transport: calls to a routed fake's URL are served in-process through
``responses``.

``requests`` picks an adapter per URL (``Session.get_adapter``); for a routed fake's URL
(including the ``http+unix://`` form of requests-unixsocket) it gets this module's
adapter, whose ``send`` is one ``responses.RequestsMock``'s handler. Every other URL
keeps its usual adapter, so the user's own ``responses`` setup
(started before or after) and the network see exactly what they would without the fake,
and the fake's calls never appear in the user's ``responses.calls``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
import requests.adapters
import responses
from requests.sessions import merge_setting

from ..core.http import CONTENT_TYPE, not_allowed
from ..core.reply import Outcome, Reply
from .registry import serves


class FakeAdapter(requests.adapters.HTTPAdapter):
    """The adapter ``requests`` uses for a routed fake's URL: ``responses`` answers what
    it is sent (its mock's handler, called directly: nothing of ``requests`` is patched
    for it)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        return _send(self, request, *args, **kwargs)


class _Dispatch(responses.CallbackResponse):
    """Every request that reaches the adapter is for a routed fake."""

    def matches(self, request: requests.PreparedRequest) -> tuple[bool, str]:
        return True, ""


def _serve(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes] | Exception:
    found = ROUTES.find(request.url or "")
    if found is None:
        return requests.ConnectionError(f"no fake is routed at {request.url}")
    route, method = found
    verb = request.method or "GET"
    if verb != "POST":
        status, body = not_allowed(verb)
        return status, {"Content-Type": CONTENT_TYPE}, body
    timeout = _read_timeout(getattr(request, "req_kwargs", {}).get("timeout"))
    reply = route.fake.respond(method, _body(request.body), timeout=timeout)
    return RENDER[reply.outcome](reply, timeout)


_calls = responses.RequestsMock(assert_all_requests_are_fired=False)
_dispatch = _Dispatch(responses.POST, "http://fakedriver", _serve, content_type=None)
_calls.add(_dispatch)
_send = _calls.unbound_on_send()


def _reset() -> None:
    """Forget the calls ``responses`` recorded (it keeps every one while started)."""
    _calls.calls.reset()
    _dispatch.calls.reset()


def _patch() -> Callable[[], None]:
    usual = requests.Session.get_adapter
    usual_merge = requests.Session.merge_environment_settings

    def get_adapter(self: requests.Session, url: str) -> requests.adapters.BaseAdapter:
        return _adapter if ROUTES.find(url) is not None else usual(self, url)

    def merge_environment_settings(
        self: requests.Session, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """A call to a routed fake never leaves the process: no proxy or CA bundle of the
        environment applies to it, so its settings are merged as with ``trust_env`` off,
        without requests' two scans of ``os.environ`` (a fifth of a routed call's cost)."""
        if ROUTES.find(url) is None:
            return usual_merge(self, url, proxies, stream, verify, cert)
        return {
            "proxies": merge_setting(proxies, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }

    requests.Session.get_adapter = get_adapter  # type: ignore[method-assign]
    requests.Session.merge_environment_settings = merge_environment_settings  # type: ignore[method-assign]

    def stop() -> None:
        requests.Session.get_adapter = usual  # type: ignore[method-assign]
        requests.Session.merge_environment_settings = usual_merge  # type: ignore[method-assign]

    return stop


#: The routes ``requests`` calls are served by.
ROUTES = serves("requests", _patch, _reset)
_adapter = FakeAdapter()


def _answer(reply: Reply, timeout: float | None) -> tuple[int, dict[str, str], bytes]:
    return reply.status, {"Content-Type": CONTENT_TYPE}, reply.body


def _dropped(reply: Reply, timeout: float | None) -> Exception:
    return requests.ConnectionError(f"{reply.why}: connection closed before the answer")


def _cut(reply: Reply, timeout: float | None) -> Exception:
    why = f"{reply.why}: connection closed in the middle of the answer"
    return requests.exceptions.ChunkedEncodingError(why)


def _timed_out(reply: Reply, timeout: float | None) -> Exception:
    return requests.ReadTimeout(f"{reply.why}: no answer within {timeout} s")


#: What ``requests`` gives its caller for each outcome: the response (status, headers and
#: body, as a ``responses`` callback gives it), or the error it raises.
RENDER: dict[
    Outcome, Callable[[Reply, float | None], tuple[int, dict[str, str], bytes] | Exception]
] = {
    Outcome.ANSWER: _answer,
    Outcome.DROP_BEFORE: _dropped,
    Outcome.DROP_MID_BODY: _cut,
    Outcome.TIMED_OUT: _timed_out,
    Outcome.NEVER_ANSWERED: lambda reply, timeout: reply.never_answered(),
}


def _read_timeout(timeout: Any) -> float | None:
    """The read part of a requests ``timeout`` (a number or a (connect, read) pair)."""
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    return None if timeout is None else float(timeout)


def _body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes):
        return body
    if hasattr(body, "read"):
        return bytes(body.read())
    return b"".join(body)  # an iterable of chunks
