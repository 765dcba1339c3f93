"""The conformance kit's speed: the full kit (every check, both captures) against the fake
served on a unix socket, in a separate ``fakedriver serve`` process as a plugin would be,
and in-process (``fakedriver.serving``). Target: 30 s for the full kit on these machines.

    python benchmarks/conformance.py            # 5 runs each, the median
    python benchmarks/conformance.py --runs 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from fakedriver import FakeNetDriver, Persona, serving
from fakedriver.conformance import check

TARGET = 30.0
#: Every optional sequence announced, so that no check is skipped.
EVERYTHING = Persona(scope="global", gw_alloc_checker=True, requires_request_replay=True)


def _in_process() -> tuple[float, int]:
    with serving(FakeNetDriver(EVERYTHING)) as served:
        began = time.perf_counter()
        report = check(served.socket_path)
        took = time.perf_counter() - began
        assert report.ok, report.summary()
        return took, sum(len(r.calls) for r in report.results)


def _served() -> tuple[float, int]:
    folder = tempfile.mkdtemp(prefix="fdb")
    path = os.path.join(folder, "p.sock")
    argv = [sys.executable, "-m", "fakedriver", "serve", "--socket", path, "--quiet",
            "--scope", "global", "--gw-alloc-checker", "--requires-request-replay"]  # fmt: skip
    server = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("fakedriver serve did not start")
            time.sleep(0.02)
        began = time.perf_counter()
        report = check(path)
        took = time.perf_counter() - began
        assert report.ok, report.summary()
        return took, sum(len(r.calls) for r in report.results)
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for name, run in (
        ("fakedriver serve (another process)", _served),
        ("serving() (in-process)", _in_process),
    ):
        times, calls = [], 0
        for _ in range(args.runs):
            took, calls = run()
            times.append(took)
        median = statistics.median(times)
        verdict = "PASS" if median <= TARGET else "MISS"
        print(
            f"full kit against {name}: median {median:.2f} s of {args.runs} "
            f"(min {min(times):.2f}, max {max(times):.2f}), {calls} calls (cleanup aside); "
            f"target <= {TARGET:.0f} s: {verdict}"
        )


if __name__ == "__main__":
    main()
