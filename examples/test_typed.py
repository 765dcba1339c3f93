"""A user's test as mypy --strict sees it (pyproject's ``[tool.mypy]`` checks this file): the
fixtures' types must let a typed test hand the fake's URL to a client as it stands."""

from __future__ import annotations

import httpx

from fakedriver import FakeNetDriver, Route, Rule, routed
from fakedriver.pytest_plugin import FakeNetDriverFactory


def test_httpx_takes_the_fakes_url_as_its_base(fake_netdriver: FakeNetDriver) -> None:
    with httpx.Client(base_url=fake_netdriver.url) as client:
        answer = client.post("/Plugin.Activate").json()
    assert answer == {"Implements": ["NetworkDriver", "IpamDriver"]}
    fake_netdriver.calls.assert_called("Plugin.Activate", times=1)


def test_a_fake_not_routed_yet_has_the_url_it_would_be_routed_at(
    fake_netdriver_factory: FakeNetDriverFactory,
) -> None:
    url: str = FakeNetDriver().url
    assert url == "http://fake-netdriver"
    assert fake_netdriver_factory(url="http://other").url == "http://other"


def test_a_route_needs_no_type_argument() -> None:
    """``Route`` is a route to a ``FakeNetDriver``: a bare annotation is a whole type, and
    the fake it gives back has the helpers of a test."""
    route: Route = routed(url="http://typed", clients=["httpx"])
    with route as fake:
        rule: Rule = fake.fail("Plugin.Activate", message="typed")
        assert httpx.post("http://typed/Plugin.Activate").json() == {"Err": "typed"}
    assert rule.fired == 1
