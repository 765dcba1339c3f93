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


@contextlib.contextmanager
def serving(fake: FakeNetDriver | None = None, *, tcp: bool = False) -> Iterator[Served]:
    """Serve ``fake`` (a new one when omitted) on a fresh unix socket in a private
    temporary folder, and on loopback TCP when ``tcp``, until the block ends::

        with fakedriver.serving() as served:
            subprocess.run(["curl", "--unix-socket", served.socket_path, ...], timeout=10)

    Held and hung calls are released when the block ends, so it always ends.
    """
    fake = fake or FakeNetDriver()
    folder = tempfile.mkdtemp(prefix="fakedriver-")  # short: unix socket paths are limited
    path = os.path.join(folder, "plugin.sock")
    api = partial(control, fake)
    servers = [PluginServer(fake, socket_path=path, control=api)]
    if tcp:
        servers.append(PluginServer(fake, tcp=("127.0.0.1", 0), control=api))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    tcp_url = servers[1].address.replace("tcp://", "http://") if tcp else None
    fake.socket_path = path
    try:
        yield Served(fake, path, "http+unix://" + quote(path, safe=""), tcp_url)
    finally:
        fake.release_rules()
        for server in servers:
            server.shutdown()
            server.close()
        for thread in threads:
            thread.join(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
