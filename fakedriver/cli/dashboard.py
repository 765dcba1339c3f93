"""``fakedriver dashboard TARGET``: the dashboard of a server already running, on a
loopback port of this host, forwarding its control requests to TARGET."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

from ..plugin.bundle import socket_path
from ..server.dashboard import Remote, listen, url
from ..server.files import ServeError


class Stop(Protocol):
    """What ends the command: `fakedriver.cli.main.StopSignals`."""

    def serving(self) -> int: ...

    def close(self) -> None: ...


def dashboard_parser(
    commands: Any, address: Callable[[str], tuple[str, int]], token_env: str
) -> None:
    """Add ``dashboard`` to the ``fakedriver`` sub-commands.

    :param address: the argparse type of ``--listen`` (as ``serve --dashboard`` takes it).
    :param token_env: the variable a control token may come from.
    """
    command = commands.add_parser(
        "dashboard",
        help="open the dashboard of a running server on a loopback port",
        description="Serve the dashboard (a live page of the calls, state, leaks and fault "
        "rules) of a fakedriver serve already running, on a loopback port of this host: "
        "its control requests are forwarded to TARGET. TARGET is a unix socket (the "
        "plugin socket, or a --control-socket), plugin:NAME for an enabled managed "
        "plugin (its socket as 'fakedriver plugin socket NAME' finds it), or "
        "http://HOST:PORT, a server's --tcp address, with its control token. The page's "
        "address, with the secret it wants, is printed on stdout.",
        allow_abbrev=False,
    )
    command.add_argument("target", metavar="TARGET", help="socket path, plugin:NAME or URL")
    command.add_argument(
        "--listen",
        metavar="[HOST:]PORT",
        type=address,
        default=("127.0.0.1", 0),
        help="where the page is served: a loopback host (default 127.0.0.1), PORT 0 for "
        "any free one (the default)",
    )
    command.add_argument(
        "--control-token-file",
        metavar="FILE",
        help=f"the control token of an http:// TARGET, in FILE (chmod 600); or {token_env}",
    )
    command.set_defaults(no_control=False, subparser=command)


def resolve(target: str) -> str:
    """The socket path or URL that ``TARGET`` names.

    :raises ServeError: not a socket, or a plugin docker does not know.
    """
    if target.startswith("plugin:"):
        return socket_path(target.removeprefix("plugin:"))  # BundleError: the CLI says it
    if target.startswith("http://") or "://" in target:
        return target
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:
        raise ServeError(f"{target}: {exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ServeError(f"{target} is not a socket: give a plugin or control socket")
    return target


def dashboard_command(args: argparse.Namespace, token: str | None, stop: Stop) -> int:
    """Check that TARGET's control API answers, then serve its dashboard until ``stop``."""
    where = resolve(args.target)
    if token is not None and not where.startswith("http://"):
        raise ServeError("a control token is for an http:// TARGET (a socket needs none)")
    remote = Remote(where, token)
    status, answer = remote("GET", "/fakedriver/faults", b"")
    if status != 200:
        why = answer.decode(errors="replace").strip()
        raise ServeError(f"the control API at {where} answers {status}: {why}")
    title = where if where.startswith("http://") else f"unix://{where}"
    server, dashboard = listen(remote, args.listen, title=title, log=sys.stderr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        print(f"fakedriver: dashboard of {title} on {url(server, dashboard)}", flush=True)
        stop.serving()
    finally:
        server.close()
    return 0
