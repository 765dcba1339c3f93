"""The checks of one call at a time: the handshake, answers dockerd can use, the
semantics a careful driver keeps, and the kit's own hygiene. Each docstring is the
check's description (``fakedriver check --list``, and docs/conformance.md), with the
moby source it rests on (``libnetwork/...`` paths of moby/moby v28; 20.10 vendors the
same files under ``vendor/github.com/docker/libnetwork/``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from typing import Any

from .client import Exchange
from .kit import IPAM, ND, Context, Failed, Net, Skipped, check, refused
from .rules import dockerd_rejects, go_field

ACTIVATE = "Plugin.Activate"


def handshake(ctx: Context) -> None:
    """What dockerd does first (``pkg/plugins/plugins.go``): Activate, then the
    capabilities of every subsystem the plugin implements; kept in ``ctx.info`` (and its
    exchanges for the handshake checks)."""
    info = ctx.info
    info.exchanges[ACTIVATE] = ctx.client.call(ACTIVATE)
    activate = info.exchanges[ACTIVATE]
    if _rejects(ctx, ACTIVATE, activate) is None:
        implements = go_field(activate.answer, "Implements") or []
        info.implements = {ND, IPAM} & set(implements)
    if ND in info.implements:
        caps = info.exchanges[f"{ND}.GetCapabilities"] = ctx.client.call(f"{ND}.GetCapabilities")
        why = _rejects(ctx, f"{ND}.GetCapabilities", caps)
        if why is not None:
            info.refused[ND] = f"GetCapabilities: {why} (libnetwork/drivers/remote/driver.go)"
        else:
            answer = caps.answer
            info.scope = go_field(answer, "Scope") or ""
            info.connectivity_scope = go_field(answer, "ConnectivityScope") or ""
            info.gw_alloc_checker = bool(go_field(answer, "GwAllocChecker"))
    if IPAM in info.implements:
        caps = info.exchanges[f"{IPAM}.GetCapabilities"] = ctx.client.call(
            f"{IPAM}.GetCapabilities"
        )
        if _rejects(ctx, f"{IPAM}.GetCapabilities", caps) is None:
            info.requires_mac = bool(go_field(caps.answer, "RequiresMACAddress"))
            info.requires_replay = bool(go_field(caps.answer, "RequiresRequestReplay"))
        method = f"{IPAM}.GetDefaultAddressSpaces"
        spaces = info.exchanges[method] = ctx.client.call(method)
        why = _rejects(ctx, method, spaces)
        if why is not None:
            info.refused[IPAM] = f"GetDefaultAddressSpaces: {why}"
        else:
            local = go_field(spaces.answer, "LocalDefaultAddressSpace") or ""
            global_ = go_field(spaces.answer, "GlobalDefaultAddressSpace") or ""
            info.spaces = (local, global_)


def _rejects(ctx: Context, method: str, exchange: Exchange, request: Any = None) -> str | None:
    if exchange.error is not None:
        return exchange.error
    return dockerd_rejects(method, request, exchange.status, exchange.body, ctx.dockerd)


def _handshake_call(ctx: Context, method: str) -> Exchange:
    exchange: Exchange = ctx.info.exchanges[method]
    ctx.calls.append(exchange)
    why = _rejects(ctx, method, exchange)
    if why is not None:
        raise Failed(f"{method}: {why}")
    return exchange


# -- handshake ------------------------------------------------------------------------------


@check("handshake/activate")
def activate(ctx: Context) -> None:
    """``Plugin.Activate`` answers ``Implements`` listing ``NetworkDriver`` and/or
    ``IpamDriver``; without either, dockerd says "Plugin does not implement the requested
    driver" and uses nothing of the plugin (``pkg/plugins/plugins.go``, ``Manifest``)."""
    _handshake_call(ctx, ACTIVATE)


