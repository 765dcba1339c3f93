"""The dashboard's listener: the page (`fakedriver.server.page`) at ``/`` and the control
API behind it, on loopback TCP, same-origin. ``fakedriver serve --dashboard PORT`` serves
its own fake's control API there; ``fakedriver dashboard TARGET`` forwards to a server
already running (its plugin socket, its ``--control-socket``, or its control API over
TCP with the token).

Who gets in. The control API refuses every browser request; this listener accepts one
only from its own page, and nobody without the listener's *secret* (random at start,
printed in the page's address to the user who started it, embedded in the page, sent
back as ``X-Fakedriver-Key`` by every control request the page makes):

* the ``Host`` must be a loopback name (``127.0.0.1``, ``[::1]``, ``localhost``, any
  port: ``ssh -L`` may forward another one): a page of another site whose name is made
  to resolve to 127.0.0.1 (DNS rebinding) sends its own name, and is refused;
* a request that carries ``Origin`` must come from the listener's own origin
  (``http://`` and that ``Host``), and one that carries ``Sec-Fetch-Site`` must say
  ``same-origin`` (or ``none``, a user opening the page): a page on another port of
  localhost is the same *site*, but another origin;
* ``GET /`` needs ``?key=SECRET``, every request under ``/fakedriver/`` the
  ``X-Fakedriver-Key: SECRET`` header (a header a page of another origin cannot send
  without a preflight, which is refused), and a POST or PUT a JSON body.

Everything else is a 403 (401 without the secret), served nothing and logged as
refused, as the plugin socket refuses a browser. The page and the answers say
``no-store``, ``no-referrer`` (the address carries the secret) and may not be framed.
"""

from __future__ import annotations

import hmac
import http.client
import ipaddress
import secrets
import socket
from collections.abc import Callable
from functools import partial
from typing import IO, TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ..core.http import encode
from .connection import Answer, Limits, Request
from .control import control
from .files import ServeError
from .page import policy, render
from .server import PluginServer

if TYPE_CHECKING:
    from ..fake import FakeNetDriver

#: Serves one control request: ``(verb, target, body) -> (status, JSON answer)``.
Backend = Callable[[str, str, bytes], tuple[int, bytes]]
#: The header the page sends the secret in.
KEY_HEADER = "x-fakedriver-key"
#: Seconds a forwarded control request may take.
FORWARD_TIMEOUT = 30.0
_COMMON = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
_JSON = (("Content-Type", "application/json"), *_COMMON)


def loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 without brackets) is this host's
    loopback: ``localhost``, 127.0.0.0/8 (also as the C library reads it: ``127.1``), ``::1``
    and the IPv4-mapped ``::ffff:127.x.y.z`` (which Python's ``is_loopback`` does not
    count)."""
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:  # 127.1, 0x7f.1: what bind() takes for 127.0.0.1
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _host_name(host: str) -> str:
    """The name in a ``Host`` header: ``[::1]:8000`` -> ``::1``, ``localhost`` ->
    ``localhost``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def local(fake: FakeNetDriver) -> Backend:
    """The control API of ``fake``, in this process."""

    def backend(verb: str, target: str, body: bytes) -> tuple[int, bytes]:
        status, answer = control(fake, verb, target, body)
        return status, encode(answer)

    return backend


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Remote:
    """The control API of a server already running: at a unix socket (a plugin socket,
    or a ``--control-socket``) or an ``http://HOST:PORT`` URL, with the bearer ``token``
    that server wants. Only the verb, path, query and JSON body are forwarded: none of the
    browser's headers, and no secret of the dashboard's.
    """

    def __init__(self, target: str, token: str | None = None) -> None:
        self.target, self.token = target, token
        if target.startswith("http://"):
            parts = urlsplit(target)
            if not parts.hostname or parts.path not in ("", "/") or parts.query:
                raise ServeError(f"{target}: give the control API's server as http://HOST:PORT")
            self.connect: Callable[[], http.client.HTTPConnection] = partial(
                http.client.HTTPConnection,
                parts.hostname,
                parts.port or 80,
                timeout=FORWARD_TIMEOUT,
            )
        elif "://" in target:
            raise ServeError(f"{target}: a dashboard forwards to a unix socket or http:// only")
        else:
            self.connect = partial(_UnixConnection, target, FORWARD_TIMEOUT)

    def __call__(self, verb: str, target: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body else {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        connection = self.connect()
        try:
            connection.request(verb, target, body=body or None, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read()
        except (OSError, http.client.HTTPException) as exc:
            why = f"cannot reach the control API at {self.target}: {exc}"
            return 502, encode({"Err": why})
        finally:
            connection.close()


class Dashboard:
    """Serves one listener's requests (a `PluginServer` handler): the page and the
    control API of ``backend`` behind it, to its own page only (see the module).

    :param title: what the page calls the server it shows (its address).
    :param log: where a refusal is said (one line), if anywhere.
    """

    def __init__(
        self, backend: Backend, title: str, log: Callable[[str], None] | None = None
    ) -> None:
        self.backend, self.title, self.log = backend, title, log
        #: The listener's secret: in the page's address, and in every control request.
        self.secret = secrets.token_urlsafe(32)

    def __call__(self, request: Request, gone: Callable[[], bool]) -> Answer:
        refused = self._refusal(request)
        if refused is not None:
            status, why = refused
            if self.log is not None:
                asked = f"{request.verb} {request.target.partition('?')[0][:200]}"
                self.log(f"fakedriver: dashboard refused a request: {status} {asked}: {why}")
            return Answer(status, encode({"Err": why}), headers=_JSON)
        path = request.target.partition("?")[0]
        if path == "/":
            nonce = secrets.token_urlsafe(16)
            page = render(self.title, key=self.secret, nonce=nonce).encode()
            headers = (
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", policy(nonce, live=True, header=True)),
                *_COMMON,
            )
            return Answer(200, page, headers=headers)
        status, body = self.backend(request.verb, request.target, request.body)
        return Answer(status, body, headers=_JSON)

    def _refusal(self, request: Request) -> tuple[int, str] | None:
        """Why ``request`` is refused (a status and the reason), or ``None``."""
        headers, verb = request.headers, request.verb
        host = headers.get("host", "")
        if not loopback(_host_name(host)):
            return 403, f"the dashboard answers at a loopback address only, not Host {host!r}"
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return 403, f"the dashboard answers its own page only, not one from {origin[:100]}"
        path, _, query = request.target.partition("?")
        page = path == "/"
        site = headers.get("sec-fetch-site")
        if site is not None and site != "same-origin" and not (page and site == "none"):
            return 403, f"the dashboard answers its own page only (Sec-Fetch-Site: {site[:40]})"
        if page:
            if verb not in ("GET", "HEAD"):
                return 405, f"method {verb} not allowed on the page"
            given = parse_qs(query).get("key", [""])[0]
            if not self._right(given):
                return 401, "open the page at the address fakedriver printed (with its ?key=)"
            return None
        if not path.startswith("/fakedriver/"):
            return 404, f"nothing at {path[:200]}"
        if not self._right(headers.get(KEY_HEADER, "")):
            return 401, f"a control request needs the dashboard's secret ({KEY_HEADER})"
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        if verb in ("POST", "PUT") and media != "application/json":
            return 415, "send the control request as Content-Type: application/json"
        return None

    def _right(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("latin-1", "replace"), self.secret.encode())


def listen(
    backend: Backend,
    address: tuple[str, int],
    *,
    title: str,
    log: IO[str] | None = None,
    log_format: str = "text",
    limits: Limits | None = None,
) -> tuple[PluginServer, Dashboard]:
    """A listener of the dashboard on ``address`` (a loopback host, and a port: 0 for any
    free one); serve it with ``serve_forever()`` in a thread, stop it with ``close()``.
    Refusals are logged to ``log`` as the plugin socket logs them.

    :raises ServeError: the host is not a loopback one, or it cannot be listened on.
    """
    host, port = address
    if not loopback(host):
        raise ServeError(
            f"the dashboard listens on loopback only (127.0.0.1, [::1], localhost), not "
            f"{host}: reach it from another host through ssh -L"
        )
    dashboard = Dashboard(backend, title)
    bind = "127.0.0.1" if host.lower() == "localhost" else host
    server = PluginServer(
        None,
        tcp=(bind, port),
        handler=dashboard,
        limits=limits,
        log=log,
        log_format=log_format,
    )
    dashboard.log = server.say
    return server, dashboard


def url(server: PluginServer, dashboard: Dashboard) -> str:
    """The page's address, with the secret: what to open in a browser."""
    return server.address.replace("tcp://", "http://") + f"/?key={dashboard.secret}"
