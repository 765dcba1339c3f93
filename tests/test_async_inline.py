"""An async client's call to a routed fake hops to a worker thread only when a timed rule
(latency, a hold, a hang) could fire on it: no rule, and rules that only shape the answer,
are served on the event loop itself. Hops are counted as the loop's executor submissions."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import pytest

import fakedriver
from fakedriver import FakeNetDriver

URL = "http://fake-inline"
METHOD = "NetworkDriver.GetCapabilities"


class _Counting(concurrent.futures.ThreadPoolExecutor):
    """An executor that counts what the event loop hands it."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def _call(client: str, calls: int) -> list[int]:
    statuses = []
    if client == "httpx":
        async with httpx.AsyncClient(timeout=5) as session:
            for _ in range(calls):
                statuses.append((await session.post(f"{URL}/{METHOD}", content=b"{}")).status_code)
        return statuses
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for _ in range(calls):
            async with http.post(f"{URL}/{METHOD}", data=b"{}") as response:
                statuses.append(response.status)
    return statuses


def _hops(client: str, fake: FakeNetDriver, calls: int = 3) -> tuple[int, list[int]]:
    """Executor submissions made while ``calls`` calls go through ``client``, and their
    statuses."""
    executor = _Counting()

    async def run() -> list[int]:
        asyncio.get_running_loop().set_default_executor(executor)
        return await _call(client, calls)

    try:
        with fakedriver.routed(fake, url=URL, clients=[client]):
            statuses = asyncio.run(run())
    finally:
        executor.shutdown()
    return executor.submitted, statuses


#: Rules that only shape the answer, and timed rules that can fire no more.
NOT_TIMED: dict[str, Callable[[FakeNetDriver], object]] = {
    "no rule": lambda fake: None,
    "error": lambda fake: fake.faults.add(method=METHOD, kind="error", every=2),
    "status": lambda fake: fake.faults.add(method=METHOD, status=503, every=2),
    "answer": lambda fake: fake.faults.add(method=METHOD, kind="answer", answer={"Scope": "x"}),
    "drop": lambda fake: fake.faults.add(method=METHOD, kind="drop", nth=9),
    "latency in another phase": lambda fake: fake.faults.add(
        method=METHOD, kind="latency", seconds=1, phase="later"
    ),
    "a hold already spent": lambda fake: fake.faults.add(
        method=METHOD, kind="hold", times=1, seen=1, fired=1
    ),
    "latency on another method": lambda fake: fake.faults.add(
        method="NetworkDriver.Join", kind="latency", seconds=1
    ),
}

#: Timed rules that could fire on the next call.
TIMED: dict[str, Callable[[FakeNetDriver], object]] = {
    "latency": lambda fake: fake.faults.add(method=METHOD, kind="latency", seconds=0.001),
    "released hold": lambda fake: fake.faults.add(method=METHOD, kind="hold").release(),
    "latency on every method": lambda fake: fake.faults.add(kind="latency", seconds=0.001),
}


@pytest.mark.parametrize("client", ["httpx", "aiohttp"])
@pytest.mark.parametrize("case", NOT_TIMED)
def test_a_call_no_timed_rule_can_hold_makes_no_thread_hop(client: str, case: str) -> None:
    fake = FakeNetDriver()
    NOT_TIMED[case](fake)
    hops, statuses = _hops(client, fake)
    assert hops == 0, f"{case}: {hops} executor submission(s) for calls that cannot wait"
    assert len(statuses) == 3 and len(fake.calls) == 3


@pytest.mark.parametrize("client", ["httpx", "aiohttp"])
@pytest.mark.parametrize("case", TIMED)
def test_a_call_a_timed_rule_could_hold_goes_to_a_worker_thread(client: str, case: str) -> None:
    fake = FakeNetDriver()
    TIMED[case](fake)
    hops, statuses = _hops(client, fake)
    assert hops == 3, f"{case}: {hops} executor submission(s) for 3 calls that could wait"
    assert statuses == [200, 200, 200]


def test_may_block_follows_the_rules_schedule_and_phase() -> None:
    fake = FakeNetDriver()
    assert not fake.may_block
    rule = fake.faults.add(method=METHOD, kind="hang", times=1, phase="p")
    assert not fake.may_block  # another phase
    fake.faults.phase = "p"
    assert fake.may_block
    rule.fired = 1  # it fired its one time
    assert not fake.may_block
