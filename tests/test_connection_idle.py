"""A connection is idle from the moment its answer is written, not from when its thread
comes back to wait: the server closes "the one idle the longest" by that time, and a
thread the scheduler keeps away for a while must not make a later connection look older.
(It did: the cap test failed about one run in four on a loaded 2-core machine.)"""

from __future__ import annotations

import socket
import threading

from support.rawhttp import call, eventually, read_one

from fakedriver.server.connection import Answer, Connection, Limits

WAIT = 5.0


def connection(sock: socket.socket) -> Connection:
    return Connection(sock, lambda request, gone: Answer(200, b"{}"), Limits(), lambda line: None)


class LateSend(socket.socket):
    """A socket whose ``sendall`` returns only when the test says so: the connection's
    thread is held right after its answer went out."""

    sent = threading.Event()
    go_on = threading.Event()

    def sendall(self, data, flags=0):  # type: ignore[no-untyped-def, override]
        super().sendall(data, flags)
        self.sent.set()
        assert self.go_on.wait(WAIT)


def test_an_answered_connection_is_idle_since_its_answer_however_late_its_thread_waits() -> None:
    ours, theirs = socket.socketpair()
    late = LateSend(ours.family, ours.type, fileno=ours.detach())
    late.sent, late.go_on = threading.Event(), threading.Event()
    first = connection(late)
    thread = threading.Thread(target=first.run, daemon=True)
    thread.start()
    try:
        theirs.settimeout(WAIT)
        theirs.sendall(call("Plugin.Activate"))
        assert late.sent.wait(WAIT)
        assert read_one(theirs).status == 200
        # Another client connects while the first connection's thread is still away.
        a, b = socket.socketpair()
        with a, b:
            second = connection(a)
            late.go_on.set()
            assert eventually(lambda: first.idle_since is not None, WAIT)
            assert second.idle_since is not None
            assert first.idle_since < second.idle_since  # answered before the other came
    finally:
        late.go_on.set()
        theirs.close()
        thread.join(WAIT)
        assert not thread.is_alive()


def test_a_connection_whose_next_request_has_begun_to_arrive_is_not_evicted() -> None:
    """Bytes of a request still unread in the socket make a connection busy, not idle:
    the server's loop may not have read them yet when a newcomer needs room."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        waiting = connection(ours)
        theirs.sendall(b"POST /Plugin.Activate HTTP/1.1\r\n")
        assert not waiting.evict() and not waiting.closing
        ours.recv(64)  # read: the connection is what its state says (idle, here)
        assert waiting.evict() and waiting.closing