@check("handshake/network-capabilities", needs=[ND])
def network_capabilities(ctx: Context) -> None:
    """``NetworkDriver.GetCapabilities``: ``Scope`` ``local`` or ``global``,
    ``ConnectivityScope`` empty, ``local`` or ``global``, ``GwAllocChecker`` a bool (28).
    Anything else and dockerd never registers the driver: every ``network create``
    then fails with "could not resolve driver" until the daemon restarts
    (``libnetwork/drivers/remote/driver.go``, ``getCapabilities``)."""
    _handshake_call(ctx, f"{ND}.GetCapabilities")


@check("handshake/ipam-capabilities", needs=[IPAM])
def ipam_capabilities(ctx: Context) -> None:
    """``IpamDriver.GetCapabilities``: ``RequiresMACAddress`` and ``RequiresRequestReplay``
    as bools. dockerd registers an IPAM driver that fails it with both false
    (``libnetwork/ipams/remote/remote.go``, ``Register``); a driver that needs either
    must answer it."""
    _handshake_call(ctx, f"{IPAM}.GetCapabilities")


@check("handshake/address-spaces", needs=[IPAM])
def address_spaces(ctx: Context) -> None:
    """``IpamDriver.GetDefaultAddressSpaces``: two non-empty names. 20.10 calls it once at
    activation and does not register an IPAM driver that fails it; 28 calls it before
    every RequestPool, and a failure fails the ``network create``
    (``libnetwork/ipams/remote/remote.go``)."""
    exchange = _handshake_call(ctx, f"{IPAM}.GetDefaultAddressSpaces")
    for key in ("LocalDefaultAddressSpace", "GlobalDefaultAddressSpace"):
        if not go_field(exchange.answer, key):
            raise Failed(f"{key} is empty: dockerd sends it back as RequestPool's AddressSpace")


# -- answers -----------------------------------------------------------------------------------


@check("answers/create-endpoint", needs=[ND])
def create_endpoint(ctx: Context) -> None:
    """``CreateEndpoint``'s ``Interface``: no ``Address``/``AddressIPv6`` in a slot IPAM
    already filled, a ``MacAddress`` that parses, and none when the request had one, else
    "driver modified interface ..." and a rollback (``libnetwork/drivers/remote/driver.go``,
    ``parseInterface``; ``libnetwork/endpoint_info.go``, ``SetMacAddress``/``SetIPAddress``).
    Asked twice: without a MAC, and with one (``RequiresMACAddress`` or ``--mac-address``)."""
    net = ctx.create_network()
    for mac in ("", "02:42:0a:a0:00:09"):
        ctx.need(f"{ND}.CreateEndpoint", ctx.endpoint_body(net, ctx.new_id(), mac=mac))


@check("answers/join", needs=[ND])
def join(ctx: Context) -> None:
    """``Join``: ``Gateway``/``GatewayIPv6`` bare IPs (no prefix), ``InterfaceName`` an
    object or null, each static route a CIDR ``Destination`` and a bare-IP or empty
    ``NextHop``; else "unable to parse Gateway" and the container does not start
    (``libnetwork/drivers/remote/driver.go``, ``Join``; an empty Destination panics 28's
    ``libnetwork/endpoint_info.go``)."""
    net = ctx.create_network()
    eid = ctx.new_id()
    ctx.need(f"{ND}.CreateEndpoint", ctx.endpoint_body(net, eid))
    ctx.need(f"{ND}.Join", ctx.join_body(net, eid))


@check("answers/teardown", needs=[ND])
def teardown(ctx: Context) -> None:
    """``Leave``, ``DeleteEndpoint`` and ``DeleteNetwork`` of what is held succeed.
    dockerd only logs their failure and forgets the network or endpoint anyway
    (``libnetwork/endpoint.go``, ``sbLeave``; ``libnetwork/network.go``, ``delete``), so
    a plugin that fails them keeps what dockerd no longer knows."""
    net = ctx.create_network()
    eid = ctx.new_id()
    ctx.need(f"{ND}.CreateEndpoint", ctx.endpoint_body(net, eid))
    ctx.need(f"{ND}.Join", ctx.join_body(net, eid))
    ctx.need(f"{ND}.Leave", {"NetworkID": net.id, "EndpointID": eid})
    ctx.need(f"{ND}.DeleteEndpoint", {"NetworkID": net.id, "EndpointID": eid})
    ctx.need(f"{ND}.DeleteNetwork", {"NetworkID": net.id})


