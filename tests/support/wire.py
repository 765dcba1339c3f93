"""Drive a FakeNetDriver over its WSGI interface, as a client would, checking the shape of
every answer; the ids and lifecycle builders most tests share."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import Client

from fakedriver import FakeNetDriver

NET = "n" * 64
EP = "e" * 64


class Wire:
    """Calls a fake through WSGI and checks the shape of every answer."""

    def __init__(self, fake: FakeNetDriver) -> None:
        self.fake = fake
        self.client = Client(fake)

    def raw(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        response = self.client.post(f"/{method}", data=body)
        answer = json.loads(response.get_data())
        assert isinstance(answer, dict), answer
        return response.status_code, answer

    def __call__(
        self, method: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        return self.raw(method, b"" if body is None else json.dumps(body).encode())

    def ok(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, answer = self(method, body)
        assert status == 200 and not answer.get(_key(method)), answer
        return answer

    def refused(self, method: str, body: dict[str, Any] | None = None, status: int = 200) -> str:
        """Assert the call is refused in the right dialect and changes nothing; return the text."""
        before = json.dumps(self.fake.state.snapshot(), sort_keys=True)
        got, answer = self(method, body)
        assert got == status, (got, answer)
        assert set(answer) == {_key(method)}, answer
        assert json.dumps(self.fake.state.snapshot(), sort_keys=True) == before
        return str(answer[_key(method)])

    # -- builders for the common lifecycle --------------------------------------------------
    def network(
        self,
        nid: str = NET,
        pool: str = "10.0.0.0/24",
        gateway: str = "10.0.0.1/24",
        v6: tuple[str, str] | None = None,
        **options: Any,
    ) -> None:
        body: dict[str, Any] = {
            "NetworkID": nid,
            "Options": {"com.docker.network.generic": {}, **options},
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": pool, "Gateway": gateway}],
            "IPv6Data": [],
        }
        if v6:
            body["IPv6Data"] = [{"AddressSpace": "LocalDefault", "Pool": v6[0], "Gateway": v6[1]}]
        self.ok("NetworkDriver.CreateNetwork", body)

    def endpoint(
        self,
        eid: str = EP,
        address: str = "10.0.0.2/24",
        nid: str = NET,
        v6: str = "",
        mac: str = "",
    ) -> dict[str, Any]:
        return self.ok(
            "NetworkDriver.CreateEndpoint",
            {
                "NetworkID": nid,
                "EndpointID": eid,
                "Options": {},
                "Interface": {"Address": address, "AddressIPv6": v6, "MacAddress": mac},
            },
        )

    def join(
        self, eid: str = EP, nid: str = NET, key: str = "/var/run/docker/netns/abc"
    ) -> dict[str, Any]:
        return self.ok(
            "NetworkDriver.Join",
            {
                "NetworkID": nid,
                "EndpointID": eid,
                "SandboxKey": key,
                "Options": {},
            },
        )


def _key(method: str) -> str:
    return "Error" if method.startswith("IpamDriver.") else "Err"


def ids(nid: str = NET, eid: str = EP) -> dict[str, str]:
    return {"NetworkID": nid, "EndpointID": eid}
