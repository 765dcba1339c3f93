"""Figures 1 and 2: one call in-process, through werkzeug's test client and through the
``responses`` route, each against a bare baseline doing only the HTTP + JSON part.

Call mix (both figures): Join, EndpointOperInfo, Leave on one existing endpoint, repeated,
so the state stays the same size (only the journal grows, one entry per call, as it does
for every user)."""

from __future__ import annotations

import re
import time

import requests
import responses
from werkzeug.test import Client

import fakedriver
from _measure import Figure, interleave, median, ratio, us
from _workload import CONTENT_TYPE, answers_of, bare_app, create_endpoint, create_network, cycle, ok
from fakedriver import FakeNetDriver

NID, EID = "a" * 64, "e" * 64


def _fake_with_endpoint() -> FakeNetDriver:
    fake = FakeNetDriver()
    ok(fake, "/NetworkDriver.CreateNetwork", create_network(NID, "10.0.0.0/24", "10.0.0.1/24"))
    ok(fake, "/NetworkDriver.CreateEndpoint", create_endpoint(NID, EID, "10.0.0.2/24"))
    return fake


def _canned() -> dict[str, bytes]:
    return answers_of(_fake_with_endpoint(), cycle(NID, EID))


def werkzeug_client(cycles: int, reps: int) -> Figure:
    calls = cycle(NID, EID)
    fake = _fake_with_endpoint()
    subject, baseline = Client(fake), Client(bare_app(_canned()))
    for client in (subject, baseline):  # both answer the mix, and the same bytes
        got = [client.post(path, data=body) for path, body in calls]
        assert all(r.status_code == 200 for r in got), [r.get_data() for r in got]

    def timed(client: Client) -> float:
        start = time.perf_counter()
        for _ in range(cycles):
            for path, body in calls:
                client.post(path, data=body).get_data()
        return (time.perf_counter() - start) / (cycles * len(calls))

    got = interleave({"fake": lambda: timed(subject), "bare": lambda: timed(baseline)}, reps)
    return Figure(
        "1 in-process werkzeug Client: FakeNetDriver / bare app",
        ratio(got, "fake", "bare"),
        "<=",
        1.3,
        notes=[
            f"per call: fake {us(median(got['fake']))}, bare {us(median(got['bare']))} "
            f"(mix Join/EndpointOperInfo/Leave on one endpoint; {reps} reps x {cycles * 3} calls)"
        ],
    )


def responses_route(cycles: int, reps: int) -> Figure:
    fake_calls = cycle(NID, EID)
    fake = _fake_with_endpoint()
    fake_url, bare_url = "http://fake-netdriver", "http://bare-plugin"
    constant = _canned()["/NetworkDriver.EndpointOperInfo"]

    def bare_mock() -> responses.RequestsMock:
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        mock.add_callback(
            responses.POST,
            re.compile(rf"^{re.escape(bare_url)}/"),
            callback=lambda request: (200, {"Content-Type": CONTENT_TYPE}, constant),
        )
        return mock

    def timed(url: str) -> float:
        start = time.perf_counter()
        for _ in range(cycles):
            for path, body in fake_calls:
                requests.post(url + path, data=body).content
        return (time.perf_counter() - start) / (cycles * len(fake_calls))

    def subject() -> float:
        with fakedriver.routed(fake, url=fake_url):
            return timed(fake_url)

    def baseline() -> float:
        with bare_mock():
            return timed(bare_url)

    with fakedriver.routed(fake, url=fake_url):  # the route serves the mix correctly
        for path, body in fake_calls:
            answer = requests.post(fake_url + path, data=body)
            assert answer.status_code == 200 and "Err" not in answer.json(), answer.text
    got = interleave({"fake": subject, "bare": baseline}, reps)
    return Figure(
        "2 requests.post via responses: fakedriver.routed / bare callback",
        ratio(got, "fake", "bare"),
        "<=",
        1.15,
        notes=[
            f"per call: fake {us(median(got['fake']))}, bare {us(median(got['bare']))} "
            f"(same mix; route/mock started outside the timing; {reps} reps x {cycles * 3} calls)"
        ],
    )
