"""The managed (v2) plugin bundle: ``config.json`` and a ``rootfs/`` that runs
``fakedriver serve``, for ``docker plugin create NAME DIR`` (see docs/plugin.md).

dockerd runs the plugin with the host's network, the capabilities of ``config.json``, its
mounts (the settable ``data`` one, at `DATA`) and ``/run/docker/plugins`` bound to
the host's ``/run/docker/plugins/<id>/``: the socket `config()` names is found there.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .rootfs import (
    SITE,
    RootfsError,
    copy_interpreter,
    copy_ip,
    copy_packages,
    libraries,
    mirror,
    strip,
)

#: Where a managed plugin's socket is, inside it (dockerd binds it from the host).
PLUGIN_RUNTIME = "/run/docker/plugins"
#: Where dockerd (Linux) makes each managed plugin's runtime folder, ``<id>/``, on the host.
PLUGINS_ROOT = "/run/docker/plugins"
#: Where the settable ``data`` mount puts a host folder, inside the plugin.
DATA = "/var/lib/fakedriver"
DEFAULT_SOCKET = "fakedriver"
DOCUMENTATION = "https://pypi.org/project/fakedriver/"


class BundleError(Exception):
    """The bundle cannot be built as asked; the message says why. Nothing was written."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle.

    :param path: the bundle folder (``config.json`` and ``rootfs/``).
    :param config: what ``config.json`` holds.
    :param size: the bundle's bytes on disk.
    :param seconds: how long the build took.
    """

    path: Path
    config: dict[str, Any]
    size: int
    seconds: float


def config(
    python: str, serve_args: Sequence[str] = (), socket: str = DEFAULT_SOCKET
) -> dict[str, Any]:
    """The ``config.json`` of a bundle.

    :param python: the interpreter's path inside the rootfs.
    :param serve_args: the default ``args`` (serve flags), settable with
        ``docker plugin set NAME args="..."`` (dockerd splits the value on single spaces).
    :param socket: the socket's name, without ``.sock``.
    """
    sock = f"{socket}.sock"
    return {
        "description": f"fakedriver {__version__}: a stateful fake network and IPAM driver",
        "documentation": DOCUMENTATION,
        "interface": {
            "socket": sock,
            "types": ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"],
        },
        "entrypoint": [
            python,
            "-m",
            "fakedriver",
            "serve",
            "--socket",
            f"{PLUGIN_RUNTIME}/{sock}",
        ],
        "workdir": "/",
        "network": {"type": "host"},
        # ip link add/del of a veth pair in the host's network namespace (--links veth)
        "linux": {"capabilities": ["CAP_NET_ADMIN"]},
        "mounts": [
            {
                "name": "data",
                "description": "a host folder for the state file, logs and a control "
                f"socket, at {DATA} inside (docker plugin set NAME data.source=/host/dir)",
                "source": DATA,
                "destination": DATA,
                "type": "bind",
                "options": ["rbind", "rw"],
                "settable": ["source"],
            }
        ],
        "env": [
            {"name": "PYTHONPATH", "description": "fakedriver's packages", "value": SITE},
            {"name": "PYTHONUNBUFFERED", "description": "log lines at once", "value": "1"},
        ],
        "args": {
            "name": "args",
            "description": "fakedriver serve flags (persona, --links veth, --state, "
            "--faults, ...), separated by single spaces",
            "settable": ["value"],
            "value": list(serve_args),
        },
    }


def _splittable(serve_args: Sequence[str]) -> None:
    """Refuse serve flags dockerd would split apart: it splits ``args`` on single spaces.

    :raises BundleError: naming the flag.
    """
    for arg in serve_args:
        if arg == "" or " " in arg:
            raise BundleError(
                f"{arg!r}: dockerd splits args on single spaces, so no flag or value may "
                "be empty or contain a space"
            )


def _target(path: Path) -> None:
    """Refuse a bundle folder that is a file, not empty, or has no parent folder."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise BundleError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        raise BundleError(f"{path}: exists and is not empty")
    if not path.parent.is_dir():
        raise BundleError(f"{path.parent}: no such folder")


