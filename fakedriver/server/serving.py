"""A fake served on a real socket in a background thread, for a test whose client is in
another process (a Go binary, curl, dockerd) or must go through a real connection.

It runs the same server code as ``fakedriver serve``, control API included (under
``/fakedriver/`` on the unix socket; not on TCP, which has no token here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote

from ..fake import FakeNetDriver
from .control import control
from .server import PluginServer


@dataclass(frozen=True)
class Served:
    """Where a served fake listens.

    :param fake: the driver behind the socket (inspect its state and journal directly).
    :param socket_path: the unix socket, e.g. for ``curl --unix-socket``.
    :param url: the ``http+unix://`` base URL of the socket (requests-unixsocket's form).
    :param tcp_url: ``http://127.0.0.1:PORT`` when served on loopback TCP too, else ``None``.
    """

    fake: FakeNetDriver
    socket_path: str
    url: str
    tcp_url: str | None = None


class _Sockets:
    """A unix socket in a private temporary folder, and loopback TCP when ``tcp``, each
    served by a server in a thread of its own; what they serve is swapped (see
    `PluginServer.swap()`)."""

    def __init__(self, tcp: bool) -> None:
        self.folder = tempfile.mkdtemp(prefix="fakedriver-")  # short: socket paths are limited
        self.path = os.path.join(self.folder, "plugin.sock")
        self.servers = [PluginServer(None, socket_path=self.path)]
        if tcp:
            self.servers.append(PluginServer(None, tcp=("127.0.0.1", 0)))
        self.url = "http+unix://" + quote(self.path, safe="")
        self.tcp_url = self.servers[1].address.replace("tcp://", "http://") if tcp else None
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self.servers]
        for thread in self.threads:
            thread.start()

    def serve(self, fake: FakeNetDriver) -> Served:
        """Serve ``fake`` (and its control API) on connections from now on."""
        api = partial(control, fake)
        for server in self.servers:
            server.swap(fake, api)
        fake.socket_path = self.path
        return Served(fake, self.path, self.url, self.tcp_url)

    def end(self, fake: FakeNetDriver) -> None:
        """Release ``fake``'s held calls and end every connection that reached it: its
        calls are answered, or end, on it."""
        fake.release_rules()
        for server in self.servers:
            server.swap(None)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.close()
        for thread in self.threads:
            thread.join(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def serving(fake: FakeNetDriver | None = None, *, tcp: bool = False) -> Iterator[Served]:
    """Serve ``fake`` (a new one when omitted) on a fresh unix socket in a private
    temporary folder, and on loopback TCP when ``tcp``, until the block ends::

        with fakedriver.serving() as served:
            subprocess.run(["curl", "--unix-socket", served.socket_path, ...], timeout=10)

    Held and hung calls are released when the block ends, so it always ends.
    """
    fake = fake or FakeNetDriver()
    sockets = _Sockets(tcp)
    try:
        yield sockets.serve(fake)
    finally:
        sockets.end(fake)
        sockets.close()


class ServedPool:
    """Sockets kept for many fakes one after the other (a pytest session's): `serving()`
    as above, on a socket the pool already serves when one is free (one for each
    ``tcp`` flavour, for as many fakes as are served at once), else on a new one. At the
    end of the block the fake's held calls are released and every connection that
    reached it ends (see `PluginServer.swap()`): none of its calls, held or not, reaches
    the next fake served there. `close()` stops them all."""

    def __init__(self) -> None:
        self._free: dict[bool, list[_Sockets]] = {False: [], True: []}
        self._all: list[_Sockets] = []

    @contextlib.contextmanager
    def serving(self, fake: FakeNetDriver | None = None, *, tcp: bool = False) -> Iterator[Served]:
        """`serving()` on one of the pool's sockets."""
        fake = fake or FakeNetDriver()
        free = self._free[tcp]
        sockets = free.pop() if free else self._new(tcp)
        try:
            yield sockets.serve(fake)
        finally:
            sockets.end(fake)
            free.append(sockets)

    def _new(self, tcp: bool) -> _Sockets:
        sockets = _Sockets(tcp)
        self._all.append(sockets)
        return sockets

    def close(self) -> None:
        """Stop every socket of the pool."""
        for sockets in self._all:
            sockets.close()
        self._all.clear()
        self._free = {False: [], True: []}
