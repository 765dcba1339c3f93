"""fakedriver's benchmarks: every figure is a ratio against a baseline measured in the same
run (interleaved, repeated, median), printed with its target and PASS/MISS.

    python benchmarks/run.py            # the full run (a few minutes)
    python benchmarks/run.py --quick    # smaller sizes, fewer repetitions
    python benchmarks/run.py --only 6   # some figures only
    python benchmarks/run.py --only 7   # the --state database: per-change cost by size
    python benchmarks/run.py --only 8   # serve's memory over 1,000,000 calls
    python benchmarks/run.py --only 9   # serve's memory after 300 accepted 900 KB bodies
    python benchmarks/run.py --only 10  # serve's memory after 10,000 bodies of small values
    python benchmarks/run.py --only 11  # what a test pays for each fixture (one session)
    python benchmarks/run.py --only 12  # clusters: 1,000 nodes, a call to one node
    python benchmarks/run.py --write-docs  # the full run, its table into docs/benchmarks.md

Figure 6 needs a real dockerd (Debian's docker.io), busybox-static and root; where they
are missing it is skipped, with the reason.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path

import requests
import responses
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

import fakedriver
from fakedriver import FakeNetDriver
from fakedriver.core.ipam import IpamModel
from fakedriver.core.pool import Pool
from fakedriver.persist.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.dockerd_env import IMAGE, Dockerd, Plugin, Unavailable, run_name

ROWS: list[tuple[str, str, str, str]] = []


def row(
    name: str, value: float, op: str, target: float, detail: str = "", unit: str = "x"
) -> None:
    """A figure: ``value`` against ``target`` (``unit`` "x" for a ratio, or " ms", " s")."""
    met = value <= target if op == "<=" else value >= target
    shown, goal = f"{value:.3f}{unit}", f"{op} {target:g}{unit}"
    ROWS.append((name, shown, goal, "PASS" if met else "MISS"))
    print(f"  {name}: {shown} (target {goal}) {detail}", flush=True)


#: The parent of every folder this run makes (sockets, generated tests, databases): made by
#: `workdir()`, removed by `finish()` with all it holds, and nothing else (another run on
#: the same host keeps its own).
_WORKDIR: list[str] = []


def workdir() -> str:
    """This run's own temporary folder (made on first use)."""
    if not _WORKDIR:
        _WORKDIR.append(tempfile.mkdtemp(prefix="fdbrun"))
    return _WORKDIR[0]


def finish() -> None:
    """Remove this run's folder (and only it)."""
    while _WORKDIR:
        shutil.rmtree(_WORKDIR.pop(), ignore_errors=True)


def interleaved(subject: Callable[[], float], baseline: Callable[[], float], reps: int) -> float:
    """Median of subject/baseline over ``reps`` back-to-back pairs, order alternating."""
    ratios = []
    for rep in range(reps + 1):
        if rep % 2:
            b, s = baseline(), subject()
        else:
            s, b = subject(), baseline()
        if rep:  # the first pair warms up
            ratios.append(s / b)
    return statistics.median(ratios)


def timed(action: Callable[[], object], n: int) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            action()
        return (time.perf_counter() - start) / n

    return run


# -- shared request bodies ------------------------------------------------------------------
NET, EP = "n" * 64, "e" * 64
IDS = json.dumps({"NetworkID": NET, "EndpointID": EP}).encode()
JOIN = json.dumps(
    {"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/var/run/docker/netns/x", "Options": {}}
).encode()


def populated(networks: int = 1, per_network: int = 1) -> FakeNetDriver:
    """A fake holding ``networks`` networks with ``per_network`` endpoints each (EP among
    them), built through the protocol."""
    fake = FakeNetDriver()
    for n in range(networks):
        nid = NET if n == 0 else f"{n:064x}"
        pool = ipaddress.ip_network(f"10.{n % 256}.0.0/16")
        fake.handle(
            "/NetworkDriver.CreateNetwork",
            json.dumps(
                {"NetworkID": nid, "IPv4Data": [{"AddressSpace": "", "Pool": str(pool)}]}
            ).encode(),
        )
        for e in range(per_network):
            eid = EP if n == e == 0 else f"{n:032x}{e:032x}"
            address = f"{pool.network_address + e + 2}/16"
            fake.handle(
                "/NetworkDriver.CreateEndpoint",
                json.dumps(
                    {
                        "NetworkID": nid,
                        "EndpointID": eid,
                        "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""},
                    }
                ).encode(),
            )
    fake.calls.clear()
    return fake