def _skeleton(root: Path) -> None:
    """The few files and folders a plugin's process and its mounts expect."""
    for folder in ("tmp", "run/docker/plugins", DATA.lstrip("/"), "etc", "proc", "sys", "dev"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    (root / "etc/resolv.conf").write_text("")


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def _place(work: Path, target: Path) -> None:
    """Rename the finished bundle ``work`` to ``target``, which replaces the empty folder
    there, if any. Another build of the same folder may have put its bundle there since
    `_target()` looked: that one is left as it is, and this build is refused."""
    try:
        with contextlib.suppress(FileNotFoundError):  # the other build's rmdir came first
            os.rmdir(target)  # removes an empty folder, and never anything else
        os.rename(work, target)  # onto nothing, or an empty folder made meanwhile
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            why = "was made by another build meanwhile; left as it is"
            raise BundleError(f"{target}: {why}") from None
        if exc.errno == errno.ENOTDIR:
            raise BundleError(f"{target}: exists and is not a folder (made meanwhile)") from None
        raise


def build(
    path: str | os.PathLike[str],
    serve_args: Sequence[str] = (),
    socket: str = DEFAULT_SOCKET,
    *,
    check: Callable[[Sequence[str]], None],
) -> Bundle:
    """Build a managed-plugin bundle in ``path`` (which must not exist, or be an empty
    folder), offline, from the running interpreter and environment.

    :param path: the bundle folder to write.
    :param serve_args: the serve flags the plugin runs with unless ``docker plugin set``
        changes them.
    :param socket: the socket's name (``NAME.sock``).
    :param check: refuses (with `BundleError`) serve flags that ``fakedriver serve`` would
        refuse, or that a bundle sets itself: the CLI's ``check_serve_args``, which knows
        serve's flags (the bundle does not import the CLI).
    :raises BundleError: when the folder or the flags are refused, or the rootfs cannot
        be made; nothing is left behind.
    """
    if sys.platform != "linux":
        raise BundleError("a managed plugin bundle is built on Linux only")
    started = time.monotonic()
    target = Path(path).absolute()
    _target(target)
    _splittable(serve_args)
    check(serve_args)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        root = work / "rootfs"
        root.mkdir()
        _skeleton(root)
        python, binaries = copy_interpreter(root)
        binaries.append(copy_ip(root))
        extensions = copy_packages(root)
        needed = libraries([*binaries, *extensions])
        for library in needed:
            mirror(root, library)
        strip(root, [*binaries, *needed])
        python3 = root / "usr/bin/python3"
        if not os.path.lexists(python3):  # `chroot rootfs python3` finds it on PATH
            python3.parent.mkdir(parents=True, exist_ok=True)
            python3.symlink_to(python)
        settings = config(python, serve_args, socket)
        (work / "config.json").write_text(json.dumps(settings, indent=2) + "\n")
        work.chmod(0o755)
        _place(work, target)
    except RootfsError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BundleError(str(exc)) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Bundle(target, settings, _size(target), time.monotonic() - started)


def socket_path(name: str, root: str = PLUGINS_ROOT, docker: str = "docker") -> str:
    """Where the enabled managed plugin ``name`` listens, on the host:
    ``/run/docker/plugins/<id>/<socket>`` (dockerd on Linux keeps every managed plugin's
    runtime folder there, whatever its ``--exec-root``: a socket's path must stay short).
    ``docker`` reaches the daemon as it does (``DOCKER_HOST``).

    :param name: the plugin's name, as ``docker plugin create`` was given it.
    :param root: the folder of the plugins' runtime folders.
    :raises BundleError: when docker does not know the plugin.
    """
    if shutil.which(docker) is None:
        raise BundleError(f"{docker} not found: the docker CLI asks the daemon for the id")
    done = subprocess.run(
        [docker, "plugin", "inspect", "-f", "{{.Id}} {{.Config.Interface.Socket}}", name],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise BundleError(f"docker plugin inspect {name}: {done.stderr.strip()}")
    plugin_id, sock = done.stdout.split()
    return os.path.join(root, plugin_id, sock)
