"""The ``fakedriver`` command line: every flag, its help and its default. The persona's
flags are generated from [`Persona`][fakedriver.Persona] (see ``options.py``)."""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import os
import re
import stat
from collections.abc import Callable, MutableMapping, Sequence

from .. import __version__
from ..core.journal import FIELD_LIMIT, SERVE_BYTES
from ..plugin.bundle import DATA, BundleError
from ..server.connection import Limits
from ..server.dashboard import loopback
from ..server.files import ServeError
from ..server.server import PLUGIN_DIR, SPEC_DIR
from .check import check_parser
from .dashboard import dashboard_parser
from .files import open_regular
from .options import add_persona_options, persona_from
from .plugin import plugin_parser
from .state import state_parser

DEFAULT_NAME = "fake"

#: Where ``serve`` takes the control token from without ``--control-token-file``.
TOKEN_ENV = "FAKEDRIVER_CONTROL_TOKEN"
#: Why ``serve --control-token TOKEN`` is refused (exit 2, this one line).
ARGV_TOKEN = (
    "--control-token TOKEN is refused: a value on the command line is readable by every "
    f"local user in /proc/PID/cmdline; use --control-token-file FILE or {TOKEN_ENV}"
)
#: The longest token (a file that holds more is not a token file).
MAX_TOKEN = 4096

#: A plugin name: one path component, no dot first (no ``..``, no hidden file).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a plugin name: letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return value


