"""``fakedriver check``: run the conformance kit against a plugin (or replay a session
against it); ``fakedriver record``: record what a dockerd sends a plugin."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..conformance.client import DEFAULT_TIMEOUT, TargetError, resolve
from ..conformance.kit import DEFAULT_PREFIX, DEFAULT_SUBNETS, GROUPS
from ..conformance.report import as_json, as_junit
from ..conformance.rules import DEFAULT_DOCKERD, VERSIONS
from ..conformance.run import check_target, select
from ..conformance.session import SessionError


def _groups(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def check_parser(commands: Any) -> None:
    """Add ``check`` and ``record`` to the ``fakedriver`` sub-commands."""
    made = commands.add_parser(
        "check",
        help="run the conformance kit against a network/IPAM plugin",
        description="Drive a Docker network or IPAM plugin as dockerd does and check every "
        "answer under dockerd's rules: one line per check (PASS, FAIL with the reason and "
        "the calls that showed it, SKIP with why) and a summary. Exit 0 when nothing "
        "failed, 1 when a check failed, 2 for a usage or target error. TARGET: a unix "
        "socket path, an http:// URL, or a plugin name found as dockerd finds it "
        "(/run/docker/plugins/NAME.sock, then NAME.spec/.json in /etc/docker/plugins and "
        "/usr/lib/docker/plugins, then a managed plugin through 'docker plugin inspect').",
        allow_abbrev=False,
    )
    made.add_argument("target", metavar="TARGET", nargs="?", help="the plugin to check")
    made.add_argument(
        "--session",
        metavar="FILE",
        help="replay this recorded session (fakedriver record) instead of the kit's "
        "sequences: the handshake, the session, the cleanup",
    )
    made.add_argument(
        "--dockerd",
        choices=VERSIONS,
        default=DEFAULT_DOCKERD,
        help=f"whose rules judge the answers (default: {DEFAULT_DOCKERD})",
    )
    made.add_argument(
        "--only",
        type=_groups,
        metavar="GROUP[,GROUP]",
        help=f"run only these: {', '.join(GROUPS)} (or group/name)",
    )
    made.add_argument("--skip", type=_groups, metavar="GROUP[,GROUP]", help="leave these out")
    made.add_argument("--json", action="store_true", help="print one JSON document instead")
    made.add_argument("--junit", metavar="FILE", help="also write the report as JUnit XML")
    made.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each call may take; longer fails the check (default: {DEFAULT_TIMEOUT:g})",
    )
    made.add_argument(
        "--network-prefix",
        default=DEFAULT_PREFIX,
        metavar="HEX",
        help="every NetworkID and EndpointID of the run starts with these hex digits "
        f"(default: {DEFAULT_PREFIX})",
    )
    made.add_argument(
        "--subnet",
        action="append",
        metavar="CIDR",
        help="the IPv4 or IPv6 network the run's subnets come from; once per family "
        f"(default: {' and '.join(DEFAULT_SUBNETS)})",
    )
    made.add_argument(
        "--lenient",
        action="store_true",
        help="accepting calls on unknown networks, endpoints and pools passes",
    )
    made.add_argument(
        "--parallel",
        type=int,
        default=8,
        metavar="N",
        help="calls at once in the parallel checks (default: 8)",
    )
    made.add_argument(
        "--list", action="store_true", help="list the checks and what each asks, and exit"
    )
    made.set_defaults(subparser=made)

    record = commands.add_parser(
        "record",
        help="record what dockerd sends a plugin, as a session file",
        description="Serve SOCKET as the plugin dockerd loads (e.g. /run/docker/plugins/"
        "NAME.sock) and forward every request unchanged to the real plugin, or answer it "
        "with a built-in fake (--no-upstream); each exchange, both sides, is one JSON line "
        "of FILE, which 'fakedriver check --session FILE TARGET' and "
        "fakedriver.conformance.replay() replay. Stops on SIGINT or SIGTERM.",
        allow_abbrev=False,
    )
    upstream = record.add_mutually_exclusive_group(required=True)
    upstream.add_argument("--upstream", metavar="TARGET", help="the plugin to forward to")
    upstream.add_argument(
        "--no-upstream", action="store_true", help="answer with a built-in fake instead"
    )
    record.add_argument("--socket", required=True, metavar="PATH", help="where to listen")
    record.add_argument("--out", required=True, metavar="FILE", help="the session file (appended)")
    record.add_argument(
        "--dockerd-version",
        metavar="VERSION",
        help="the daemon's version, for the session (default: 'docker version', when it answers)",
    )
    record.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long an upstream call may take (default: 120)",
    )
    record.set_defaults(subparser=record)


def check_command(args: argparse.Namespace) -> int:
    """Run ``fakedriver check``; its exit code."""
    if args.list:
        for each in select(args.only, args.skip):
            print(f"{each.name}\n    " + " ".join(each.doc.split()))
        return 0
    if not args.target:
        args.subparser.error("the following arguments are required: TARGET")
    try:
        report = check_target(
            args.target,
            dockerd=args.dockerd,
            only=args.only,
            skip=args.skip,
            strict=not args.lenient,
            timeout=args.timeout,
            network_prefix=args.network_prefix,
            subnets=args.subnet or DEFAULT_SUBNETS,
            parallel=args.parallel,
            session=args.session,
        )
    except (TargetError, SessionError, ValueError) as exc:
        print(f"fakedriver check: {exc}", file=sys.stderr)
        return 2
    if args.junit:
        with open(args.junit, "w", encoding="utf-8") as out:
            out.write(as_junit(report))
    if args.json:
        print(json.dumps(as_json(report), indent=2))
    else:
        for result in report.results:
            print(result.line(), flush=True)
        print(report.summary())
    return 0 if report.ok else 1


def record_command(args: argparse.Namespace, wait: Callable[[], object]) -> int:
    """Run ``fakedriver record`` until ``wait()`` returns (a stop signal)."""
    from ..conformance.recorder import Recorder, daemon_version
    from ..fake import FakeNetDriver

    if not os.path.isdir(os.path.dirname(os.path.abspath(args.socket))):
        print(
            f"fakedriver record: --socket {args.socket}: its folder does not exist", file=sys.stderr
        )
        return 2
    try:
        upstream = resolve(args.upstream) if args.upstream else None
    except TargetError as exc:
        print(f"fakedriver record: {exc}", file=sys.stderr)
        return 2
    version = args.dockerd_version or daemon_version()
    with open(args.out, "a", encoding="utf-8") as out:
        recorder = Recorder(
            args.socket,
            out,
            upstream=upstream,
            fake=None if upstream is not None else FakeNetDriver(),
            dockerd=version,
            timeout=args.timeout,
        )
        thread = threading.Thread(target=recorder.serve_forever, daemon=True)
        thread.start()
        where = upstream or "a built-in fake"
        print(
            f"fakedriver: recording on {args.socket} -> {where}, into {args.out}",
            file=sys.stderr,
            flush=True,
        )
        try:
            wait()
        finally:
            recorder.close()
        print(f"fakedriver: recorded {recorder.seq} exchange(s) into {args.out}", file=sys.stderr)
    return 0
