"""``fakedriver serve``: run the fake as a plugin that a real dockerd can load."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from werkzeug.serving import make_server

from ._app import FakeNetDriver
from ._persona import Persona

PLUGIN_DIR = "/run/docker/plugins"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakedriver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the fake driver on a unix socket")
    where = serve.add_mutually_exclusive_group()
    where.add_argument(
        "--name",
        default="fake",
        help=f"plugin name: listen on {PLUGIN_DIR}/NAME.sock (default: fake)",
    )
    where.add_argument("--socket", help="listen on this unix socket path instead")
    serve.add_argument(
        "--scope",
        choices=("local", "global"),
        default="local",
        help="Scope announced in GetCapabilities (default: local)",
    )
    serve.add_argument("--no-ipam", action="store_true", help="do not implement IpamDriver")
    serve.add_argument(
        "--lenient",
        action="store_true",
        help="record lifecycle violations instead of refusing the call",
    )
    serve.add_argument("--seed", type=int, default=0, help="seed for generated values")
    return parser


def socket_path(args: argparse.Namespace) -> str:
    return str(args.socket or os.path.join(PLUGIN_DIR, f"{args.name}.sock"))


def serve(args: argparse.Namespace) -> int:
    persona = Persona(
        scope=args.scope, ipam=not args.no_ipam, strict=not args.lenient, seed=args.seed
    )
    app = FakeNetDriver(persona)
    path = socket_path(args)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    server = make_server(f"unix://{path}", 0, app, threaded=True)
    os.chmod(path, 0o660)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"fakedriver: serving on unix://{path}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if os.path.exists(path):
            os.unlink(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
