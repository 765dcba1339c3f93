"""Figure 4: the plugin socket server under load, against werkzeug's threaded dev server.

``fakedriver serve --socket PATH --quiet`` and werkzeug's dev server (HTTP/1.1 handler,
serving the bare app, request log off) each run in their own process on a unix socket.
Client processes write requests as dockerd does (empty ``Host:``, ``Content-Length``) and
read the answers off raw sockets; like Go's client they keep the connection unless the
server says ``Connection: close``, which werkzeug's dev server always does, so its clients
redial for every request (that is part of what is measured). Each client repeats Join,
EndpointOperInfo, Leave on its own endpoint and an IPAM RequestAddress on a shared /8 pool.

After every run against the fake: every RequestAddress answer must be unique and the
journal (read through the control API, ``GET /fakedriver/calls``) must hold exactly the
calls sent, all answered 200.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from typing import Any

from _measure import FORK, Figure, interleave, median, percentile
from _workload import (
    answers_of,
    create_endpoint,
    create_network,
    ep_id,
    ids,
    join,
    request_address,
    request_pool,
)
from fakedriver import FakeNetDriver

HERE = os.path.dirname(os.path.abspath(__file__))
NID = "a" * 64
POOL = "10.0.0.0/8"
POOL_ID = f"LocalDefault/{POOL}"


def dockerd_request(path: str, body: bytes, verb: str = "POST") -> bytes:
    head = (
        f"{verb} {path} HTTP/1.1\r\n"
        "Host: \r\n"
        "User-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Accept: application/vnd.docker.plugins.v1.2+json\r\n"
        "Accept-Encoding: gzip\r\n"
        "\r\n"
    )
    return head.encode() + body


def setup_calls(clients: int) -> list[tuple[str, bytes]]:
    calls = [("/NetworkDriver.CreateNetwork", create_network(NID, "10.1.0.0/16", "10.1.0.1/16"))]
    for i in range(clients):
        calls.append(
            ("/NetworkDriver.CreateEndpoint", create_endpoint(NID, ep_id(i), f"10.1.0.{i + 2}/16"))
        )
    calls.append(("/IpamDriver.RequestPool", request_pool(POOL)))
    return calls


def client_cycle(i: int) -> list[tuple[str, bytes]]:
    eid = ep_id(i)
    return [
        ("/NetworkDriver.Join", join(NID, eid)),
        ("/NetworkDriver.EndpointOperInfo", ids(NID, eid)),
        ("/NetworkDriver.Leave", ids(NID, eid)),
        ("/IpamDriver.RequestAddress", request_address(POOL_ID)),
    ]


def canned(clients: int = 1) -> dict[str, bytes]:
    """The answers ``fakedriver serve`` gives (its persona: no gateway in Join), per path."""
    fake = FakeNetDriver(join_gateway=False)
    return answers_of(fake, setup_calls(clients) + client_cycle(0))


# -- a raw HTTP/1.1 client ----------------------------------------------------------------
def read_response(sock: socket.socket) -> tuple[int, bool, bytes]:
    """Status, whether the server closes the connection, body (one request in flight)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the answer")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status, length, close = int(lines[0].split()[1]), 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed in the middle of the answer")
        body += chunk
    return status, close, body


def call_once(address: str, request: bytes) -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(60)
        sock.connect(address)
        sock.sendall(request)
        status, _, body = read_response(sock)
    return status, body


def _client(address: str, index: int, duration: float, ready: Any, go: Any, out: Any) -> None:
    calls = [(dockerd_request(p, b), p.startswith("/IpamDriver.")) for p, b in client_cycle(index)]
    latencies, addresses = array("d"), []
    count = errors = dials = 0
    sock: socket.socket | None = None
    ready.put(index)
    go.wait()
    start = time.perf_counter()
    deadline = start + duration
    while True:
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        request, is_address = calls[count % len(calls)]
        if sock is None:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(address)
            dials += 1
        sock.sendall(request)
        status, close, body = read_response(sock)
        latencies.append(time.perf_counter() - t0)
        count += 1
        if status != 200 or b'"Err' in body:
            errors += 1
        elif is_address:
            addresses.append(json.loads(body)["Address"])
        if close:
            sock.close()
            sock = None
    elapsed = time.perf_counter() - start
    if sock is not None:
        sock.close()
    out.send((count, elapsed, latencies.tobytes(), addresses, errors, dials))


