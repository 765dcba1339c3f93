"""The checks of whole sequences: dockerd's own, replayed from the captures (20.10 and 28,
the same 48 docker steps: network create/rm with and without IPAM, ``--subnet``,
``--gateway``, ``--ip-range``, ``--aux-address``, ``--internal``, ``--ipv6``, run,
connect/disconnect with ``--ip``/``--ip6``, a daemon restart), a session of the user's
(``--session``), and the sequences the captures lack: request replay, GwAllocCheck,
swarm, and dockerd's rollbacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .kit import IPAM, ND, PORTS, Check, Context, Failed, Skipped, check, refused
from .rules import go_field
from .session import Replay, capture, load, method_of


def replay_session(ctx: Context, path: str | Path, label: str) -> None:
    """Replay the session in ``path`` with the run's ids and subnets; fail at the first
    answer dockerd would refuse, naming the session's step."""
    steps = load(path)
    mapping = ctx.space.fork(label)
    try:
        mapping.learn_subnets(steps)
    except ValueError as exc:
        raise Skipped(str(exc)) from None
    usable = ctx.info.implements - set(ctx.info.refused)  # what dockerd would call
    if not usable:
        raise Skipped("dockerd would use nothing of the plugin (see the handshake's checks)")
    runner = Replay(ctx.send, dockerd=ctx.dockerd, implements=usable, mapping=mapping)
    for step in steps:
        for record in step.calls:
            exchange = runner.call(step, record)
            if exchange is not None and not refused(exchange):
                ctx.ledger.note(method_of(record), exchange.request, exchange.answer)
            if runner.problems:
                problem = runner.problems[0]
                raise Failed(f"{Path(path).name}: {problem}")
    if not runner.sent:
        raise Failed(f"{Path(path).name}: no call of it was for this plugin")


@check("sequences/capture-20.10")
def capture_20(ctx: Context) -> None:
    """dockerd 20.10.24's calls for 48 docker steps (network create/rm with and without
    the plugin's IPAM, ``--subnet``/``--gateway``/``--ip-range``/``--aux-address``,
    ``--internal``, ``--ipv6``, run, connect/disconnect with ``--ip``/``--ip6``, stop,
    start, a daemon restart), replayed with the kit's ids and subnets: every answer is
    one dockerd accepts, and an address or pool asked for is the one answered. Calls of
    a subsystem the plugin does not implement are not sent."""
    replay_session(ctx, capture("20.10"), "20.10")


@check("sequences/capture-28")
def capture_28(ctx: Context) -> None:
    """The same 48 docker steps under dockerd 28.3.3 (GetDefaultAddressSpaces before every
    pool, ``enable_ipv4``, ``no_proxy_6to4``, one EndpointOperInfo per start)."""
    replay_session(ctx, capture("28"), "28")


def session_check(path: str) -> Check:
    """The check of ``fakedriver check --session FILE``: the session, replayed."""
    if not Path(path).is_file():
        raise ValueError(f"--session {path}: no such file")
    load(path)  # a file that is no session is a usage error, before the run

    def run(ctx: Context) -> None:
        replay_session(ctx, path, "session")

    return Check("sequences/session", f"the session {path}, replayed", run)


@check("sequences/request-replay", needs=[IPAM])
def request_replay(ctx: Context) -> None:
    """A plugin that says ``RequiresRequestReplay`` gets, after each dockerd restart,
    RequestPool with the pool it answered before, and RequestAddress with the gateway and
    every endpoint's address, while it still holds them: each is answered with the same
    pool and address (``libnetwork/controller.go``, ``reservePools``). Skipped for a
    plugin that does not ask for replay (dockerd re-sends nothing then: the captures'
    restart covers it)."""
    if not ctx.info.requires_replay:
        raise Skipped("the plugin does not say RequiresRequestReplay")
    pool_id, pool = ctx.request_pool(str(ctx.subnet(24)))
    gateway_options = {"RequestAddressType": "com.docker.network.gateway"}
    gateway = go_field(
        ctx.need(
            f"{IPAM}.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": gateway_options}
        ),
        "Address",
    )
    address = go_field(ctx.need(f"{IPAM}.RequestAddress", ctx.address_body(pool_id)), "Address")
    ctx.need("Plugin.Activate")  # dockerd restarted: it activates the plugin again
    ctx.need(f"{IPAM}.GetCapabilities")
    again_id, again = ctx.request_pool(pool)
    if again != pool:
        raise Failed(f"RequestPool replayed for {pool} answered {again}")
    for held, options in ((gateway, gateway_options), (address, None)):
        bare = str(held).partition("/")[0]
        answer = ctx.need(
            f"{IPAM}.RequestAddress", {"PoolID": again_id, "Address": bare, "Options": options}
        )
        if go_field(answer, "Address") != held:
            raise Failed(
                f"RequestAddress replayed for {held} answered {go_field(answer, 'Address')}"
            )


