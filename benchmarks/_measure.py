"""Measuring on a noisy machine: interleaved repetitions, medians of ratios, a figure row,
and worker processes that each hold one state and time blocks of calls on command."""

from __future__ import annotations

import multiprocessing
import statistics
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FORK = multiprocessing.get_context("fork")


@dataclass
class Figure:
    """One row of the final table. ``value`` is the measured ratio (or figure) and the
    verdict compares it with ``target`` using ``op`` ("<=" or ">="); ``op`` None: report only."""

    name: str
    value: float
    op: str | None = None
    target: float | None = None
    unit: str = "x"
    notes: list[str] = field(default_factory=list)
    check: bool | None = None  # a correctness check: True passed, False failed

    @property
    def verdict(self) -> str:
        if self.check is not None:
            return "OK" if self.check else "FAIL"
        if self.op is None or self.target is None:
            return "info"
        met = self.value <= self.target if self.op == "<=" else self.value >= self.target
        return "PASS" if met else "MISS"

    def shown(self) -> str:
        if self.check is not None:
            return "ok" if self.check else "FAILED"
        return f"{self.value:.3f}{self.unit}" if self.unit == "x" else f"{self.value:,.0f} {self.unit}"

    def goal(self) -> str:
        return f"{self.op} {self.target:g}x" if self.op else "-"


def interleave(runs: dict[str, Callable[[], float]], reps: int, warmup: int = 1) -> dict[str, list[float]]:
    """Call each run once per repetition, alternating the order (A B, B A, ...) so slow drift
    of the machine hits both sides alike; return each run's measurements (warm-up dropped)."""
    names = list(runs)
    got: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(warmup + reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            value = runs[name]()
            if rep >= warmup:
                got[name].append(value)
    return got


def ratio(got: dict[str, list[float]], subject: str, baseline: str) -> float:
    """Median over repetitions of subject / baseline (each pair measured back to back)."""
    return statistics.median(s / b for s, b in zip(got[subject], got[baseline], strict=True))


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us"


# -- worker processes ---------------------------------------------------------------------
def _worker_main(conn: Any, setup: Callable[[], dict[str, Callable[[int], float]]]) -> None:
    try:
        ops = setup()
        conn.send(("ready", None))
        while True:
            message = conn.recv()
            if message is None:
                return
            name, n = message
            conn.send(("ok", ops[name](n)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


class Worker:
    """A forked process that runs ``setup()`` (which builds some state and returns named
    operations ``op(n) -> value``), then runs operations on command. Several workers set up
    in parallel; each keeps its own heap, so one state's size (and garbage-collector work)
    does not leak into another's timings."""

    def __init__(self, setup: Callable[[], dict[str, Callable[[int], float]]]) -> None:
        self._conn, child = FORK.Pipe()
        self._process = FORK.Process(target=_worker_main, args=(child, setup), daemon=True)
        self._process.start()
        child.close()
        self._ready = False

    def _receive(self) -> Any:
        try:
            kind, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"worker died (exit code {self._process.exitcode})") from None
        if kind == "error":
            raise RuntimeError(f"worker failed:\n{value}")
        return value

    def wait_ready(self) -> Worker:
        if not self._ready:
            self._receive()
            self._ready = True
        return self

    def run(self, name: str, n: int = 0) -> Any:
        self.wait_ready()
        self._conn.send((name, n))
        return self._receive()

    def close(self) -> None:
        if self._process.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def in_child(func: Callable[[], Any]) -> Any:
    """Run ``func`` in a fresh forked process and return its (picklable) result."""
    with Worker(lambda: {"result": lambda n: func()}) as worker:
        return worker.run("result")