@check("answers/endpoint-info", needs=[ND])
def endpoint_info(ctx: Context) -> None:
    """``EndpointOperInfo`` answers ``Value`` as a JSON object (or null), and
    ``ProgramExternalConnectivity``/``RevokeExternalConnectivity`` succeed or answer 404
    (``libnetwork/drivers/remote/driver.go``: a 404 from those two is success)."""
    net = ctx.create_network()
    eid = ctx.new_id()
    ids = {"NetworkID": net.id, "EndpointID": eid}
    ctx.need(f"{ND}.CreateEndpoint", ctx.endpoint_body(net, eid))
    ctx.need(f"{ND}.Join", ctx.join_body(net, eid))
    ctx.need(f"{ND}.EndpointOperInfo", ids)
    options = {**ctx.join_body(net, eid)["Options"]}
    if ctx.dockerd == "28":
        options["com.docker.network.driver.private.no_proxy_6to4"] = False
    ctx.need(f"{ND}.ProgramExternalConnectivity", {**ids, "Options": options})
    ctx.need(f"{ND}.RevokeExternalConnectivity", ids)


@check("answers/request-pool", needs=[IPAM])
def request_pool(ctx: Context) -> None:
    """``RequestPool``: a ``Pool`` in CIDR network form and a ``PoolID``; a pool asked for
    (``--subnet``) is the one answered; ``Data`` a map of strings. dockerd parses the Pool
    (20.10 ``net.ParseCIDR``, 28 ``netip.ParsePrefix``) and fails the ``network create``
    (``libnetwork/ipams/remote/remote.go``, ``RequestPool``). IPv4 chosen by the
    plugin, IPv4 and IPv6 asked for."""
    ctx.request_pool()
    for version in (4, 6):
        asked = ctx.subnet(24 if version == 4 else 64, version)
        _, pool = ctx.request_pool(str(asked), v6=version == 6)
        if ipaddress.ip_network(pool, strict=False) != asked:
            raise Failed(f"RequestPool asked for {asked} answered {pool}")


@check("answers/request-address", needs=[IPAM])
def request_address(ctx: Context) -> None:
    """``RequestAddress``: a non-empty ``Address`` in CIDR form with the pool's prefix
    length (a bare IP gives "invalid CIDR address", none "no address returned"); the
    address asked for (``--ip``, ``--gateway``) is the one answered
    (``libnetwork/ipams/remote/remote.go``, ``RequestAddress``). The gateway's request
    carries ``RequestAddressType: com.docker.network.gateway``."""
    pool_id, pool = ctx.request_pool(str(ctx.subnet(24)))
    net = ipaddress.ip_network(pool, strict=False)
    gateway = {
        "PoolID": pool_id,
        "Address": "",
        "Options": {"RequestAddressType": "com.docker.network.gateway"},
    }
    ctx.need(f"{IPAM}.RequestAddress", gateway)
    ctx.need(f"{IPAM}.RequestAddress", ctx.address_body(pool_id))
    wanted = net.network_address + 77
    answer = ctx.need(f"{IPAM}.RequestAddress", ctx.address_body(pool_id, str(wanted)))
    got = go_field(answer, "Address")
    if ipaddress.ip_interface(got).ip != wanted:
        raise Failed(f"RequestAddress asked for {wanted}, answered {got}")


def _dialect(ctx: Context, calls: list[tuple[str, dict[str, Any]]], key: str) -> None:
    """Provoke refusals; dockerd must read each as the plugin's error: its reason is the
    status, or the error field of the call's dialect (not, say, the "no address returned"
    of an answer it read as success)."""
    seen = 0
    for method, body in calls:
        exchange = ctx.call(method, body, probe=True)
        if not refused(exchange) or exchange.error is not None:
            continue
        seen += 1
        why = dockerd_rejects(method, body, exchange.status, exchange.body, ctx.dockerd)
        if why is None or not why.startswith(("HTTP ", "remote: ")):
            said = f"dockerd says {why!r}" if why else "to dockerd this is success"
            subsystem = method.partition(".")[0]
            raise Failed(
                f"{method} refused in the other dialect: dockerd reads {subsystem} errors "
                f"from {key!r} (or a status other than 200); {said}: {exchange.brief()}"
            )
    if not seen:
        raise Skipped("the plugin refused none of the calls (semantics/refuse-unknown-* say so)")


