"""What the benchmarks send: dockerd-like request bodies, a populated fake, and the bare
baseline app (werkzeug Request/Response that only decodes and encodes JSON)."""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from fakedriver import FakeNetDriver

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
SPACE = "LocalDefault"
GATEWAY_OPTIONS = {"RequestAddressType": "com.docker.network.gateway"}


def encode(body: dict[str, Any] | None) -> bytes:
    """A request body as dockerd writes it: compact JSON and a newline."""
    return b"" if body is None else json.dumps(body, separators=(",", ":")).encode() + b"\n"


def net_id(i: int) -> str:
    return f"{i:x}".rjust(64, "a")


def ep_id(i: int) -> str:
    return f"{i:x}".rjust(64, "e")


def ids(nid: str, eid: str) -> bytes:
    return encode({"NetworkID": nid, "EndpointID": eid})


def join(nid: str, eid: str) -> bytes:
    return encode(
        {
            "NetworkID": nid,
            "EndpointID": eid,
            "SandboxKey": f"/var/run/docker/netns/{eid[:12]}",
            "Options": {"com.docker.network.endpoint.exposedports": None},
        }
    )


def request_pool(pool: str, v6: bool = False) -> bytes:
    return encode({"AddressSpace": SPACE, "Pool": pool, "SubPool": "", "Options": {}, "V6": v6})


def request_address(pool_id: str, options: dict[str, str] | None = None) -> bytes:
    return encode({"PoolID": pool_id, "Address": "", "Options": options or {}})


def create_network(nid: str, pool: str, gateway: str) -> bytes:
    return encode(
        {
            "NetworkID": nid,
            "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
            "IPv4Data": [{"AddressSpace": SPACE, "Pool": pool, "Gateway": gateway}],
            "IPv6Data": [],
        }
    )


def create_endpoint(nid: str, eid: str, address: str) -> bytes:
    return encode(
        {
            "NetworkID": nid,
            "EndpointID": eid,
            "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""},
            "Options": {},
        }
    )


# The in-process call mix: one Join, EndpointOperInfo, Leave cycle on an existing endpoint.
def cycle(nid: str, eid: str) -> list[tuple[str, bytes]]:
    return [
        ("/NetworkDriver.Join", join(nid, eid)),
        ("/NetworkDriver.EndpointOperInfo", ids(nid, eid)),
        ("/NetworkDriver.Leave", ids(nid, eid)),
    ]


def ok(fake: FakeNetDriver, path: str, body: bytes) -> dict[str, Any]:
    status, answer = fake.handle(path, body)
    if status != 200 or answer.get("Err") or answer.get("Error"):
        raise RuntimeError(f"{path} refused during setup: {status} {answer}")
    return answer


def populate(fake: FakeNetDriver, networks: int, per_network: int) -> list[tuple[str, str]]:
    """Create networks and endpoints the way dockerd does (pool, gateway, network, then an
    IPAM address per endpoint), through ``fake.handle()``; return the (network, endpoint)
    ids. Pools are consecutive subnets of 10.0.0.0/8 just big enough for the endpoints."""
    prefix = 32 - math.ceil(math.log2(per_network + 3))
    subnets = ipaddress.ip_network("10.0.0.0/8").subnets(new_prefix=prefix)
    made: list[tuple[str, str]] = []
    for n, subnet in zip(range(networks), subnets, strict=False):
        nid = net_id(n)
        pool_id = ok(fake, "/IpamDriver.RequestPool", request_pool(str(subnet)))["PoolID"]
        gateway = ok(fake, "/IpamDriver.RequestAddress", request_address(pool_id, GATEWAY_OPTIONS))
        ok(fake, "/NetworkDriver.CreateNetwork", create_network(nid, str(subnet), gateway["Address"]))
        address_body = request_address(pool_id)
        for e in range(per_network):
            eid = ep_id(len(made))
            address = ok(fake, "/IpamDriver.RequestAddress", address_body)["Address"]
            ok(fake, "/NetworkDriver.CreateEndpoint", create_endpoint(nid, eid, address))
            made.append((nid, eid))
    return made


def answers_of(fake: FakeNetDriver, calls: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    """The fake's encoded answer per path, for the bare app to send back the same bytes."""
    canned = {}
    for path, body in calls:
        canned[path] = encode(ok(fake, path, body))
    return canned


def bare_app(canned: dict[str, bytes]) -> Any:
    """The baseline WSGI app: werkzeug Request/Response, decode the JSON body, encode an
    answer (the fake's answer for that path, decoded once at start), nothing else."""
    objects = {path: json.loads(body) for path, body in canned.items()}

    def app(environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        data = request.get_data()
        if data.strip():
            json.loads(data)
        answer = json.dumps(objects.get(request.path, {}), separators=(",", ":")) + "\n"
        return Response(answer, 200, content_type=CONTENT_TYPE)(environ, start_response)

    return app
