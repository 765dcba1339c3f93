"""``fakedriver plugin``: build the managed (v2) plugin bundle (``build``), find an enabled
plugin's socket (``socket``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from ..plugin.bundle import DATA, DEFAULT_SOCKET, PLUGINS_ROOT, build, socket_path


def plugin_parser(commands: Any, name: Callable[[str], str]) -> None:
    """Add ``plugin build`` and ``plugin socket`` to the ``fakedriver`` sub-commands.

    :param name: the argparse type of a plugin (socket) name, as ``serve --name`` checks it.
    """
    plugin = commands.add_parser(
        "plugin",
        help="build the managed (v2) plugin bundle, find its socket",
        description="The managed (v2) plugin: 'docker plugin create NAME DIR' of a bundle "
        "'plugin build' wrote.",
        allow_abbrev=False,
    )
    actions = plugin.add_subparsers(dest="action", required=True, metavar="ACTION")
    made = actions.add_parser(
        "build",
        help="write a plugin bundle: config.json and rootfs/",
        usage="fakedriver plugin build [-h] [--name NAME] DIR [SERVE FLAGS ...]",
        description="Write a managed-plugin bundle in DIR (new, or an empty folder): "
        "config.json and a rootfs/ with a copy of this Python interpreter (its standard "
        "library pruned), its shared libraries, iproute2's ip, fakedriver and its "
        "dependencies. Offline: nothing is downloaded. Every flag after DIR that this "
        "command does not know is a 'fakedriver serve' flag, baked in as the plugin's "
        "default args (e.g. --scope global --links veth); 'docker plugin set PLUGIN "
        'args="..."\' replaces them (dockerd splits on single spaces). The plugin '
        "listens on /run/docker/plugins/NAME.sock inside; a host folder is mounted at "
        f"{DATA} ('docker plugin set PLUGIN data.source=/host/dir'; the default source, "
        f"{DATA}, must exist). Then: docker plugin create PLUGIN DIR && docker plugin "
        "enable PLUGIN && docker network create -d PLUGIN:latest ... (dockerd 20.10 "
        "knows a managed driver by its name with its tag)",
        allow_abbrev=False,
    )
    made.add_argument("dir", metavar="DIR", help="the bundle folder to write")
    made.add_argument(
        "--name",
        type=name,
        default=DEFAULT_SOCKET,
        help=f"the plugin's socket is NAME.sock (default: {DEFAULT_SOCKET})",
    )
    found = actions.add_parser(
        "socket",
        help="print where an enabled managed plugin listens, on the host",
        description=f"Print {PLUGINS_ROOT}/<id>/<socket> of a managed plugin (from 'docker "
        "plugin inspect', with DOCKER_HOST as docker uses it; dockerd on Linux keeps "
        "every managed plugin's socket there, whatever its --exec-root): dockerd's calls "
        "and the control API (under /fakedriver/) are served there.",
        allow_abbrev=False,
    )
    found.add_argument("plugin", metavar="NAME", help="the plugin's name")
    for sub in (made, found):
        sub.set_defaults(subparser=sub)  # an unknown flag gets this command's usage


def plugin_command(
    args: argparse.Namespace, serve_args: list[str], check: Callable[[Sequence[str]], None]
) -> int:
    """Run ``plugin build`` (with the serve flags it was given, which ``check`` refuses as
    serve would) or ``plugin socket``."""
    if args.action == "socket":
        print(socket_path(args.plugin))
        return 0
    if serve_args[:1] == ["--"]:
        serve_args = serve_args[1:]
    bundle = build(args.dir, serve_args, socket=args.name, check=check)
    print(
        f"fakedriver: plugin bundle in {bundle.path} ({bundle.size / 2**20:.1f} MiB, "
        f"built in {bundle.seconds:.1f} s)\n"
        f"  docker plugin create NAME {bundle.path} && docker plugin enable NAME"
    )
    return 0
