"""``fakedriver serve``: run the fake as a plugin that a real dockerd loads."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from types import FrameType
from typing import Any

from ._app import FakeNetDriver
from ._clock import RealClock
from ._connection import Limits
from ._control import control
from ._journal import Journal
from ._links import Checkpointed, Links, VethLinks, reconcile
from ._persona import Persona
from ._server import PLUGIN_DIR, SPEC_DIR, PluginServer, ServeError
from ._statefile import state_command, state_parser
from ._store import StateFileError, Store, StoreError

#: A plugin name: one path component, no dot first (no ``..``, no hidden file).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a plugin name: letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(value: str) -> int | float:
        number = kind(value)
        if not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number, not {value}")
        return number

    parse.__name__ = kind.__name__  # argparse names the type in its error
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakedriver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the fake driver to dockerd",
        description="Serve the fake driver as a legacy (v1) plugin: dockerd finds it as "
        "`docker network create -d NAME` (and `--ipam-driver NAME`).",
    )
    where = serve.add_argument_group("where to listen")
    where.add_argument(
        "--name",
        default="fake",
        type=_name,
        help=f"plugin name: listen on {PLUGIN_DIR}/NAME.sock (default: fake)",
    )
    where.add_argument("--socket", metavar="PATH", help="listen on this unix socket instead")
    where.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help=f"listen on TCP and write {SPEC_DIR}/NAME.spec (port 0: any free)",
    )
    where.add_argument(
        "--spec-dir", default=SPEC_DIR, help=f"where to write NAME.spec (default: {SPEC_DIR})"
    )

    persona = serve.add_argument_group("persona (what the driver announces)")
    persona.add_argument(
        "--scope",
        choices=("local", "global"),
        default="local",
        help="Scope in GetCapabilities (default: local)",
    )
    persona.add_argument(
        "--connectivity-scope",
        choices=("", "local", "global"),
        default="",
        help="ConnectivityScope in GetCapabilities (default: same as scope)",
    )
    persona.add_argument("--gw-alloc-checker", action="store_true", help="announce GwAllocChecker")
    persona.add_argument("--no-ipam", action="store_true", help="do not implement IpamDriver")
    persona.add_argument(
        "--requires-mac-address",
        action="store_true",
        help="IPAM capability: endpoint addresses are requested with their MAC",
    )
    persona.add_argument(
        "--requires-request-replay",
        action="store_true",
        help="IPAM capability: dockerd replays pools and addresses at restart",
    )
    persona.add_argument(
        "--local-address-space",
        default="LocalDefault",
        metavar="NAME",
        help="IPAM local default address space (default: LocalDefault)",
    )
    persona.add_argument(
        "--global-address-space",
        default="GlobalDefault",
        metavar="NAME",
        help="IPAM global default address space (default: GlobalDefault)",
    )
    persona.add_argument(
        "--lenient",
        action="store_true",
        help="record lifecycle violations instead of refusing the call",
    )
    persona.add_argument("--seed", type=int, default=0, help="seed for generated MACs (default 0)")

    behaviour = serve.add_argument_group("behaviour")
    behaviour.add_argument(
        "--links",
        choices=("none", "veth"),
        default="none",
        help="veth: make a veth pair per Join so containers get a real interface with the "
        "fake's address (needs root); none (default): Join answers no interface and "
        "no gateway, and dockerd routes the container through docker_gwbridge",
    )
    behaviour.add_argument(
        "--faults", metavar="FILE", help="load fault rules from a TOML scenario file at start"
    )
    behaviour.add_argument(
        "--state",
        metavar="FILE",
        help="keep the state in FILE, an SQLite database this server holds alone: loaded "
        "at start, each call's changes committed before it is answered",
    )
    behaviour.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="one line per call on stderr, as text or JSON lines",
    )
    behaviour.add_argument("--quiet", action="store_true", help="no per-call log")

    api = serve.add_argument_group("control API (faults, journal, state over HTTP)")
    api.add_argument(
        "--control-socket",
        metavar="PATH",
        help="serve the control API on its own unix socket, and only the plugin "
        "protocol on the plugin socket (default: both on the plugin socket, "
        "the control API under /fakedriver/)",
    )
    api.add_argument(
        "--control-token",
        metavar="TOKEN",
        help="require Authorization: Bearer TOKEN on every control request; over --tcp "
        "the control API is served only with a token",
    )
    api.add_argument("--no-control", action="store_true", help="serve no control API at all")

    limits = serve.add_argument_group("limits (what one connection may send, and how fast)")
    default = Limits()
    limits.add_argument(
        "--max-body",
        type=_positive(int),
        default=default.max_body,
        metavar="BYTES",
        help=f"largest request body; larger gets 413 (default: {default.max_body})",
    )
    limits.add_argument(
        "--read-timeout",
        type=_positive(float),
        default=default.read_timeout,
        metavar="SECONDS",
        help="from a request's first byte to its last; slower gets 408 "
        f"(default: {default.read_timeout})",
    )
    limits.add_argument(
        "--idle-timeout",
        type=_positive(float),
        default=default.idle_timeout,
        metavar="SECONDS",
        help="how long a keep-alive connection may wait for its next request (default: "
        f"{default.idle_timeout}, longer than Go's 90 s, so dockerd closes first)",
    )
    limits.add_argument(
        "--max-connections",
        type=_positive(int),
        default=default.max_connections,
        metavar="N",
        help=f"connections served at once; more get 503 (default: {default.max_connections})",
    )
    limits.add_argument(
        "--journal-size",
        type=_positive(int),
        default=10_000,
        metavar="N",
        help="calls the journal keeps (the oldest are evicted; default: 10000)",
    )

    state_parser(commands)
    return parser


def build(args: argparse.Namespace) -> FakeNetDriver:
    """The driver ``fakedriver serve`` runs, from its parsed arguments."""
    veth = args.links == "veth"
    persona = Persona(
        scope=args.scope,
        connectivity_scope=args.connectivity_scope,
        gw_alloc_checker=args.gw_alloc_checker,
        ipam=not args.no_ipam,
        requires_mac_address=args.requires_mac_address,
        requires_request_replay=args.requires_request_replay,
        local_address_space=args.local_address_space,
        global_address_space=args.global_address_space,
        strict=not args.lenient,
        seed=args.seed,
        join_gateway=veth,  # a gateway with no interface makes dockerd fail the start
    )
    links: Links | None = VethLinks() if veth else None
    store = Store.open(args.state) if args.state else None
    if store is not None and links is not None:  # the intent to make a pair is saved first
        links = Checkpointed(links, lambda eid: store.commit(app.state, [("links", eid)]))
    app = FakeNetDriver(persona, links=links, clock=RealClock())
    app.engine.calls = Journal(maxlen=args.journal_size)  # a ring: serve runs for long
    try:
        if args.faults:
            app.faults.load(args.faults)
        if store is not None:
            app.restore(store.load())
            app.engine.attach(store)
    except BaseException:
        if store is not None:
            store.close()
        raise
    return app


def _reconcile(args: argparse.Namespace, app: FakeNetDriver) -> None:
    """Make the host agree with the loaded state's links, and say so: once the socket is
    ours (no live server shares them) and before the first call."""
    if not args.state or app.links is None:
        return
    done = reconcile(app.state, app.links)
    if done.removed and app.engine.store is not None:
        app.engine.store.commit(app.state, [("links", eid) for eid in done.removed])
    if args.quiet or not (done.removed or done.adopted):
        return
    if args.log_format == "json":
        line = json.dumps({"event": "links", "removed": done.removed, "adopted": done.adopted})
    else:
        line = (
            f"fakedriver: links: removed the veth pairs of {len(done.removed)} endpoint(s) no "
            f"saved join owns, adopted {len(done.adopted)}"
            + "".join(f"\n  removed: {eid}" for eid in done.removed)
        )
    print(line, file=sys.stderr, flush=True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may be anything


def _plugin_server(args: argparse.Namespace, app: FakeNetDriver, **shared: Any) -> PluginServer:
    """The server of the plugin socket (or TCP address) the arguments ask for."""
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        host = host or "127.0.0.1"
        if not _loopback(host):
            _say(
                args,
                f"fakedriver: warning: serving the plugin protocol on {host}, beyond this "
                "host: anyone who can reach it can create and delete networks",
            )
        spec = os.path.join(args.spec_dir, f"{args.name}.spec")
        return PluginServer(app, tcp=(host, int(port)), spec=spec, **shared)
    path = args.socket or os.path.join(PLUGIN_DIR, f"{args.name}.sock")
    try:
        return PluginServer(app, socket_path=path, **shared)
    except PermissionError:
        if args.socket or os.geteuid() == 0:
            raise
        raise ServeError(f"needs root for {PLUGIN_DIR}; use --socket PATH") from None


def _say(args: argparse.Namespace, line: str) -> None:
    if args.log_format == "json":  # keep the stream JSON lines throughout
        line = json.dumps({"event": "server", "message": line})
    print(line, file=sys.stderr, flush=True)


def serve(args: argparse.Namespace) -> int:
    app = build(args)
    log = None if args.quiet else sys.stderr
    api = None if args.no_control else partial(control, app)
    limits = Limits(
        max_body=args.max_body,
        read_timeout=args.read_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
    )
    server = _plugin_server(
        args,
        app,
        log=log,
        log_format=args.log_format,
        control=None if args.control_socket else api,
        control_token=args.control_token,
        limits=limits,
    )
    if args.tcp and api is not None and not args.control_socket and not args.control_token:
        _say(args, "fakedriver: the control API is not served over TCP without --control-token")
    _reconcile(args, app)
    servers = [server]
    if args.control_socket and api is not None:
        servers.append(
            PluginServer(
                app,
                socket_path=args.control_socket,
                control=api,
                control_token=args.control_token,
                protocol=False,
                limits=limits,
            )
        )
        threading.Thread(target=servers[1].serve_forever, daemon=True).start()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    where = " and control API on " + servers[1].address if len(servers) > 1 else ""
    banner = f"fakedriver: serving on {server.address}{where}"
    if args.log_format == "json":  # keep the stream JSON lines throughout
        banner = json.dumps({"event": "serving", "message": banner})
    print(banner, file=sys.stderr, flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    finally:
        for each in servers[1:]:
            each.shutdown()
        for each in servers:
            each.close()
        if app.engine.store is not None:
            app.engine.store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "state":
            return state_command(args)
        return serve(args)
    except (ServeError, StateFileError, ValueError) as exc:
        print(f"fakedriver: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # at start: the links reconciled could not be saved
        print(f"fakedriver: cannot save state file {args.state}: {exc}", file=sys.stderr)
        return 2
