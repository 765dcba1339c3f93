"""What RequestPool with no Pool costs by how many pools the address space holds.

    python benchmarks/carve.py            # 1,000 and 6,000 pools; the old carve at 1,000
    python benchmarks/carve.py --old 3000 # the old carve at 3,000 too (about 7 s a carve)

N pools are made with an explicit Pool (10.0.0.0/24, 10.0.1.0/24, ...), each a default
/24 of the persona's ``10.0.0.0/8``, so the carve passes all of them; then a carve and
the ReleasePool of what it carved, timed together, 21 times (median). The old carve, which
checked every candidate against every pool (O(pools^2) a call), is timed on the same
state, as a baseline, where it finishes in reasonable time.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import time

from fakedriver import FakeNetDriver, Persona, State

SPACE = "LocalDefault"


def fake_with(pools: int) -> FakeNetDriver:
    fake = FakeNetDriver(Persona(default_pools=(("10.0.0.0/8", 24),)))
    for i in range(pools):
        body = {"AddressSpace": SPACE, "Pool": f"10.{i // 256}.{i % 256}.0/24"}
        reply = fake.respond("/IpamDriver.RequestPool", json.dumps(body).encode())
        assert b"PoolID" in reply.body, reply.body
    return fake


def carve(fake: FakeNetDriver) -> float:
    """One carve and the release of its pool: seconds."""
    started = time.perf_counter()
    reply = fake.respond("/IpamDriver.RequestPool", json.dumps({"AddressSpace": SPACE}).encode())
    pid = json.loads(reply.body)["PoolID"]
    fake.respond("/IpamDriver.ReleasePool", json.dumps({"PoolID": pid}).encode())
    return time.perf_counter() - started


def old_carve(state: State) -> float:
    """The carve it replaced, on the same state: seconds."""
    started = time.perf_counter()
    for candidate in ipaddress.ip_network("10.0.0.0/8").subnets(new_prefix=24):
        if not any(
            p.address_space == SPACE and p.network.overlaps(candidate) for p in state.pools.values()
        ):
            break
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=int, nargs="*", default=[1000], help="old carve sizes")
    args = parser.parse_args()
    print(f"{'pools held':>10}  {'carve (median of 21)':>21}  {'old carve (once)':>17}")
    for pools in (100, 1000, 6000):
        fake = fake_with(pools)
        new = statistics.median(carve(fake) for _ in range(21))
        old = f"{old_carve(fake.state) * 1000:.1f} ms" if pools in args.old else "-"
        print(f"{pools:>10,}  {new * 1000:>18.2f} ms  {old:>17}")


if __name__ == "__main__":
    main()
