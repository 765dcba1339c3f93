"""Figure 4 in detail: `fakedriver serve` against werkzeug's dev server (and, with
``--against DIR``, the `fakedriver serve` of another checkout, e.g. an older commit),
alternated, 8 keep-alive client processes asking for addresses from one /8 pool; for
each server its calls a second, p50 and p99 latency, and its CPU time a call (from
``/proc``: what the server process spent, all its threads, user and system).

    python benchmarks/socket_server.py                      # this checkout vs werkzeug
    git worktree add --detach /tmp/old c924988^
    python benchmarks/socket_server.py --against /tmp/old   # and the hand-written server
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run  # benchmarks/run.py: the clients, the load and the werkzeug server

HERE = Path(__file__).resolve().parents[1]


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="DIR", help="another checkout's fakedriver serve")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1500, help="per client, per rep")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="fdss", dir=run.workdir())
    serve = [sys.executable, "-m", "fakedriver", "serve", "--quiet", "--socket"]
    servers = {"this": (serve, HERE)}
    if args.against:
        servers["against"] = (serve, Path(args.against).resolve())
    servers["werkzeug"] = ([sys.executable, "-c", run.BARE_SERVER], HERE)
    paths, procs = {}, {}
    try:
        for name, (argv, cwd) in servers.items():
            paths[name] = f"{folder}/{name}.sock"
            procs[name] = subprocess.Popen(
                [*argv, paths[name]], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        for path in paths.values():
            deadline = time.monotonic() + 10
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.05)
        bodies = {}
        for name in paths:
            pool = "unused"
            if name != "werkzeug":
                session = run._control_session(paths[name])
                pool = session(
                    "POST",
                    "/IpamDriver.RequestPool",
                    {"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/8"},
                )["PoolID"]
            bodies[name] = json.dumps({"PoolID": pool, "Address": "", "Options": None}).encode()
        results: dict[str, list[tuple[float, list[float], float]]] = {name: [] for name in paths}
        order = list(paths)
        for rep in range(args.reps):
            for name in order if rep % 2 == 0 else order[::-1]:
                before = _cpu(procs[name].pid)
                rate, latencies, _ = run._load(paths[name], 8, args.calls, bodies[name])
                cpu = (_cpu(procs[name].pid) - before) / (8 * args.calls)
                results[name].append((rate, latencies, cpu))
        bare = results["werkzeug"]
        for name, runs in results.items():
            lat = sorted(x for r in runs for x in r[1])
            line = (
                f"{name:9} {statistics.median(r[0] for r in runs):7,.0f} calls/s, "
                f"p50 {run._ms(lat, 0.5)}, p99 {run._ms(lat, 0.99)}, "
                f"server CPU {statistics.median(r[2] for r in runs) * 1e6:.0f} us a call"
            )
            if name != "werkzeug":
                ratio = statistics.median(o[0] / b[0] for o, b in zip(runs, bare, strict=True))
                theirs = sorted(x for r in bare for x in r[1])
                tail = lat[int(len(lat) * 0.99)] / theirs[int(len(theirs) * 0.99)]
                line += f"; {ratio:.2f}x werkzeug's throughput, p99 {tail:.2f}x its"
            print(line, flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait()
        run.finish()


if __name__ == "__main__":
    main()