def load(address: str, clients: int, duration: float) -> dict[str, Any]:
    ready, go = FORK.Queue(), FORK.Event()
    pipes, procs = [], []
    for i in range(clients):
        receive, send = FORK.Pipe(duplex=False)
        proc = FORK.Process(target=_client, args=(address, i, duration, ready, go, send))
        proc.start()
        pipes.append(receive)
        procs.append(proc)
    for _ in range(clients):
        ready.get(timeout=30)
    go.set()
    results = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join()
    latencies = array("d")
    for r in results:
        latencies.frombytes(r[2])
    return {
        "sent": sum(r[0] for r in results),
        "throughput": sum(r[0] / r[1] for r in results),
        "latencies": latencies,
        "addresses": [a for r in results for a in r[3]],
        "errors": sum(r[4] for r in results),
        "dials": sum(r[5] for r in results),
    }


# -- servers --------------------------------------------------------------------------------
@contextlib.contextmanager
def serving(command: list[str], address: str) -> Any:
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
                probe.connect(address)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not listen on {address}")
            time.sleep(0.02)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)


def _run(kind: str, folder: str, clients: int, duration: float, record: dict[str, list]) -> float:
    address = os.path.join(folder, f"{kind}.sock")
    if kind == "fake":
        command = [sys.executable, "-m", "fakedriver", "serve", "--socket", address, "--quiet"]
    else:
        command = [sys.executable, os.path.join(HERE, "_bare_server.py"), address]
    with serving(command, address):
        setup = setup_calls(clients)
        for path, body in setup:
            status, answer = call_once(address, dockerd_request(path, body))
            if status != 200 or b'"Err' in answer:
                raise RuntimeError(f"{kind}: setup {path} refused: {status} {answer!r}")
        got = load(address, clients, duration)
        if kind == "fake":
            _, raw = call_once(address, dockerd_request("/fakedriver/calls", b"", "GET"))
            journal = json.loads(raw)["calls"]
            got["journal"] = len(journal) - len(setup)
            got["journal_ok"] = all(c["status"] == 200 and c["error"] is None for c in journal)
    record[kind].append(got)
    return got["throughput"]


def socket_server(clients: int, duration: float, reps: int) -> list[Figure]:
    record: dict[str, list] = {"fake": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="fdb-") as folder:
        got = interleave(
            {
                "fake": lambda: _run("fake", folder, clients, duration, record),
                "bare": lambda: _run("bare", folder, clients, duration, record),
            },
            reps,
        )
    ratios = [f / b for f, b in zip(got["fake"], got["bare"], strict=True)]
    notes = [f"{clients} client processes, {duration:g} s per run, {reps} runs each (+1 warm-up)"]
    for kind, label in (("fake", "fakedriver serve (keep-alive)"), ("bare", "werkzeug dev server")):
        runs = record[kind][-reps:]
        lat = sorted(x for r in runs for x in r["latencies"])
        notes.append(
            f"{label}: {median(got[kind]):,.0f} req/s, p50 {percentile(lat, 50) * 1e3:.2f} ms, "
            f"p99 {percentile(lat, 99) * 1e3:.2f} ms, "
            f"{sum(r['dials'] for r in runs) / len(runs):,.0f} connects/run"
        )
    throughput = Figure(
        "4 socket server throughput: fakedriver serve / werkzeug dev server",
        median(ratios),
        ">=",
        1.5,
        notes=notes,
    )
    fake_runs = record["fake"]  # every run, warm-up included
    problems = []
    for n, r in enumerate(fake_runs):
        if r["errors"]:
            problems.append(f"run {n}: {r['errors']} answers were errors")
        if len(set(r["addresses"])) != len(r["addresses"]):
            problems.append(f"run {n}: {len(r['addresses']) - len(set(r['addresses']))} duplicate addresses")
        if r["journal"] != r["sent"] or not r["journal_ok"]:
            problems.append(f"run {n}: journal has {r['journal']} calls, sent {r['sent']}")
    bare_errors = sum(r["errors"] for r in record["bare"])
    if bare_errors:
        problems.append(f"werkzeug baseline: {bare_errors} error answers")
    checked = Figure(
        "4 under load: RequestAddress unique, journal == calls sent",
        0,
        check=not problems,
        notes=problems
        or [
            f"{sum(len(r['addresses']) for r in fake_runs):,} addresses all unique, "
            f"{sum(r['sent'] for r in fake_runs):,} calls all journaled with status 200 "
            f"({len(fake_runs)} runs)"
        ],
    )
    return [throughput, checked]