#: The call mix: EndpointOperInfo, Join, EndpointOperInfo, Leave (state stays the same).
CYCLE = (
    ("/NetworkDriver.EndpointOperInfo", IDS),
    ("/NetworkDriver.Join", JOIN),
    ("/NetworkDriver.EndpointOperInfo", IDS),
    ("/NetworkDriver.Leave", IDS),
)


def one_cycle(call: Callable[[str, bytes], object]) -> Callable[[], object]:
    """One round of :data:`CYCLE` through ``call``."""

    def cycle() -> None:
        for path, body in CYCLE:
            call(path, body)

    return cycle


# -- 1. in-process -----------------------------------------------------------------------------
def bare_app(environ, start_response):  # type: ignore[no-untyped-def]
    request = Request(environ)
    json.loads(request.get_data() or b"{}")
    body = json.dumps({}, separators=(",", ":")).encode() + b"\n"
    return Response(body, content_type="application/json")(environ, start_response)


def in_process(n: int, reps: int) -> None:
    fake = populated()
    ours, bare = Client(fake), Client(bare_app)
    subject = timed(one_cycle(lambda p, b: ours.post(p, data=b)), n)
    baseline = timed(one_cycle(lambda p, b: bare.post(p, data=b)), n)
    row(
        "1 in-process call (werkzeug Client)",
        interleaved(lambda: (fake.calls.clear(), subject())[1], baseline, reps),
        "<=",
        1.3,
    )


# -- 2. through responses ----------------------------------------------------------------------
def through_responses(n: int, reps: int) -> None:
    fake = populated()
    post = requests.post

    def ours() -> float:
        fake.calls.clear()
        with fakedriver.routed(fake, url="http://fake"):
            return timed(one_cycle(lambda p, b: post(f"http://fake{p}", data=b)), n)()

    def bare() -> float:
        with responses.RequestsMock() as mock:
            mock.add_callback(
                responses.POST, re.compile(r"http://bare/.*"), callback=lambda r: (200, {}, "{}\n")
            )
            return timed(one_cycle(lambda p, b: post(f"http://bare{p}", data=b)), n)()

    row("2 call through responses", interleaved(ours, bare, reps), "<=", 1.15)


# -- 2b. httpx.AsyncClient through respx ------------------------------------------------------
def through_httpx_async(n: int, reps: int) -> None:
    """httpx.AsyncClient calls served by the fake vs by a bare async respx side effect."""
    import asyncio

    import httpx
    import respx

    fake = populated()

    async def cycles(client: httpx.AsyncClient, base: str) -> float:
        start = time.perf_counter()
        for _ in range(n):
            for path, body in CYCLE:
                await client.post(f"{base}{path}", content=body)
        return (time.perf_counter() - start) / n

    async def run(base: str) -> float:
        async with httpx.AsyncClient() as client:
            return await cycles(client, base)

    def ours() -> float:
        fake.calls.clear()
        with fakedriver.routed(fake, url="http://fake", clients=["httpx"]):
            return asyncio.run(run("http://fake"))

    async def bare_handler(request: httpx.Request) -> httpx.Response:
        json.loads(request.content or b"{}")
        return httpx.Response(200, content=b"{}\n")

    def bare() -> float:
        with respx.mock(using="httpx", assert_all_called=False) as router:
            router.route(url__startswith="http://bare/").mock(side_effect=bare_handler)
            return asyncio.run(run("http://bare"))

    row("2b call through httpx.AsyncClient (respx)", interleaved(ours, bare, reps), "<=", 1.15)


# -- 3. fixture cost ---------------------------------------------------------------------------
def fixture_cost(reps: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fdbench", dir=workdir()))
    with_fixture = "\n".join(
        f"def test_{i}(fake_netdriver):\n"
        f"    requests.post(fake_netdriver.url + '/Plugin.Activate')\n"
        for i in range(500)
    )
    without = "\n".join(f"def test_{i}():\n    pass\n" for i in range(500))
    (folder / "test_with.py").write_text("import requests\n\n" + with_fixture)
    (folder / "test_without.py").write_text(without)

    def run(name: str) -> Callable[[], float]:
        def go() -> float:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
                cwd=folder,
                check=True,
                capture_output=True,
            )
            return time.perf_counter() - start

        return go

    row(
        "3 fixture: 500 tests with fake_netdriver vs none",
        interleaved(run("test_with.py"), run("test_without.py"), reps),
        "<=",
        1.3,
    )