def tcp_address(value: str) -> tuple[str, int]:
    """``--tcp HOST:PORT`` as ``(host, port)``: HOST an IPv4 address, a host name, or an
    IPv6 address in brackets (``[::1]:0``), ``127.0.0.1`` when empty; PORT 0 to 65535
    (0: any free one). Whether the address can be listened on is for the bind to say."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        if not bracket or port == rest:
            raise argparse.ArgumentTypeError(f"{value!r}: write an IPv6 address as [ADDRESS]:PORT")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{value!r}: {host!r} in brackets is not an IPv6 address"
            ) from None
    else:
        host, colon, port = value.rpartition(":")
        if not colon:
            raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9000)")
        if ":" in host:
            raise argparse.ArgumentTypeError(
                f"{value!r}: write an IPv6 address in brackets, as [{host}]:{port}"
            )
        host = host or "127.0.0.1"
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise argparse.ArgumentTypeError(f"{value!r}: the port must be 0 to 65535, not {port!r}")
    return host, int(port)


def dashboard_address(value: str) -> tuple[str, int]:
    """``--dashboard [HOST:]PORT`` (and ``dashboard --listen``) as ``(host, port)``: a
    loopback HOST only (``127.0.0.1`` when omitted; ``[::1]``, ``localhost``), PORT 0 to
    65535 (0: any free one)."""
    host, port = tcp_address(value if ":" in value else f":{value}")
    if not loopback(host):
        raise argparse.ArgumentTypeError(
            f"{value!r}: the dashboard listens on loopback only (127.0.0.1, [::1], "
            "localhost); from another host, reach it through ssh -L"
        )
    return host, port


#: The most each numeric flag of serve takes: beyond, a value no longer works (a socket
#: timeout of 1e10 s overflows) or asks for more than a host has. Refused with exit 2.
MOST = {
    "max_body": 1 << 30,  # 1 GiB
    "read_timeout": 86_400.0,  # a day
    "idle_timeout": 86_400.0,
    "max_connections": 65_536,
    "journal_size": 10_000_000,
    "journal_bytes": 1 << 32,  # 4 GiB
}


def _positive(kind: type[int] | type[float], most: float) -> Callable[[str], int | float]:
    def parse(value: str) -> int | float:
        number = kind(value)
        if not 0 < number <= most:  # NaN too
            shown = f"{most:g}" if kind is float else f"{most}"
            raise argparse.ArgumentTypeError(f"must be over 0 and at most {shown}, not {value}")
        return number

    parse.__name__ = kind.__name__  # argparse names the type in its error
    return parse


def parser() -> argparse.ArgumentParser:
    """The ``fakedriver`` command line. Each command's parser is its namespace's
    ``subparser``, so an unknown flag is reported with that command's usage."""
    top = argparse.ArgumentParser(
        prog="fakedriver",
        description="A stateful fake of Docker's network-driver and IPAM plugins.",
        allow_abbrev=False,  # --scop is not --scope: on every parser, a flag is whole
    )
    top.add_argument("--version", action="version", version=f"fakedriver {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the fake driver to dockerd",
        description="Serve the fake driver as a legacy (v1) plugin: dockerd finds it as "
        "'docker network create -d NAME' (and '--ipam-driver NAME').",
        allow_abbrev=False,
    )
    where = serve.add_argument_group("where to listen")
    where.add_argument(
        "--name",
        type=_name,
        help=f"plugin name: listen on {PLUGIN_DIR}/NAME.sock, or name the spec file of "
        f"--tcp (default: {DEFAULT_NAME})",
    )
    socket_or_tcp = where.add_mutually_exclusive_group()
    socket_or_tcp.add_argument(
        "--socket",
        metavar="PATH",
        help="listen on this unix socket instead (its folder must exist; not with --name)",
    )
    socket_or_tcp.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        type=tcp_address,
        help=f"listen on TCP and write {SPEC_DIR}/NAME.spec (port 0: any free; an IPv6 "
        "address in brackets: [::1]:0)",
    )
    where.add_argument("--spec-dir", help=f"where --tcp writes NAME.spec (default: {SPEC_DIR})")

    add_persona_options(serve)

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
        "--control-token-file",
        metavar="FILE",
        help="require Authorization: Bearer TOKEN on every control request, TOKEN being "
        "what FILE holds (one trailing newline dropped); FILE must be its owner's alone "
        f"(chmod 600). Or set {TOKEN_ENV} (read once, at start). Over --tcp the control "
        "API is served only with a token",
    )
    api.add_argument(
        "--control-token",
        metavar="TOKEN",
        help="refused: every local user can read a command line (/proc/PID/cmdline)",
    )
    api.add_argument("--no-control", action="store_true", help="serve no control API at all")
    api.add_argument(
        "--dashboard",
        metavar="[HOST:]PORT",
        type=dashboard_address,
        help="serve the dashboard, a live page of the calls, state, leaks and fault rules "
        "with the control API behind it, on loopback TCP (HOST 127.0.0.1 by default; "
        "[::1] or localhost; PORT 0: any free one); its address, with the secret it "
        "wants, is printed on stderr",
    )

    limits = serve.add_argument_group("limits (what one connection may send, and how fast)")
    default = Limits()
    limits.add_argument(
        "--max-body",
        type=_positive(int, MOST["max_body"]),
        default=default.max_body,
        metavar="BYTES",
        help=f"largest request body; larger gets 413 (default: {default.max_body}; at most "
        f"{MOST['max_body']}, 1 GiB)",
    )
    limits.add_argument(
        "--read-timeout",
        type=_positive(float, MOST["read_timeout"]),
        default=default.read_timeout,
        metavar="SECONDS",
        help="from a request's first byte to its last; slower gets 408 "
        f"(default: {default.read_timeout}; at most {MOST['read_timeout']:g}, a day)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=_positive(float, MOST["idle_timeout"]),
        default=default.idle_timeout,
        metavar="SECONDS",
        help="how long a keep-alive connection may wait for its next request (default: "
        f"{default.idle_timeout}, longer than Go's 90 s, so dockerd closes first; at most "
        f"{MOST['idle_timeout']:g}, a day)",
    )
    limits.add_argument(
        "--max-connections",
        type=_positive(int, MOST["max_connections"]),
        default=default.max_connections,
        metavar="N",
        help="connections served at once; one more closes the one idle the longest, or gets "
        f"503 when all are in a request (default: {default.max_connections}; at most "
        f"{MOST['max_connections']})",
    )
    limits.add_argument(
        "--journal-size",
        type=_positive(int, MOST["journal_size"]),
        default=10_000,
        metavar="N",
        help="calls the journal keeps (the oldest are evicted; default: 10000; at most "
        f"{MOST['journal_size']})",
    )
    limits.add_argument(
        "--journal-bytes",
        type=_positive(int, MOST["journal_bytes"]),
        default=SERVE_BYTES,
        metavar="BYTES",
        help="bytes of memory the journal's calls may take, reckoned from their Python "
        "objects (the oldest calls are evicted; a request or answer over "
        f"{FIELD_LIMIT} bytes of JSON is cut down in it; default: {SERVE_BYTES}, 32 MiB; "
        f"at most {MOST['journal_bytes']}, 4 GiB)",
    )

    state_parser(commands)  # its own sub-commands name themselves (innermost wins)
    plugin_parser(commands, _name)
    check_parser(commands)
    dashboard_parser(commands, dashboard_address, TOKEN_ENV)
    for sub in commands.choices.values():
        sub.set_defaults(subparser=sub)
    return top


