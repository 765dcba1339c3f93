"""The server's event loop: one thread that accepts connections and serves every call
that cannot wait.

A call that no fault rule can make wait (the common call, and every call of a fake
without latency, holds or hangs) costs a parse, the driver's work and two system calls;
served on a thread per connection it also cost a hand-over of the interpreter's lock
between threads, and under load those hand-overs made the tail. So the loop serves such
calls itself, one after the other, and a connection goes to a thread of its own only
when it must wait: a call a timed rule may hold, or an answer the client does not read
(see `Connection.readable()`).
"""

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import threading
import time
from collections.abc import Callable

from .connection import CLOSED, KEEP, Connection


class Loop:
    """Watches the listening socket and the connections served here, on the thread that
    calls `run()`.

    :param listener: the listening socket; ``accept()`` is called when it is readable,
        and returns how long to stop listening (``0``: not at all; accept() failing for
        want of descriptors backs off).
    :param wake: readable when `run()` must look at ``stop``, or take connections back;
        ``poke`` is its other end.
    :param threaded: takes a connection that must wait: it goes on in a thread.
    :param ended: told of each connection closed here.
    """

    def __init__(
        self,
        listener: socket.socket,
        wake: socket.socket,
        poke: socket.socket,
        accept: Callable[[], float],
        threaded: Callable[[Connection], None],
        ended: Callable[[Connection], None],
    ) -> None:
        self.listener, self.wake, self.poke = listener, wake, poke
        self.accept, self.threaded, self.ended = accept, threaded, ended
        wake.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.selector.register(wake, selectors.EVENT_READ)
        self.connections: set[Connection] = set()
        #: when a connection's time may be up (see `Connection.expiry()`): no earlier
        self._due = math.inf
        self._listen_again: float | None = None  # when to listen again, after a back-off
        #: connections their threads gave back (see `give_back()`), and whether the loop
        #: still takes them
        self._returned: list[Connection] = []
        self._taking = True
        self._returns = threading.Lock()

    def add(self, connection: Connection) -> None:
        """Serve ``connection`` here (on the loop's thread)."""
        connection.blocking(False)
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)
        self.connections.add(connection)
        self._due = min(self._due, connection.expiry())

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (and ``wake`` readable), then close the connections
        still here: each is idle or in a request not yet whole, which is not served."""
        try:
            while not stop.is_set():
                now = time.monotonic()
                wait = min(self._due, self._listen_again or math.inf) - now
                for key, _ in self.selector.select(None if wait == math.inf else max(wait, 0)):
                    if key.data is not None:
                        self._serve(key.data)
                    elif key.fileobj is self.listener:
                        self._accept()
                    else:
                        with contextlib.suppress(BlockingIOError):
                            self.wake.recv(4096)
                        self._take_back()
                now = time.monotonic()
                if self._listen_again is not None and now >= self._listen_again:
                    self._listen_again = None
                    self.selector.register(self.listener, selectors.EVENT_READ)
                if now >= self._due:
                    self._expire(now)
        finally:
            with self._returns:
                self._taking = False
            self._take_back()
            for connection in list(self.connections):
                self._forget(connection, closed=True)
            self.selector.close()

    def give_back(self, connection: Connection) -> bool:
        """From a connection's thread, once its calls that had to wait are answered and it
        is idle: serve it on the loop again; whether the loop took it (not once stopped)."""
        with self._returns:
            if not self._taking:
                return False
            self._returned.append(connection)
        with contextlib.suppress(OSError):  # the server closed it: the loop has stopped
            self.poke.send(b"\0")
        return True

    def _take_back(self) -> None:
        with self._returns:
            returned, self._returned = self._returned, []
        for connection in returned:
            self.add(connection)

    def _accept(self) -> None:
        backoff = self.accept()
        if backoff:
            self.selector.unregister(self.listener)
            self._listen_again = time.monotonic() + backoff

    def _serve(self, connection: Connection) -> None:
        outcome = connection.readable()
        if outcome == KEEP:
            self._due = min(self._due, connection.expiry())
            return
        self._forget(connection, closed=outcome == CLOSED)
        if outcome != CLOSED:
            connection.blocking(True)
            self.threaded(connection)

    def _forget(self, connection: Connection, closed: bool) -> None:
        """Stop watching ``connection``; ``closed``: close it too, it is over."""
        self.selector.unregister(connection.sock)
        self.connections.discard(connection)
        if closed:
            connection.end()
            self.ended(connection)

    def _expire(self, now: float) -> None:
        """Close the connections whose time is up; find when the next one's may be."""
        due = math.inf
        for connection in list(self.connections):
            if connection.expire(now):
                self._forget(connection, closed=True)
            else:
                due = min(due, connection.expiry())
        self._due = due
