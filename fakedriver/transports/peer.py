"""The two things a transport with a real socket does to its peer: notice that it has
gone away (for a held or hung call), and hang up on it (for a dropped connection)."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Callable


def gone(sock: socket.socket) -> Callable[[], bool]:
    """A check of whether the peer has closed the connection: readable, with nothing to
    read. ``poll`` rather than ``select``, so any file descriptor number works."""

    def check() -> bool:
        try:
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLHUP)
            if not poller.poll(0):
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return check


def hang_up(sock: socket.socket) -> None:
    """Close the connection under the client, whatever the server does next."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
