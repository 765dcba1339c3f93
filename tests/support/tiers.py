"""The test tiers, and the guard that keeps a test that opens a socket out of the fast one.

A test is in the fast in-process tier unless it carries one of :data:`TIERS`' markers:
``pytest -m "not socket and not dockerd and not browser"`` runs that tier alone
(docs/contributing.md, "How to run each test tier"). :class:`SocketSpy` watches every
``listen``, ``connect`` and ``connect_ex`` of an internet or unix socket made in this
process by the test's own thread or a thread started during the test (a client in a
thread pool counts; a thread an earlier test left running does not: its late connect is
not this test's); ``conftest.py`` fails, at its teardown, an unmarked test during which
one was made, naming the first. A ``bind`` alone
is no server: urllib3 binds ``('::1', 0)`` once, when first imported, to learn whether
the host has IPv6."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

#: The markers of the tiers beyond the in-process one (pyproject's ``markers`` say what each
#: means).
TIERS = ("socket", "dockerd", "browser")
FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)


class SocketSpy:
    """Notes each socket bound or connected while :attr:`watching` is a list."""

    def __init__(self) -> None:
        self.watching: list[str] | None = None
        self.originals: dict[str, Callable[..., Any]] = {}
        #: Threads already running when the watch began, other than the watcher's own.
        self.earlier: frozenset[threading.Thread] = frozenset()

    def watch(self, seen: list[str] | None) -> None:
        """Note sockets into ``seen`` from now on (``None``: stop noting)."""
        here = threading.current_thread()  # threads, not idents: an ident is reused
        self.earlier = frozenset(t for t in threading.enumerate() if t is not here)
        self.watching = seen

    def install(self) -> None:
        for name in ("listen", "connect", "connect_ex"):
            original = getattr(socket.socket, name)
            self.originals[name] = original
            setattr(socket.socket, name, self._spy(name, original))

    def uninstall(self) -> None:
        for name, original in self.originals.items():
            setattr(socket.socket, name, original)
        self.originals.clear()

    def _spy(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def spy(sock: socket.socket, *args: Any) -> Any:
            seen = self.watching
            earlier = threading.current_thread() in self.earlier
            if seen is not None and not earlier and sock.family in FAMILIES:
                where = args[0] if name != "listen" else _bound(sock)
                seen.append(f"{name}({where!r})")
            return original(sock, *args)

        return spy


def _bound(sock: socket.socket) -> Any:
    try:
        return sock.getsockname()
    except OSError:
        return "?"