@check("answers/network-error-dialect", needs=[ND])
def network_error_dialect(ctx: Context) -> None:
    """A refused NetworkDriver call is an error to dockerd: a status other than 200, or 200
    with a non-empty ``Err``. A 200 with ``Error`` (IPAM's key) is success to dockerd
    (``libnetwork/drivers/remote/api/api.go``, ``Response``; ``pkg/plugins/client.go``).
    Provoked with calls on a network and an endpoint nobody created."""
    net = ctx.create_network()
    unknown = ctx.new_id()
    _dialect(
        ctx,
        [
            (f"{ND}.CreateEndpoint", ctx.endpoint_body(Net(unknown, net.pool), ctx.new_id())),
            (f"{ND}.Join", ctx.join_body(net, ctx.new_id())),
        ],
        "Err",
    )


@check("answers/ipam-error-dialect", needs=[IPAM])
def ipam_error_dialect(ctx: Context) -> None:
    """A refused IpamDriver call is an error to dockerd: a status other than 200, or 200
    with a non-empty ``Error``. A 200 with ``Err`` (NetworkDriver's key) is success to
    dockerd (``libnetwork/ipams/remote/api/api.go``, ``Response``). Provoked with a pool
    nobody requested and an address already handed out."""
    pool_id, pool = ctx.request_pool(str(ctx.subnet(24)))
    taken = str(ipaddress.ip_network(pool, strict=False).network_address + 9)
    ctx.need(f"{IPAM}.RequestAddress", ctx.address_body(pool_id, taken))
    _dialect(
        ctx,
        [
            (f"{IPAM}.RequestAddress", ctx.address_body("no-such-pool-" + ctx.nonce)),
            (f"{IPAM}.RequestAddress", ctx.address_body(pool_id, taken)),
            (f"{IPAM}.ReleasePool", {"PoolID": "no-such-pool-" + ctx.nonce}),
        ],
        "Error",
    )


# -- semantics ---------------------------------------------------------------------------------


def _must_refuse(ctx: Context, method: str, body: dict[str, Any], what: str) -> bool:
    """Whether the plugin refused; in strict mode a call it accepted fails the check."""
    exchange = ctx.call(method, body, probe=True)
    if refused(exchange):
        return True
    if ctx.strict:
        raise Failed(f"{method} on {what} was accepted: {exchange.brief()}")
    return False


@check("semantics/refuse-unknown-network", needs=[ND])
def refuse_unknown_network(ctx: Context) -> None:
    """Calls on a network the plugin was never told of are refused (as errors of the
    NetworkDriver dialect: answers/network-error-dialect), and leave nothing behind: the
    same ids can be created afterwards. dockerd never sends them but after a daemon crash
    or a lost answer; a driver that accepts them hides dockerd's or its own bugs.
    ``--lenient``: accepting them passes."""
    pool = ctx.subnet(24)
    nid, eid = ctx.new_id(), ctx.new_id()
    ghost = ctx.endpoint_body(Net(nid, pool), eid)
    made = _must_refuse(ctx, f"{ND}.CreateEndpoint", ghost, "an unknown network")
    _must_refuse(ctx, f"{ND}.DeleteNetwork", {"NetworkID": ctx.new_id()}, "an unknown network")
    if made:  # nothing behind: the network and the endpoint can be made now
        ctx.create_network(pool, nid)
        ctx.need(f"{ND}.CreateEndpoint", ghost)


