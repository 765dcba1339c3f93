"""Routing ``requests`` calls to a fake in-process, through ``responses``.

While a :class:`Route` is active, every ``requests`` call (including the
``http+unix://`` URLs of requests-unixsocket) to the fake's base URL or socket is served by
the fake; every other URL goes on to whatever would have handled it otherwise: the
network, or the user's own ``responses`` setup.
"""

from __future__ import annotations

import contextlib
import re
from contextlib import ContextDecorator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests.adapters
import responses

from ._wire import encode

if TYPE_CHECKING:
    import httpx

    from ._app import FakeNetDriver

DEFAULT_URL = "http://fake-netdriver"
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"


class _AnyVerb(responses.CallbackResponse):
    """One registration for every HTTP verb: the fake answers them all (405 but for POST)."""

    def matches(self, request: requests.PreparedRequest) -> tuple[bool, str]:
        if not self._url_matches(self.url, str(request.url)):
            return False, "URL does not match"
        return True, ""


class Route(ContextDecorator):
    """Serve ``requests`` calls to ``url`` (and to ``socket`` over ``http+unix://``) from
    ``fake``. Use as a context manager (it returns the fake) or a decorator.

    :param fake: the driver to route to.
    :param url: its base URL; calls go to ``<url>/NetworkDriver.Join`` and so on.
    :param socket: also route ``http+unix://<quoted socket path>/...``, the URL form that
        requests-unixsocket users write for ``/run/docker/plugins/NAME.sock``.
    """

    def __init__(self, fake: FakeNetDriver, url: str = DEFAULT_URL, socket: str | None = None):
        self.fake = fake
        self.url = url.rstrip("/")
        self.socket = socket
        bases = [re.escape(self.url)]
        if socket:
            bases.append(re.escape("http+unix://" + quote(socket, safe="")))
        self.pattern = re.compile(rf"^(?:{'|'.join(bases)})/(?P<method>[^/?#]*)", re.IGNORECASE)
        self._mock: responses.RequestsMock | None = None
        self._joined: list[tuple[responses.RequestsMock, list[responses.BaseResponse]]] = []

    def start(self) -> None:
        if self._mock is not None:
            raise RuntimeError("this route is already active")
        # Unmatched URLs go to whatever handled them before: the network, or a
        # responses mock the user started earlier.
        earlier: Any = requests.adapters.HTTPAdapter.send
        mock = responses.RequestsMock(
            assert_all_requests_are_fired=False, real_adapter_send=earlier
        )
        self._register(mock)
        mock.add_passthru(re.compile(".*"))
        mock.start()
        self._mock = mock
        # A mock the user starts later (``@responses.activate``, ``RequestsMock()``)
        # patches over this one, so while the route is active every mock that starts
        # learns the fake's URL too, and forgets it before it stops (so that its
        # assert_all_requests_are_fired does not count the fake's entries).
        original_start, original_stop = responses.RequestsMock.start, responses.RequestsMock.stop
        route = self

        def start(mock: responses.RequestsMock) -> None:
            original_start(mock)
            route._register(mock)

        def stop(mock: responses.RequestsMock, allow_assert: bool = True) -> None:
            route._unregister(mock)
            original_stop(mock, allow_assert)

        self._originals = (original_start, original_stop)
        self._patches = (start, stop)
        responses.RequestsMock.start, responses.RequestsMock.stop = start, stop  # type: ignore[method-assign,assignment]
        if responses.mock._patcher is not None:  # responses.mock already active
            self._register(responses.mock)
        self.fake.url, self.fake.socket_path = self.url, self.socket

    def _register(self, mock: responses.RequestsMock) -> None:
        registered = mock.registered()
        if any(getattr(r, "callback", None) == self._serve for r in registered):
            return
        added = [mock.add(_AnyVerb("POST", self.pattern, self._serve, content_type=None))]
        if mock is not self._mock:
            self._joined.append((mock, added))

    def _unregister(self, mock: responses.RequestsMock) -> None:
        for joined, added in self._joined:
            if joined is mock:
                for registered in added:
                    with contextlib.suppress(ValueError):  # the user may have reset it
                        mock.remove(registered)
        self._joined = [(m, added) for m, added in self._joined if m is not mock]

    def stop(self) -> None:
        if self._mock is None:
            return
        if (responses.RequestsMock.start, responses.RequestsMock.stop) == self._patches:
            responses.RequestsMock.start, responses.RequestsMock.stop = self._originals  # type: ignore[method-assign]
        self._mock.stop()
        self._mock = None
        for mock, _ in list(self._joined):
            self._unregister(mock)

    def __enter__(self) -> FakeNetDriver:
        self.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(
        self, request: requests.PreparedRequest
    ) -> tuple[int, dict[str, str], bytes] | Exception:
        if request.method != "POST":
            answer = {"Err": f"method {request.method} not allowed; use POST"}
            body = b"" if request.method == "HEAD" else encode(answer)
            return 405, {"Content-Type": CONTENT_TYPE}, body
        match = self.pattern.match(request.url or "")
        method = match.group("method") if match else ""
        timeout = _read_timeout(getattr(request, "req_kwargs", {}).get("timeout"))
        reply = self.fake.respond(f"/{method}", _body(request.body), timeout=timeout)
        fault = f"fakedriver fault ({reply.call.fault})"
        if reply.timed_out:
            return requests.ReadTimeout(f"{fault}: no answer within {timeout} s")
        if reply.drop == "before":
            return requests.ConnectionError(f"{fault}: connection closed before the answer")
        if reply.drop == "mid_body":
            return requests.exceptions.ChunkedEncodingError(
                f"{fault}: connection closed in the middle of the answer"
            )
        return reply.status, {"Content-Type": CONTENT_TYPE}, reply.body


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


def routed(
    fake: FakeNetDriver | None = None,
    url: str = DEFAULT_URL,
    socket: str | None = None,
    **persona: Any,
) -> Route:
    """A :class:`Route` to ``fake`` (a new ``FakeNetDriver(**persona)`` when omitted)::

    with fakedriver.routed(url="http://plugin") as fake:
        requests.post("http://plugin/Plugin.Activate")
    """
    if fake is None:
        from ._app import FakeNetDriver

        fake = FakeNetDriver(**persona)
    elif persona:
        raise TypeError("pass persona options or a fake, not both")
    return Route(fake, url, socket)


def httpx_client(fake: FakeNetDriver, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose requests are served by ``fake`` in-process."""
    import httpx

    kwargs.setdefault("base_url", fake.url or DEFAULT_URL)
    return httpx.Client(transport=httpx.WSGITransport(app=fake), **kwargs)
