"""Clocks for latency and hangs: real time, or virtual time that passes without waiting.

A test of an orchestrator's 30-second retry window runs in milliseconds on a
[`VirtualClock`][fakedriver.VirtualClock]: ``sleep`` moves the clock forward and returns at once.
The socket server uses [`RealClock`][fakedriver.RealClock] by default; everything in-process uses a
virtual one.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What a fake's latency and hangs wait on: [`RealClock`][fakedriver.RealClock] or
    [`VirtualClock`][fakedriver.VirtualClock]."""

    def now(self) -> float:
        """Seconds, from an arbitrary start."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""


class RealClock:
    """Wall-clock time: ``sleep`` really waits (the socket server's clock)."""

    def now(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, really."""
        time.sleep(seconds)


class VirtualClock:
    """Time that passes only when something sleeps or the test calls
    [`advance()`][fakedriver.VirtualClock.advance]."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since ``start``, as far as sleeps and
        [`advance()`][fakedriver.VirtualClock.advance] have moved it."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward and return at once."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (never back)."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        with self._lock:
            self._now += seconds