@check("semantics/refuse-unknown-endpoint", needs=[ND])
def refuse_unknown_endpoint(ctx: Context) -> None:
    """On a network it holds, ``Join``, ``Leave`` and ``DeleteEndpoint`` of an endpoint
    the plugin was never told of are refused, and leave nothing behind: that endpoint can
    be created and joined afterwards. ``--lenient``: accepting them passes."""
    net = ctx.create_network()
    eid = ctx.new_id()
    ids = {"NetworkID": net.id, "EndpointID": eid}
    joined = _must_refuse(ctx, f"{ND}.Join", ctx.join_body(net, eid), "an unknown endpoint")
    _must_refuse(
        ctx, f"{ND}.Leave", {"NetworkID": net.id, "EndpointID": ctx.new_id()}, "an unknown endpoint"
    )
    _must_refuse(
        ctx,
        f"{ND}.DeleteEndpoint",
        {"NetworkID": net.id, "EndpointID": ctx.new_id()},
        "an unknown endpoint",
    )
    if joined:
        ctx.need(f"{ND}.CreateEndpoint", {**ctx.endpoint_body(net, eid), **ids})
        ctx.need(f"{ND}.Join", ctx.join_body(net, eid))


@check("semantics/refuse-unknown-pool", needs=[IPAM])
def refuse_unknown_pool(ctx: Context) -> None:
    """``RequestAddress``, ``ReleaseAddress`` and ``ReleasePool`` of a pool the plugin never
    handed out are refused. ``--lenient``: accepting them passes."""
    ghost = "no-such-pool-" + ctx.nonce
    _must_refuse(ctx, f"{IPAM}.RequestAddress", ctx.address_body(ghost), "an unknown pool")
    _must_refuse(
        ctx, f"{IPAM}.ReleaseAddress", {"PoolID": ghost, "Address": "10.0.0.1"}, "an unknown pool"
    )
    _must_refuse(ctx, f"{IPAM}.ReleasePool", {"PoolID": ghost}, "an unknown pool")


def _addresses(ctx: Context, pool_id: str, count: int) -> list[str]:
    return [
        str(go_field(ctx.need(f"{IPAM}.RequestAddress", ctx.address_body(pool_id)), "Address"))
        for _ in range(count)
    ]


@check("semantics/unique-addresses", needs=[IPAM])
def unique_addresses(ctx: Context) -> None:
    """No address is handed out twice while held: 24 addresses of one pool, one after
    the other, are 24 different ones. dockerd trusts the answer: two containers would
    share an address."""
    pool_id, _ = ctx.request_pool(str(ctx.subnet(24)))
    given = _addresses(ctx, pool_id, 24)
    twice = sorted({a for a in given if given.count(a) > 1})
    if twice:
        raise Failed(f"handed out twice while held: {', '.join(twice)}")


@check("semantics/addresses-in-pool", needs=[IPAM])
def addresses_in_pool(ctx: Context) -> None:
    """Every address handed out is inside its pool, with the pool's prefix length, in a
    pool the kit asked for and in one the plugin chose."""
    for asked in (str(ctx.subnet(24)), ""):
        pool_id, pool = ctx.request_pool(asked)
        net = ipaddress.ip_network(pool, strict=False)
        for address in _addresses(ctx, pool_id, 6):
            iface = ipaddress.ip_interface(address)
            if iface.ip not in net or iface.network.prefixlen != net.prefixlen:
                raise Failed(f"{address} is not an address of pool {pool} (PoolID {pool_id})")


@check("semantics/address-reuse", needs=[IPAM])
def address_reuse(ctx: Context) -> None:
    """An address held is refused to a second request for it, and once released it can
    be had again (a container restarted with ``--ip`` asks for its address back)."""
    pool_id, pool = ctx.request_pool(str(ctx.subnet(24)))
    wanted = str(ipaddress.ip_network(pool, strict=False).network_address + 50)
    ctx.need(f"{IPAM}.RequestAddress", ctx.address_body(pool_id, wanted))
    again = ctx.call(f"{IPAM}.RequestAddress", ctx.address_body(pool_id, wanted))
    if not refused(again):
        raise Failed(f"{wanted} handed out again while held: {again.brief()}")
    ctx.need(f"{IPAM}.ReleaseAddress", {"PoolID": pool_id, "Address": wanted})
    answer = ctx.need(f"{IPAM}.RequestAddress", ctx.address_body(pool_id, wanted))
    if ipaddress.ip_interface(go_field(answer, "Address")).ip != ipaddress.ip_address(wanted):
        raise Failed(f"released {wanted}, asked for it again, got {go_field(answer, 'Address')}")


