"""Speaking to a plugin as dockerd does: where it listens (`resolve()`), and one call
over HTTP/1.1 (`Client`), with the standard library's ``http.client``.

dockerd's requests (protocol.md §1.3): ``POST /Subsystem.Method``, ``Accept:
application/vnd.docker.plugins.v1.2+json``, ``Content-Length`` always (``0`` and no body
for calls without arguments), no ``Content-Type``, a body of compact JSON as Go's
``json.Encoder`` writes it, newline included (`go_json()`). Every call here has a
timeout: a plugin that never answers fails that call, it never stalls the caller.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: Where dockerd looks for a legacy plugin's socket, then its spec files (protocol.md §1.1).
PLUGIN_DIR = "/run/docker/plugins"
SPEC_DIRS = ("/etc/docker/plugins", "/usr/lib/docker/plugins")
ACCEPT = "application/vnd.docker.plugins.v1.2+json"
#: The seconds a call may take unless told (``fakedriver check --timeout``).
DEFAULT_TIMEOUT = 5.0


class TargetError(Exception):
    """The target cannot be found or reached; the message says why."""


def go_json(value: object) -> bytes:
    """A request body as dockerd's ``json.Encoder`` writes it (protocol.md §1.3): compact,
    ``<``, ``>`` and ``&`` escaped, a trailing newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode() + b"\n"


@dataclass(frozen=True)
class Target:
    """Where a plugin listens: a unix socket ``path``, or an ``http(s)://host:port`` URL.

    :param name: what the user gave (a path, a URL, a plugin name).
    :param how: how it was found (``"socket /run/docker/plugins/x.sock"``, ...).
    """

    name: str
    path: str | None = None
    url: str | None = None
    how: str = ""

    def __str__(self) -> str:
        return self.path if self.path is not None else str(self.url)


def resolve(
    target: str,
    *,
    plugin_dir: str = PLUGIN_DIR,
    spec_dirs: Sequence[str] = SPEC_DIRS,
    docker: str = "docker",
) -> Target:
    """The plugin ``target`` names, found as dockerd finds it.

    ``target`` is a unix socket path (``./x.sock``, ``/run/...``; ``unix://PATH`` too),
    an ``http://`` or ``https://`` URL, or a plugin name: ``PLUGIN_DIR/NAME.sock`` (or
    ``NAME/NAME.sock``), then in each of ``spec_dirs`` ``NAME.spec``, ``NAME/NAME.spec``,
    ``NAME.json``, ``NAME/NAME.json``; last, a managed plugin of that name, through
    ``docker plugin inspect`` (its socket is ``/run/docker/plugins/<id>/<socket>``).

    :raises TargetError: nothing of that name, or a file that is not what it should be.
    """
    if target.startswith(("http://", "https://")):
        return Target(target, url=target.rstrip("/"), how="URL")
    if target.startswith("unix://"):
        return _socket(target, target.removeprefix("unix://"), "socket")
    if "/" in target or os.path.exists(target):
        return _socket(target, target, "socket")
    for path in (f"{plugin_dir}/{target}.sock", f"{plugin_dir}/{target}/{target}.sock"):
        if _is_socket(path):
            return Target(target, path=path, how=f"socket {path}")
    for folder in spec_dirs:
        for name in (f"{target}.spec", f"{target}/{target}.spec"):
            if os.path.exists(os.path.join(folder, name)):
                return _spec(target, os.path.join(folder, name))
        for name in (f"{target}.json", f"{target}/{target}.json"):
            if os.path.exists(os.path.join(folder, name)):
                return _json_spec(target, os.path.join(folder, name))
    managed = _managed(target, plugin_dir, docker)
    if managed is not None:
        return managed
    raise TargetError(
        f"no plugin {target!r}: no {plugin_dir}/{target}.sock, no spec file in "
        f"{' or '.join(spec_dirs)}, and docker knows no managed plugin of that name"
    )


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _socket(name: str, path: str, how: str) -> Target:
    if not os.path.exists(path):
        raise TargetError(f"{path}: no such socket")
    if not _is_socket(path):
        raise TargetError(f"{path} is not a unix socket")
    return Target(name, path=path, how=f"{how} {path}")