# -- 4. socket server --------------------------------------------------------------------------
BARE_SERVER = """
import json, sys
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response
WSGIRequestHandler.protocol_version = "HTTP/1.1"
WSGIRequestHandler.log_request = lambda *args, **kwargs: None  # quiet, as ours runs
def app(environ, start_response):
    json.loads(Request(environ).get_data() or b"{}")
    return Response(b'{"Address":"10.0.0.1/8"}\\n', content_type="application/json")(
        environ, start_response)
server = make_server("unix://" + sys.argv[1], 0, app, threaded=True)
print("ready", flush=True)
server.serve_forever()
"""


def _client(path: str, n: int, body: bytes, out: object) -> None:
    request = (
        b"POST /IpamDriver.RequestAddress HTTP/1.1\r\nHost: \r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    sock, stream, latencies, addresses = None, None, [], []
    for _ in range(n):
        start = time.perf_counter()
        if sock is None:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(path)
            stream = sock.makefile("rb")
        sock.sendall(request)
        headers = {}
        stream.readline()
        while (line := stream.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        payload = stream.read(int(headers["content-length"]))
        latencies.append(time.perf_counter() - start)
        addresses.append(json.loads(payload).get("Address"))
        if headers.get("connection", "").lower() == "close":
            stream.close(), sock.close()
            sock = None
    out.send((latencies, addresses))  # type: ignore[attr-defined]


def _load(path: str, clients: int, n: int, body: bytes) -> tuple[float, list[float], list[str]]:
    ctx = get_context("fork")
    pipes = [ctx.Pipe() for _ in range(clients)]
    procs = [ctx.Process(target=_client, args=(path, n, body, w)) for _, w in pipes]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [r.recv() for r, _ in pipes]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    return clients * n / wall, latencies, [a for _, addrs in results for a in addrs]


def _serve(argv: list[str], path: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(path):
            return proc
        time.sleep(0.05)
    raise RuntimeError(f"{argv} did not listen")


def socket_server(n: int, reps: int) -> None:
    folder = tempfile.mkdtemp(prefix="fdb", dir=workdir())
    ours_path, bare_path = f"{folder}/f.sock", f"{folder}/b.sock"
    ours = _serve(
        [sys.executable, "-m", "fakedriver", "serve", "--socket", ours_path, "--quiet"], ours_path
    )
    bare = _serve([sys.executable, "-c", BARE_SERVER, bare_path], bare_path)
    try:
        session = _control_session(ours_path)
        pool = session(
            "POST",
            "/IpamDriver.RequestPool",
            {"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/8"},
        )["PoolID"]
        body = json.dumps({"PoolID": pool, "Address": "", "Options": None}).encode()
        figures: dict[str, list[tuple[float, list[float], list[str]]]] = {"ours": [], "bare": []}
        handed: list[str] = []
        for rep in range(reps):
            order = [("ours", ours_path), ("bare", bare_path)]
            for name, path in order if rep % 2 == 0 else order[::-1]:
                result = _load(path, 8, n, body)
                figures[name].append(result)
                if name == "ours":
                    handed += result[2]
        ratio = statistics.median(
            o[0] / b[0] for o, b in zip(figures["ours"], figures["bare"], strict=True)
        )
        lat = {k: sorted(x for f in v for x in f[1]) for k, v in figures.items()}
        detail = " | ".join(
            f"{k}: {statistics.median(f[0] for f in figures[k]):,.0f} calls/s, "
            f"p50 {_ms(lat[k], 0.5)}, p99 {_ms(lat[k], 0.99)}"
            for k in ("ours", "bare")
        )
        row("4 socket server throughput, 8 keep-alive clients", ratio, ">=", 3.0, detail)
        tail = lat["ours"][int(len(lat["ours"]) * 0.99)] / lat["bare"][int(len(lat["bare"]) * 0.99)]
        row("4c socket server p99 latency vs werkzeug's", tail, "<=", 0.5)
        journal = session("GET", "/fakedriver/calls", None)
        unique = len(set(handed)) == len(handed) == 8 * n * reps
        # serve's journal is a ring (--journal-size): every call numbered, the last ones held
        total, held = 1 + 8 * n * reps, [call["index"] for call in journal["calls"]]
        complete = journal["next"] == total and held == list(range(journal["first"], total))
        complete = complete and all(call["error"] is None for call in journal["calls"])
        print(
            f"    correctness: {len(handed)} addresses, all distinct: {unique}; "
            f"journal numbered every call, the last {len(held):,} held: {complete}",
            flush=True,
        )
        ROWS.append(
            (
                "4b socket server: no address twice, journal complete",
                "yes" if unique and complete else "NO",
                "yes",
                "PASS" if unique and complete else "MISS",
            )
        )
    finally:
        for proc in (ours, bare):
            proc.terminate()
            proc.wait()


# -- 8. serve's memory over a long run --------------------------------------------------------
def _asker(path: str, n: int, out: object) -> None:
    """``n`` GetCapabilities calls over one keep-alive connection (state stays the same)."""
    request = b"POST /NetworkDriver.GetCapabilities HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\n\r\n"
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    stream = sock.makefile("rb")
    for _ in range(n):
        sock.sendall(request)
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        stream.read(length)
    stream.close()
    sock.close()
    out.send(n)  # type: ignore[attr-defined]


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def long_run_memory(total: int) -> None:
    """RSS of ``fakedriver serve`` after ``total`` calls vs after 10,000 (its journal is a
    ring of 10,000 by default, so memory must stay flat)."""
    folder = tempfile.mkdtemp(prefix="fdb", dir=workdir())
    path = f"{folder}/m.sock"
    proc = _serve([sys.executable, "-m", "fakedriver", "serve", "--socket", path, "--quiet"], path)
    ctx = get_context("fork")
    try:

        def load(calls: int, clients: int = 4) -> None:
            pipes = [ctx.Pipe() for _ in range(clients)]
            each = calls // clients
            procs = [ctx.Process(target=_asker, args=(path, each, w)) for _, w in pipes]
            for p in procs:
                p.start()
            assert sum(r.recv() for r, _ in pipes) == each * clients
            for p in procs:
                p.join()

        load(10_000)
        early = _rss(proc.pid)
        start = time.perf_counter()
        load(total - 10_000)
        late = _rss(proc.pid)
        detail = (
            f"{early / 2**20:.1f} MiB after 10,000 calls, {late / 2**20:.1f} MiB after "
            f"{total:,} ({time.perf_counter() - start:.0f} s)"
        )
        row(f"8 serve RSS after {total:,} calls vs after 10,000", late / early, "<=", 1.2, detail)
    finally:
        proc.terminate()
        proc.wait()


# -- 9. serve's memory with large accepted bodies ---------------------------------------------
def _create_delete(path: str, calls: int, option: int, first: int = 0) -> None:
    """``calls`` CreateNetwork calls (network ids from ``first`` on), each with one option
    of ``option`` bytes, each followed by its DeleteNetwork (the state ends empty), over one
    keep-alive connection; every answer must be a success."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    stream = sock.makefile("rb")

    def call(method: str, body: dict) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode() + b"\n"
        head = f"POST /NetworkDriver.{method} HTTP/1.1\r\nHost: \r\nContent-Length: {len(payload)}"
        sock.sendall(head.encode() + b"\r\n\r\n" + payload)
        status, length = stream.readline(), 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answer = json.loads(stream.read(length))
        assert b" 200 " in status and not answer.get("Err"), (status, answer)

    for i in range(calls):
        nid = f"{first + i:064x}"
        options = {"com.docker.network.generic": {"big": "x" * option}}
        data = [{"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24"}]
        call("CreateNetwork", {"NetworkID": nid, "Options": options, "IPv4Data": data})
        call("DeleteNetwork", {"NetworkID": nid})
    stream.close()
    sock.close()


def large_bodies_memory(calls: int, option: int) -> None:
    """RSS of ``fakedriver serve`` (its defaults: a journal of 10,000 calls and its byte
    budget) after ``calls`` accepted CreateNetwork calls carrying ``option`` bytes each vs
    after as many carrying 10 bytes, each size in a fresh server."""
    folder = tempfile.mkdtemp(prefix="fdb", dir=workdir())
    rss: dict[int, tuple[int, int]] = {}
    for size in (10, option):
        path = f"{folder}/r{size}.sock"
        argv = [sys.executable, "-m", "fakedriver", "serve", "--socket", path]
        proc = _serve([*argv, "--max-body", str(2 * option + 4096)], path)
        try:
            _create_delete(path, 1, 10)  # the first call's imports and caches
            start = _rss(proc.pid)
            _create_delete(path, calls, size)
            rss[size] = (start, _rss(proc.pid))
        finally:
            proc.terminate()
            proc.wait()
    small, large = rss[10][1], rss[option][1]
    detail = " | ".join(
        f"{size:,} B options: {a / 2**20:.1f} MiB at start, {b / 2**20:.1f} MiB after"
        for size, (a, b) in rss.items()
    )
    row(
        f"9 serve RSS after {calls} accepted {option // 1000} KB bodies vs small",
        large / small,
        "<=",
        1.2,
        detail,
    )


# -- 10. serve's memory with bodies of many small values -------------------------------------
def _capabilities(path: str, calls: int, body: bytes) -> None:
    """``calls`` GetCapabilities calls with ``body`` over one keep-alive connection."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    stream = sock.makefile("rb")
    head = f"POST /NetworkDriver.GetCapabilities HTTP/1.1\r\nHost: \r\nContent-Length: {len(body)}"
    frame = head.encode() + b"\r\n\r\n" + body
    for _ in range(calls):
        sock.sendall(frame)
        status, length = stream.readline(), 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        stream.read(length)
        assert b" 200 " in status, status
    stream.close()
    sock.close()


def many_values_memory(calls: int) -> None:
    """RSS of ``fakedriver serve`` (its default journal) after ``calls`` calls whose body
    is 3 KB of empty arrays vs 3 KB of one string, each in a fresh server: the journal's
    budget is of memory, so many small values cost no more than text."""
    folder = tempfile.mkdtemp(prefix="fdb", dir=workdir())
    arrays = json.dumps({"o": [[]] * 1010}, separators=(",", ":")).encode()
    text = json.dumps({"o": "x" * (len(arrays) - 10)}, separators=(",", ":")).encode()
    rss: dict[str, tuple[int, int]] = {}
    for name, body in (("a string", text), ("empty arrays", arrays)):
        path = f"{folder}/{len(rss)}.sock"
        proc = _serve(
            [sys.executable, "-m", "fakedriver", "serve", "--socket", path, "--quiet"], path
        )
        try:
            _capabilities(path, 1, b"")  # the first call's imports and caches
            start = _rss(proc.pid)
            _capabilities(path, calls, body)
            rss[name] = (start, _rss(proc.pid))
        finally:
            proc.terminate()
            proc.wait()
    detail = " | ".join(
        f"{name}: {a / 2**20:.1f} MiB at start, {b / 2**20:.1f} MiB after"
        for name, (a, b) in rss.items()
    )
    ratio = rss["empty arrays"][1] / rss["a string"][1]
    row(
        f"10 serve RSS after {calls:,} 3 KB bodies: empty arrays vs a string",
        ratio,
        "<=",
        1.3,
        detail,
    )


def _ms(ordered: list[float], q: float) -> str:
    return f"{ordered[int(len(ordered) * q)] * 1e3:.2f} ms"


def _control_session(path: str) -> Callable[[str, str, object], dict]:
    import http.client

    def call(verb: str, target: str, body: object) -> dict:
        conn = http.client.HTTPConnection("localhost")
        conn.sock = socket.socket(socket.AF_UNIX)
        conn.sock.connect(path)
        conn.request(verb, target, body=b"" if body is None else json.dumps(body).encode())
        answer = json.loads(conn.getresponse().read())
        conn.close()
        return answer

    return call


# -- 5. scale ----------------------------------------------------------------------------------
def scale(endpoints: int, allocations: int, n: int, reps: int) -> None:
    per_network = endpoints // 1000
    print(f"    building {endpoints:,} endpoints across 1,000 networks ...", flush=True)
    big, small = populated(1000, per_network), populated(1, 10)
    for fake in (big, small):
        fake.calls.clear()
    big_cycle, small_cycle = one_cycle(big.handle), one_cycle(small.handle)

    def measure(fake: FakeNetDriver, cycle: Callable[[], object]) -> Callable[[], float]:
        run = timed(cycle, n)
        return lambda: (fake.calls.clear(), run())[1]

    row(
        f"5a per-call cost, {endpoints:,} endpoints vs 10",
        interleaved(measure(big, big_cycle), measure(small, small_cycle), reps),
        "<=",
        1.5,
    )

    for label, subnet in (("IPv4 /8", "10.0.0.0/8"), ("IPv6 /64", "fd00:1::/64")):
        fake = FakeNetDriver()
        v6 = ":" in subnet
        pid = fake.handle(
            "/IpamDriver.RequestPool",
            json.dumps({"AddressSpace": "LocalDefault", "Pool": subnet, "V6": v6}).encode(),
        )[1]["PoolID"]
        # the IPAM model itself, as the driver makes it per call: no journal to grow
        model = IpamModel(fake.state, fake.persona, random.Random(0), call=0)
        request = model.request_address
        body = {"PoolID": pid, "Address": "", "Options": None}
        window, early, late = 1000, 0.0, 0.0
        start = time.perf_counter()
        for i in range(allocations + window):
            if i == 1000 or i == allocations:
                start = time.perf_counter()
            request(body)
            if i == 1000 + window - 1:
                early = time.perf_counter() - start
            if i == allocations + window - 1:
                late = time.perf_counter() - start
        row(f"5b {label}: allocation #{allocations:,} vs #1,000", late / early, "<=", 2.0)

    def pool_bytes(prefix: str) -> int:
        """What one untouched pool costs (the least of a few tries: allocator noise)."""
        network = ipaddress.ip_network(prefix)
        tries = []
        for _ in range(5):
            tracemalloc.start()
            pool = Pool("p", "LocalDefault", network, None, {}, 0, 0)
            tries.append(tracemalloc.get_traced_memory()[0])
            tracemalloc.stop()
            del pool
        return min(tries)

    pool_bytes("10.0.0.0/24")  # warm up caches the first construction fills
    sizes = {prefix: pool_bytes(prefix) for prefix in ("10.0.0.0/30", "10.0.0.0/8", "fd00::/64")}
    flat = max(sizes.values()) - min(sizes.values()) <= 256
    ROWS.append(
        (
            "5c untouched pool memory /30 vs /8 vs /64",
            " / ".join(f"{v} B" for v in sizes.values()),
            "constant",
            "PASS" if flat else "MISS",
        )
    )
    print(f"  5c untouched pool: {sizes}", flush=True)

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    sample = populated(10, 1000)
    sample.calls.clear()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    ROWS.append(("5d bytes per endpoint (state only)", f"{used / 10_000:,.0f} B", "report", "info"))
    print(f"  5d bytes per endpoint: {used / 10_000:,.0f}", flush=True)


# -- 7. the state database ------------------------------------------------------------------------
def state_cost(endpoints: int, n: int, reps: int) -> None:
    """Join then Leave (two commits, each fsynced before its answer) on endpoints spread
    over a state of ``endpoints`` kept in a ``--state`` database, against the same on a
    state of 100, each in its own database in the same folder."""
    networks = max(endpoints // 1000, 1)
    print(f"    building {endpoints:,} endpoints in a state database ...", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="fdb", dir=workdir()))
    measures, stores = [], []
    for count, name in ((networks, "big"), (1, "small")):
        per_network = endpoints // networks if name == "big" else 100
        fake = populated(count, per_network)
        store = Store.open(str(folder / f"{name}.db"))
        store.replace(fake.state)
        fake = FakeNetDriver(fake.persona, store=store, state=fake.state)
        stores.append(store)
        picks = random.Random(7).sample(sorted(fake.state.endpoints), 16)
        bodies = []
        for eid in picks:
            ids = {"NetworkID": fake.state.endpoints[eid].network_id, "EndpointID": eid}
            join = {**ids, "SandboxKey": "/var/run/docker/netns/x", "Options": {}}
            bodies.append((json.dumps(join).encode(), json.dumps(ids).encode()))

        def cycle(fake: FakeNetDriver = fake, bodies: list[tuple[bytes, bytes]] = bodies) -> None:
            for join, ids in bodies:
                fake.handle("/NetworkDriver.Join", join)
                fake.handle("/NetworkDriver.Leave", ids)

        run = timed(cycle, n)
        measures.append(lambda fake=fake, run=run: (fake.calls.clear(), run())[1])
    seconds = [measure() / 32 for measure in measures]
    row(
        f"7 --state per-change cost, {endpoints:,} endpoints vs 100",
        interleaved(measures[0], measures[1], reps),
        "<=",
        2.0,
        f"(one change: {seconds[0] * 1000:.2f} ms vs {seconds[1] * 1000:.2f} ms)",
    )
    for store in stores:
        store.close()
    shutil.rmtree(folder, ignore_errors=True)


# -- 11. what a test pays for each fixture --------------------------------------------------
PER_TEST = """
import pytest
{imports}

def _bare():
    pass

def _fake(fake_netdriver):
    pass

def _server(fake_netdriver_server):
    pass

@pytest.mark.fake_netdriver_cluster(nodes=10)
def _cluster10(fake_netdriver_cluster):
    pass

for i in range({count}):  # interleaved: one of each kind, {count} times
    for kind in ("bare", "fake", "server", "cluster10"):
        globals()[f"test_{{i:03d}}_{{kind}}"] = globals()[f"_{{kind}}"]
"""

#: Times each test whole (setup, call, teardown and their reports: what a suite pays for
#: it) and its setup + teardown, by kind (the test name's last word), into $FDB_COST.
PER_TEST_CONFTEST = """
import json, os, time
import pytest

WHOLE, PHASES = {}, {}

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.perf_counter()
    yield
    WHOLE.setdefault(item.nodeid.rsplit("_", 1)[-1], []).append(time.perf_counter() - start)

def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        per = PHASES.setdefault(report.nodeid.rsplit("_", 1)[-1], {})
        per[report.nodeid] = per.get(report.nodeid, 0.0) + report.duration

def pytest_sessionfinish(session):
    phases = {kind: list(per.values()) for kind, per in PHASES.items()}
    with open(os.environ["FDB_COST"], "w") as out:
        json.dump({"whole": WHOLE, "phases": phases}, out)
"""


def per_test(count: int) -> None:
    """One pytest session of ``count`` tests of each kind, interleaved: a bare test, one
    with ``fake_netdriver`` (every client imported by the test module, so every one
    routed), with ``fake_netdriver_server`` and with a 10-node ``fake_netdriver_cluster``;
    the median of each kind."""
    every = "import aiohttp, httpx, requests  # every client imported, so every one routed"
    whole, phases = _session(count, every)
    added = (whole["fake"] - whole["bare"]) * 1e3
    detail = ", ".join(f"{kind} {whole[kind] * 1e3:.3f} ms" for kind in whole)
    row("11a fake_netdriver: ms added to a test", added, "<=", 0.3, f"(a test: {detail})", " ms")
    row(
        "11b fake_netdriver: a test vs a bare test",
        whole["fake"] / whole["bare"],
        "<=",
        1.3,
        f"(setup + teardown alone: {phases['fake'] * 1e3:.3f} ms vs "
        f"{phases['bare'] * 1e3:.3f} ms, {phases['fake'] / phases['bare']:.2f}x)",
    )
    server = (whole["server"] - whole["bare"]) * 1e3
    row("11c fake_netdriver_server: ms added to a test", server, "<=", 2.0, "", " ms")
    cluster = whole["cluster10"] / whole["fake"]
    row("12a fake_netdriver_cluster of 10 nodes: a test vs fake_netdriver", cluster, "<=", 1.5)


def _session(
    count: int, imports: str, *args: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Run figure 11's session, its test module importing ``imports``: the median of each
    kind's whole test, and of its setup + teardown."""
    folder = Path(tempfile.mkdtemp(prefix="fdbtest", dir=workdir()))
    (folder / "test_per_test.py").write_text(PER_TEST.format(count=count, imports=imports))
    (folder / "conftest.py").write_text(PER_TEST_CONFTEST)
    out = folder / "cost.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env={**os.environ, "FDB_COST": str(out)},
        check=True,
        capture_output=True,
    )
    cost = json.loads(out.read_text())
    whole = {kind: statistics.median(v) for kind, v in cost["whole"].items()}
    phases = {kind: statistics.median(v) for kind, v in cost["phases"].items()}
    return whole, phases


# -- 12. clusters -----------------------------------------------------------------------------
def clusters(rounds: int) -> None:
    """A 1,000-node cluster built, routed and torn down; a routed call to its last node vs
    a routed call to one fake; a call to a node of a 3-node cluster whose other nodes hold
    5,000 endpoints each vs a call to one fake (see benchmarks/cluster.py)."""
    import cluster

    build, ratio = cluster.thousand(rounds)
    row("12b cluster of 1,000 nodes: built, routed, torn down", build, "<=", 1.0, "", " s")
    row("12c call to node-1000 of 1,000 (requests) vs one fake", ratio, "<=", 1.2)
    row("12d call to a node (handle, 3 nodes) vs one fake", cluster.per_call(rounds), "<=", 1.2)


# -- 6. docker run on a real dockerd ---------------------------------------------------------
def docker_run(reps: int) -> None:
    """``docker run --rm`` on a network of ``fakedriver serve --links veth`` against the same
    command with ``--network none`` (no network at all), and against an ``--internal``
    network of dockerd's own bridge driver (the same work in the daemon: a veth pair moved
    into the container, its address, no way out), on one daemon, interleaved."""
    if os.geteuid() != 0:
        _skipped("6a/6b docker run", "dockerd needs root")
        return
    base = Path(tempfile.mkdtemp(prefix="fdbd", dir="/tmp"))  # short socket paths; removed below
    daemon = Dockerd(base)
    try:
        daemon.start()
        daemon.import_busybox()
    except Unavailable as exc:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
        _skipped("6a/6b docker run", str(exc))
        return
    plugin = Plugin(run_name("fdbench"), base, "--links", "veth", "--quiet", stateful=False)
    try:
        plugin.start()
        daemon.docker("network", "create", "-d", plugin.name, "fdb-fake")
        daemon.docker("network", "create", "-d", "bridge", "--internal", "fdb-bridge")

        def on(network: str) -> Callable[[], float]:
            def run() -> float:
                start = time.perf_counter()
                daemon.docker("run", "--rm", "--network", network, IMAGE, "true")
                return time.perf_counter() - start

            return run

        fake, none, bridge = on("fdb-fake"), on("none"), on("fdb-bridge")
        none_times: list[float] = []

        def baseline() -> float:
            none_times.append(none())
            return none_times[-1]

        ratio = interleaved(fake, baseline, reps)
        row(
            "6a docker run --rm: fake --links veth vs --network none",
            ratio,
            "<=",
            1.15,
            f"(--network none: median {statistics.median(none_times):.3f} s)",
        )
        ratio = interleaved(fake, bridge, reps)
        row("6b docker run --rm: fake --links veth vs dockerd's bridge", ratio, "<=", 1.15)
        for network in ("fdb-fake", "fdb-bridge"):
            daemon.docker("network", "rm", network)
    finally:
        plugin.stop()
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def _skipped(name: str, why: str) -> None:
    ROWS.append((name, "-", "-", "skipped"))
    print(f"  {name}: SKIPPED: {why}", flush=True)


DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
#: The columns of the generated table, in order.
COLUMNS = ("figure", "measured", "target", "verdict")


def table(command: str, when: str, machine: str) -> str:
    """The generated block: how the run was made, then one row per figure."""
    lines = [
        f"Generated by `{command}` on {when}, {machine}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in r) + " |" for r in ROWS]
    return "\n".join(lines)


def write_docs(block: str, path: Path = DOCS) -> None:
    """Put ``block`` between the markers of ``path``, keeping the rest of the page."""
    text = path.read_text()
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} markers")
    path.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", type=int, nargs="+", metavar="N", help="figures to run (1-12)")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"write this run's table into {DOCS.relative_to(DOCS.parents[1])} (every figure)",
    )
    args = parser.parse_args()
    if args.write_docs and args.only:
        parser.error("--write-docs writes every figure: not with --only")
    quick, only = args.quick, set(args.only or range(1, 13))
    reps = 5 if quick else 9
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    print(
        f"fakedriver {fakedriver.__version__}, {machine}, {'quick' if quick else 'full'} run",
        flush=True,
    )
    try:
        run(only, quick, reps)
    finally:
        finish()
    width = max(len(r[0]) for r in ROWS)
    print("\n" + "figure".ljust(width), "measured", "target", "verdict", sep="  ")
    for name, value, target, verdict in ROWS:
        print(name.ljust(width), value.ljust(8), target.ljust(8), verdict, sep="  ")
    if args.write_docs:
        command = "python benchmarks/run.py --write-docs" + (" --quick" if quick else "")
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_docs(table(command, when, f"{machine}, fakedriver {fakedriver.__version__}"))
        print(f"written to {DOCS}", flush=True)
    correct = all(verdict == "PASS" for name, _, _, verdict in ROWS if name.startswith("4b"))
    sys.exit(0 if correct else 1)  # a MISS is a result; wrong answers under load are not


def run(only: set[int], quick: bool, reps: int) -> None:
    """Measure the figures in ``only``."""
    if 1 in only:
        in_process(300 if quick else 1000, reps)
    if 2 in only:
        through_responses(200 if quick else 600, reps)
        through_httpx_async(100 if quick else 300, reps)
    if 3 in only:
        fixture_cost(3 if quick else 5)
    if 4 in only:
        socket_server(500 if quick else 1500, 3 if quick else 5)
    if 5 in only:
        scale(20_000 if quick else 100_000, 100_000 if quick else 1_000_000, 300, reps)
    if 6 in only:
        docker_run(8 if quick else 20)
    if 7 in only:
        state_cost(10_000 if quick else 50_000, 3 if quick else 5, reps)
    if 8 in only:
        long_run_memory(200_000 if quick else 1_000_000)
    if 9 in only:
        large_bodies_memory(300, 900_000)
    if 10 in only:
        many_values_memory(10_000)
    if 11 in only:
        per_test(300)
    if 12 in only:
        clusters(5 if quick else 7)


if __name__ == "__main__":
    main()