@check("semantics/capabilities-idempotent")
def capabilities_idempotent(ctx: Context) -> None:
    """``Plugin.Activate``, both ``GetCapabilities`` and ``GetDefaultAddressSpaces`` answer
    the same every time: dockerd calls them again after each of its restarts (and 28
    calls GetDefaultAddressSpaces before every pool), and keeps what it got first."""
    methods = [ACTIVATE]
    if ND in ctx.info.implements:
        methods.append(f"{ND}.GetCapabilities")
    if IPAM in ctx.info.implements:
        methods += [f"{IPAM}.GetCapabilities", f"{IPAM}.GetDefaultAddressSpaces"]
    for method in methods:
        answers = [ctx.call(method).answer for _ in range(3)]
        if any(a != answers[0] for a in answers):
            raise Failed(f"{method} answered differently: {answers}")


def _parallel(ctx: Context, calls: list[tuple[str, dict[str, Any]]]) -> list[Exchange]:
    """Make the calls at once, one thread each, started together."""
    barrier = threading.Barrier(len(calls))
    results: list[Exchange | None] = [None] * len(calls)

    def one(index: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=10)
        results[index] = ctx.call(*calls[index])

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=ctx.client.timeout * 2 + 10)
    done = [r for r in results if r is not None]
    if len(done) != len(calls):
        raise Failed(f"{len(calls) - len(done)} of {len(calls)} parallel calls never returned")
    for (method, body), exchange in zip(calls, done, strict=True):
        why = _rejects(ctx, method, exchange, body)
        if why is not None:
            raise Failed(f"{method}, {len(calls)} at once: {why}: {exchange.brief()}")
    return done


@check("semantics/parallel-create-endpoint", needs=[ND])
def parallel_create_endpoint(ctx: Context) -> None:
    """N ``CreateEndpoint`` at once (``--parallel``, dockerd starts containers
    concurrently) all succeed, and the MACs answered, if any, differ."""
    net = ctx.create_network()
    calls = [
        (f"{ND}.CreateEndpoint", ctx.endpoint_body(net, ctx.new_id())) for _ in range(ctx.parallel)
    ]
    done = _parallel(ctx, calls)
    macs = [go_field(go_field(e.answer, "Interface") or {}, "MacAddress") for e in done]
    macs = [m for m in macs if m]
    if len(set(macs)) != len(macs):
        raise Failed(f"the same MAC answered twice: {sorted(macs)}")


@check("semantics/parallel-request-address", needs=[IPAM])
def parallel_request_address(ctx: Context) -> None:
    """N ``RequestAddress`` of one pool at once (``--parallel``) all succeed with N
    different addresses: an allocator without a lock hands one out twice."""
    pool_id, _ = ctx.request_pool(str(ctx.subnet(24)))
    done = _parallel(
        ctx, [(f"{IPAM}.RequestAddress", ctx.address_body(pool_id)) for _ in range(ctx.parallel)]
    )
    given = [str(go_field(e.answer, "Address")) for e in done]
    if len(set(given)) != len(given):
        twice = sorted({a for a in given if given.count(a) > 1})
        raise Failed(f"{len(given)} at once, handed out twice: {', '.join(twice)}")


# -- hygiene -------------------------------------------------------------------------------------


@check("hygiene/cleanup")
def cleanup(ctx: Context) -> None:
    """Everything the kit made (with ids of its own, ``--network-prefix``, in subnets of its
    own, ``--subnet``) was undone after each check, even a failed one, in dockerd's
    order; this fails naming what the plugin would not undo."""
