"""Log lines written by a thread of their own, so that a slow or stuck stream (an
undrained stderr pipe) delays no call: calls put their line on a queue bounded in size;
when it is full, lines are dropped and counted, and the count is written once it drains."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import IO


def printable(text: str) -> str:
    """``text`` for a log line or a terminal: each character Python's ``str.isprintable``
    is false for (the C0 and C1 controls with ESC, DEL, the line and paragraph separators,
    the format characters such as a bidirectional override, any space but the space)
    written as Python writes it in a string literal (``\\n``, ``\\x1b``, ``\\u202e``). So
    a line stays one line, and nothing in it moves a terminal's cursor or colours it."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class LineWriter:
    """Writes lines to ``stream`` in the background; `write()` never blocks.

    :param capacity: characters waiting at most (8 Mi); lines beyond are dropped and
        counted. A bound in size, not in lines: one line can be a whole large request.
    """

    def __init__(self, stream: IO[str], capacity: int = 8 << 20) -> None:
        self.stream, self.capacity = stream, capacity
        self.dropped = 0
        self._queued = 0  # characters waiting
        self._lock = threading.Lock()
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="fakedriver-log", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        with self._lock:
            if self._queued + len(line) > self.capacity:
                self.dropped += 1
                return
            self._queued += len(line)
        self._lines.put(line)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most ``timeout`` s for the stream), then stop."""
        self._lines.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (line := self._lines.get()) is not None:
            with self._lock:
                self._queued -= len(line)
                dropped, self.dropped = self.dropped, 0
            if dropped:
                note = f"fakedriver: {dropped} log line(s) dropped (the log stream was slow)"
                line = f"{note}\n{line}"
            self._put(line + "\n")

    def _put(self, text: str) -> None:
        """Write straight to the file descriptor when there is one: a write blocked on a
        full pipe then holds none of Python's stream locks, and the process can still
        exit (its stderr flush at shutdown would wait for that lock forever)."""
        with contextlib.suppress(OSError, ValueError):
            try:
                fd = self.stream.fileno()
            except (OSError, ValueError, AttributeError):  # io.StringIO and the like
                self.stream.write(text)
                self.stream.flush()
                return
            self.stream.flush()  # what was printed before goes first
            data = text.encode(errors="replace")
            while data:
                data = data[os.write(fd, data) :]
