"""Log lines written by a thread of their own, so that a slow or stuck stream (an
undrained stderr pipe) delays no call: calls put their line on a bounded queue; when the
queue is full, lines are dropped and counted, and the count is written once it drains."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import IO


class LineWriter:
    """Writes lines to ``stream`` in the background; :meth:`write` never blocks.

    :param capacity: lines waiting at most; more are dropped (and counted).
    """

    def __init__(self, stream: IO[str], capacity: int = 10_000) -> None:
        self.stream = stream
        self.dropped = 0
        self._lines: queue.Queue[str | None] = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._run, name="fakedriver-log", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most ``timeout`` s for the stream), then stop."""
        with contextlib.suppress(queue.Full):
            self._lines.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (line := self._lines.get()) is not None:
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