def conflicts(args: argparse.Namespace) -> str | None:
    """Flags that contradict each other, which argparse cannot see alone."""
    if args.socket and (args.name or args.spec_dir):
        return "--socket names its own path: drop --name/--spec-dir"
    if args.spec_dir and not args.tcp:
        return "--spec-dir is only for --tcp"
    if args.no_control and (args.control_socket or args.control_token_file):
        return "--no-control serves no control API: drop --control-socket/--control-token-file"
    if args.no_control and args.dashboard:
        return "--no-control serves no control API, which the dashboard drives: drop one"
    if args.socket and not os.path.isdir(os.path.dirname(os.path.abspath(args.socket))):
        return f"--socket {args.socket}: its folder does not exist"
    return None


def check_serve_args(serve_args: Sequence[str]) -> None:
    """Refuse serve flags that ``fakedriver serve`` would refuse, or that a bundle sets
    itself, with serve's own message: what ``plugin build`` hands the bundle to check its
    flags with (the bundle knows no serve flag).

    :raises BundleError: naming the flag.
    """
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = parser().parse_args(["serve", *serve_args])
    except SystemExit:
        message = errors.getvalue().strip().splitlines()[-1]
        raise BundleError(f"serve refuses these flags: {message}") from None
    if args.control_token is not None:
        raise BundleError(
            "--control-token: a token in args is in config.json and 'docker plugin "
            "inspect', for every local user to read; bake --control-token-file "
            f"{DATA}/token instead, the token in that file on the host's data folder "
            "(chmod 600)"
        )
    if args.name or args.socket or args.tcp or args.spec_dir:
        raise BundleError(
            "--name, --socket, --tcp, --spec-dir: the plugin listens on the socket its "
            "config.json names ('plugin build --name NAME' names it)"
        )
    if args.dashboard:
        raise BundleError(
            "--dashboard: its address and secret would go to dockerd's log; run "
            "'fakedriver dashboard plugin:NAME' on the host instead"
        )
    conflict = conflicts(args)
    if conflict:
        raise BundleError(f"serve refuses these flags: {conflict}")
    flags_only = argparse.Namespace(**{**vars(args), "persona": None})  # a file inside
    try:
        persona_from(flags_only, join_gateway=args.links == "veth")
    except ValueError as exc:
        raise BundleError(f"serve refuses these flags: {exc}") from None


def control_token(
    args: argparse.Namespace, environ: MutableMapping[str, str] = os.environ
) -> str | None:
    """The control API's token: what ``--control-token-file`` holds, or the value of
    `TOKEN_ENV` (taken out of ``environ``, so that no child process inherits it),
    or ``None`` when neither is given. Never a command line's: see `ARGV_TOKEN`.

    :raises ServeError: both are given (or the variable with ``--no-control``); the file
        cannot be read, or its group or others may read or write it; the token is empty,
        too long, or not printable ASCII (a space, a second line).
    """
    given = environ.pop(TOKEN_ENV, None)
    path = args.control_token_file
    if given is not None and (path is not None or args.no_control):
        other = "--control-token-file" if path is not None else "--no-control"
        raise ServeError(f"{TOKEN_ENV} is set and {other} is given: choose one")
    if path is not None:
        return _checked(_read_token(path), f"--control-token-file {path}")
    return None if given is None else _checked(given, TOKEN_ENV)


def _read_token(path: str) -> str:
    """What the token file holds, less one trailing newline; refused, unread, when its
    group or others may read or write it (as ssh refuses a private key)."""
    fd = open_regular(path, f"--control-token-file {path}")  # no FIFO, no device
    try:
        mode = os.fstat(fd).st_mode  # of the file opened, not of what the path names later
        if mode & 0o077:
            raise ServeError(
                f"--control-token-file {path} may be read or written by others (mode "
                f"{stat.S_IMODE(mode):04o}): chmod 600 {path}"
            )
        data = b""  # at most MAX_TOKEN and a newline, and one more: then it is too long
        while len(data) < MAX_TOKEN + 3 and (more := os.read(fd, MAX_TOKEN + 3 - len(data))):
            data += more
    finally:
        os.close(fd)
    for newline in (b"\r\n", b"\n"):
        if data.endswith(newline):
            return data[: -len(newline)].decode("latin-1")
    return data.decode("latin-1")


def _checked(token: str, where: str) -> str:
    if not token:
        raise ServeError(f"{where}: the token is empty")
    if len(token) > MAX_TOKEN:
        raise ServeError(f"{where}: the token is longer than {MAX_TOKEN} characters")
    if not all("!" <= char <= "~" for char in token):
        raise ServeError(
            f"{where}: the token must be printable ASCII, without spaces or a second line"
        )
    return token