@check("sequences/gwalloccheck", needs=[ND])
def gwalloccheck(ctx: Context) -> None:
    """A plugin that says ``GwAllocChecker`` (28 on) gets ``GwAllocCheck`` with the
    network's options before every network create: ``SkipIPv4``/``SkipIPv6`` as bools,
    and the network created without the gateway it skipped
    (``libnetwork/drivers/remote/driver.go``, ``GwAllocCheckerNetwork``)."""
    if ctx.dockerd == "20.10":
        raise Skipped("dockerd 20.10 never calls GwAllocCheck")
    if not ctx.info.gw_alloc_checker:
        raise Skipped("the plugin does not say GwAllocChecker")
    options = ctx.network_options()
    answer = ctx.need(f"{ND}.GwAllocCheck", {"Options": options})
    pool = ctx.subnet(24)
    data: dict[str, Any] = {"AddressSpace": "LocalDefault", "Pool": str(pool)}
    if not go_field(answer, "SkipIPv4"):
        data["Gateway"] = f"{pool.network_address + 1}/{pool.prefixlen}"
    nid = ctx.new_id()
    ctx.need(
        f"{ND}.CreateNetwork",
        {"NetworkID": nid, "Options": options, "IPv4Data": [data], "IPv6Data": []},
    )
    ctx.need(f"{ND}.DeleteNetwork", {"NetworkID": nid})


@check("sequences/swarm", needs=[ND])
def swarm(ctx: Context) -> None:
    """A ``Scope: global`` driver on a swarm manager: ``AllocateNetwork`` (string options,
    ``AddressSpace`` empty, ``IPv6Data`` null) answers ``Options`` as a map of strings,
    which the nodes' CreateNetwork then carries as ``com.docker.network.generic``;
    ``DiscoverNew``/``DiscoverDelete`` of nodes (``ConnectivityScope: global``);
    ``FreeNetwork`` when the network goes (``libnetwork/cnmallocator/networkallocator.go``,
    ``libnetwork/drivers/remote/driver.go``). Skipped for a local driver."""
    if ctx.info.scope != "global":
        raise Skipped("the plugin's Scope is not global: dockerd allocates nothing on it")
    pool = ctx.subnet(24)
    nid = ctx.new_id()
    gateway = f"{pool.network_address + 1}/{pool.prefixlen}"
    data = {"AddressSpace": "", "Gateway": gateway, "Pool": str(pool)}
    allocated = ctx.need(
        f"{ND}.AllocateNetwork",
        {
            "NetworkID": nid,
            "Options": {"com.example.opt": "1"},
            "IPv4Data": [data],
            "IPv6Data": None,
        },
    )
    generic = go_field(allocated, "Options") or {}
    options = {**ctx.network_options(), "com.docker.network.generic": generic}
    data["AddressSpace"] = ctx.info.spaces[1] if IPAM in ctx.info.implements else "GlobalDefault"
    ctx.need(
        f"{ND}.CreateNetwork",
        {"NetworkID": nid, "Options": options, "IPv4Data": [data], "IPv6Data": []},
    )
    if ctx.info.connectivity_scope in ("global", ""):
        node = {"Address": str(pool.network_address + 200), "BindAddress": "", "Self": False}
        ctx.need(f"{ND}.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": node})
        ctx.need(f"{ND}.DiscoverDelete", {"DiscoveryType": 1, "DiscoveryData": node})
    eid = ctx.new_id()
    body = {
        "NetworkID": nid,
        "EndpointID": eid,
        "Options": dict(PORTS),
        "Interface": {
            "Address": f"{pool.network_address + 2}/{pool.prefixlen}",
            "AddressIPv6": "",
            "MacAddress": "",
        },
    }
    ctx.need(f"{ND}.CreateEndpoint", body)
    ctx.need(f"{ND}.DeleteEndpoint", {"NetworkID": nid, "EndpointID": eid})
    ctx.need(f"{ND}.DeleteNetwork", {"NetworkID": nid})
    ctx.need(f"{ND}.FreeNetwork", {"NetworkID": nid})


@check("sequences/rollback-join", needs=[ND])
def rollback_join(ctx: Context) -> None:
    """A Join the plugin served but dockerd failed (an answer lost or cut short, 20.10
    unable to parse it) is followed by ``DeleteEndpoint`` without ``Leave``: the plugin
    accepts it and frees what the endpoint held, so that the same endpoint can be
    created and joined again (``libnetwork/endpoint.go``, ``sbJoin``'s rollback;
    ``rules.rollback``)."""
    net = ctx.create_network()
    eid = ctx.new_id()
    body = ctx.endpoint_body(net, eid)
    ctx.need(f"{ND}.CreateEndpoint", body)
    ctx.need(f"{ND}.Join", ctx.join_body(net, eid))
    ctx.need(f"{ND}.DeleteEndpoint", {"NetworkID": net.id, "EndpointID": eid})
    ctx.need(f"{ND}.CreateEndpoint", body)
    ctx.need(f"{ND}.Join", ctx.join_body(net, eid))


@check("sequences/rollback-create-endpoint", needs=[ND])
def rollback_create_endpoint(ctx: Context) -> None:
    """A CreateEndpoint whose answer dockerd refuses (any, in 28; an address or MAC it may
    not set, in 20.10) is followed by ``DeleteEndpoint`` at once: accepted, and the
    endpoint can be created again (``libnetwork/drivers/remote/driver.go``,
    ``CreateEndpoint``)."""
    net = ctx.create_network()
    eid = ctx.new_id()
    body = ctx.endpoint_body(net, eid)
    ctx.need(f"{ND}.CreateEndpoint", body)
    ctx.need(f"{ND}.DeleteEndpoint", {"NetworkID": net.id, "EndpointID": eid})
    ctx.need(f"{ND}.CreateEndpoint", body)