def _from_url(name: str, url: str, how: str) -> Target:
    """A spec file's URL: ``unix://``, or ``tcp://``/``http://``/``https://`` (dockerd
    sends plain HTTP for every scheme but https)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return _socket(name, parts.path, how)
    if parts.scheme in ("tcp", "http", "https") and parts.netloc:
        scheme = "https" if parts.scheme == "https" else "http"
        return Target(name, url=f"{scheme}://{parts.netloc}", how=f"{how} -> {url}")
    raise TargetError(f"{how}: {url!r} is not a plugin address (Unknown protocol)")


def _spec(name: str, path: str) -> Target:
    with open(path, encoding="utf-8") as spec:
        return _from_url(name, spec.read().strip(), f"spec file {path}")


def _json_spec(name: str, path: str) -> Target:
    try:
        with open(path, encoding="utf-8") as spec:
            address = json.load(spec).get("Addr", "")
    except (ValueError, AttributeError) as exc:
        raise TargetError(f"spec file {path}: not a JSON object with Addr ({exc})") from None
    return _from_url(name, str(address), f"spec file {path}")


def _managed(name: str, plugin_dir: str, docker: str) -> Target | None:
    """A managed plugin's socket, from ``docker plugin inspect``; ``None`` when there is
    no docker, or it knows no such plugin."""
    if shutil.which(docker) is None:
        return None
    try:
        done = subprocess.run(
            [docker, "plugin", "inspect", "-f", "{{.Id}} {{.Config.Interface.Socket}}", name],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return None
    words = done.stdout.split()
    if done.returncode != 0 or len(words) != 2:
        return None
    return _socket(name, os.path.join(plugin_dir, *words), f"managed plugin {name}:")


# -- one call ---------------------------------------------------------------------------


@dataclass
class Exchange:
    """One call and its answer, as the client saw them.

    :param method: ``NetworkDriver.Join`` and the like.
    :param request: the request body sent (``None``: an empty body).
    :param status: the HTTP status; ``0`` when there was no answer (see ``error``).
    :param body: the raw answer.
    :param seconds: from the request's first byte to the answer's last.
    :param error: why there was no answer (a timeout, a closed connection), else ``None``.
    """

    method: str
    request: Any
    status: int = 0
    body: bytes = b""
    seconds: float = 0.0
    error: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def answer(self) -> Any:
        """The answer's first JSON value, or ``None`` when it is not JSON."""
        try:
            value, _ = json.JSONDecoder().raw_decode(self.body.decode("utf-8", "replace").strip())
        except ValueError:
            return None
        return value

    def brief(self) -> str:
        """``Join -> 200 {"Err": "x"}``: for a failure's list of calls."""
        short = self.method.partition(".")[2] or self.method
        if self.error is not None:
            return f"{short} -> {self.error}"
        text = self.body.decode("utf-8", "replace").strip()
        return f"{short} -> {self.status} {text[:160]}"


class _UnixConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client:
    """Calls one plugin as dockerd does, each call with a timeout. A connection is kept
    alive per thread (dockerd reuses its connections) and opened again after a failure.

    :param target: where the plugin listens.
    :param timeout: the seconds a call may take, connecting included.
    :param host: the ``Host`` header (28 sends ``plugin.moby.localhost`` on a socket).
    """

    def __init__(
        self, target: Target, timeout: float = DEFAULT_TIMEOUT, host: str = "plugin.moby.localhost"
    ) -> None:
        self.target, self.timeout, self.host = target, timeout, host
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[http.client.HTTPConnection] = []

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self.target.path is not None:
                connection = _UnixConnection(self.target.path, self.timeout)
            else:
                parts = urlsplit(str(self.target.url))
                if parts.scheme == "https":
                    context = ssl.create_default_context()
                    context.check_hostname = False  # as dockerd: InsecureSkipVerify
                    context.verify_mode = ssl.CERT_NONE
                    connection = http.client.HTTPSConnection(
                        parts.netloc, timeout=self.timeout, context=context
                    )
                else:
                    connection = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._open.append(connection)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def call(self, method: str, body: Any = None, raw: bytes | None = None) -> Exchange:
        """``POST /method`` with ``body`` (JSON, encoded as dockerd does; ``None``: no
        body) or the bytes ``raw``. Never raises for what the plugin does."""
        payload = raw if raw is not None else (b"" if body is None else go_json(body))
        return self.send(method, payload, [("Accept", ACCEPT)], request=body)

    def send(
        self,
        method: str,
        payload: bytes,
        headers: Sequence[tuple[str, str]] | Mapping[str, str],
        request: Any = None,
        verbatim: bool = False,
    ) -> Exchange:
        """Send ``payload`` with ``headers`` (``Host``, ``User-Agent`` and
        ``Content-Length`` are set here, unless ``verbatim``: then the headers go as
        given, in their order, and must say the length); the exchange, whatever
        happened."""
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        if not verbatim:
            pairs = [(k, v) for k, v in pairs if k.lower() not in ("host", "content-length")]
        exchange = Exchange(method.lstrip("/"), request)
        start = time.monotonic()
        for _ in (1, 2):
            connection = self._connection()
            reused = connection.sock is not None
            try:
                connection.putrequest(
                    "POST", "/" + method.lstrip("/"), skip_host=True, skip_accept_encoding=True
                )
                if not verbatim:
                    connection.putheader("Host", self.host)
                    connection.putheader("User-Agent", "Go-http-client/1.1")
                    connection.putheader("Content-Length", str(len(payload)))
                for name, value in pairs:
                    if verbatim or name.lower() != "user-agent":
                        connection.putheader(name, value)
                connection.endheaders(payload)
                response = connection.getresponse()
                exchange.body = response.read()
                exchange.status = response.status
                exchange.headers = list(response.getheaders())
                if response.will_close:
                    self._drop()
                break
            except TimeoutError:
                self._drop()
                exchange.error = f"no answer within {self.timeout:g} s"
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop()  # a kept-alive connection the plugin closed: dial once more
                if not reused or time.monotonic() - start > self.timeout:
                    exchange.error = f"connection closed without an answer ({exc})"
                    break
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                exchange.error = f"{type(exc).__name__}: {exc}"
                break
        exchange.seconds = time.monotonic() - start
        return exchange

    def close(self) -> None:
        """Close every connection this client opened."""
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()
