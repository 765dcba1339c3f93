"""The guard of the fast tier (support.tiers): what it counts as a test's own socket."""

from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path

import pytest
from support.tiers import SocketSpy

pytestmark = pytest.mark.socket  # it listens on a unix socket, to connect to it
WAIT = 5.0


def test_the_spy_counts_the_tests_threads_not_one_left_running_by_an_earlier_test() -> None:
    spy = SocketSpy()
    with tempfile.TemporaryDirectory(prefix="fdtier") as folder:
        path = str(Path(folder) / "s.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(8)
        go = threading.Event()

        def late_client() -> None:  # an earlier test's thread, connecting late
            assert go.wait(WAIT)
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(path)

        leftover = threading.Thread(target=late_client, daemon=True)
        leftover.start()
        spy.install()
        try:
            seen: list[str] = []
            spy.watch(seen)
            go.set()
            leftover.join(WAIT)
            assert seen == []  # not this test's
            def own_client() -> None:  # a thread this test starts
                with socket.socket(socket.AF_UNIX) as client:
                    client.connect(path)

            own = threading.Thread(target=own_client)
            own.start()
            own.join(WAIT)
            with socket.socket(socket.AF_UNIX) as mine:
                mine.connect(path)
            spy.watch(None)
        finally:
            spy.uninstall()
            server.close()
        assert seen == [f"connect({path!r})", f"connect({path!r})"]
