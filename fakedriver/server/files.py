"""The files a server makes and holds: its folders, its unix socket (claimed from a dead
server, never from a live one), the spec file of a TCP address; and their removal, only
while each is still the file this server made."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile


class ServeError(Exception):
    """The server cannot start; the message says why."""


#: The mode of each folder the server makes (``/run/docker/plugins``, a spec folder),
#: whatever the umask: dockerd and everyone may look, only its owner may change it.
FOLDER_MODE = 0o755


def make_folder(folder: str) -> None:
    """Make ``folder`` and its missing parents, each `FOLDER_MODE` whatever the umask
    (``os.makedirs(mode=...)`` is cut by the umask, and under umask 0 left folders that
    everyone could write): each is made ``0700``, which a umask can only narrow, so it is
    never open to others, then given its mode through a descriptor of its own (not a
    path that someone could have turned into a symlink meanwhile)."""
    missing = []
    path = os.path.abspath(folder)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for each in reversed(missing):
        try:
            os.mkdir(each, 0o700)
        except FileExistsError:
            continue  # another process made it meanwhile: its mode is not ours to set
        fd = os.open(each, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, FOLDER_MODE)
        finally:
            os.close(fd)


def check_folder(folder: str, what: str) -> None:
    """Refuse to put ``what`` in ``folder`` when it, or a folder above it, may be written
    by others and has no sticky bit (as ``/tmp`` has): anyone could then rename this
    server's file away and put their own in its place, for dockerd to find.

    :raises ServeError: naming that folder and its mode.
    """
    path = os.path.realpath(folder)
    while True:
        mode = os.stat(path).st_mode
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            raise ServeError(
                f"cannot put {what} in {folder}: {path} may be written by others and has no "
                f"sticky bit (mode {stat.S_IMODE(mode):04o}), so anyone could replace it; "
                f"chmod o-w {path}"
            )
        if os.path.dirname(path) == path:
            return
        path = os.path.dirname(path)


def claim_socket(path: str) -> None:
    """Make ``path`` free for a new socket: make its folder if it is missing (see
    `make_folder()`), refuse a folder others may write (see `check_folder()`), remove a
    stale socket, refuse a live one, and refuse to guess when the probe is not allowed
    to tell."""
    folder = os.path.dirname(path) or "."
    make_folder(folder)
    check_folder(folder, f"the socket {path}")
    if not os.path.lexists(path):
        return
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise ServeError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: a leftover of a server that died
        return
    except OSError as exc:  # EACCES: another user's socket, live or not; leave it alone
        why = f"{path} exists and cannot be probed ({exc.strerror}); not removing it"
        raise ServeError(why) from None
    finally:
        probe.close()
    raise ServeError(f"{path} is served by a live process; stop it first")


#: A file's identity: what a path must still be for this server to remove it. Sound
#: while the server holds the file (its socket bound, its spec file open): no other
#: file can be given the inode number of one still held.
Identity = tuple[int, int]


def identity(st: os.stat_result) -> Identity:
    return st.st_dev, st.st_ino


def remove_if_ours(path: str, ours: Identity) -> None:
    """Remove ``path`` only if it is still the file this server made: after an ``rm`` and
    another server's start on the same path, it is that server's, and stays."""
    with contextlib.suppress(FileNotFoundError):
        if identity(os.lstat(path)) == ours:
            os.unlink(path)


def bind_unix(path: str) -> socket.socket:
    """A listening unix socket at ``path``, never reachable by others, not even between
    bind() and chmod(): it is created under a umask that leaves it ``0600``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    os.chmod(path, 0o660)  # and dockerd's group may connect
    return sock


def bind_tcp(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host`` (an IPv6 address without brackets) and ``port``;
    `ServeError` when it cannot be (in use, not an address of this host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host_port(host, port)}: {exc.strerror}") from None
    return sock


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_spec(path: str, address: str) -> int:
    """Write the spec file through a temporary file of its own: an unpredictable name
    opened with ``O_EXCL|O_NOFOLLOW`` (``mkstemp``) in the spec's folder (made if missing,
    refused if others may write it: see `make_folder()` and `check_folder()`), then
    renamed. Returns the file, still open."""
    folder = os.path.dirname(path) or "."
    make_folder(folder)
    check_folder(folder, f"the spec file {path}")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        data = (address + "\n").encode()
        while data:
            data = data[os.write(fd, data) :]
        os.fchmod(fd, 0o644)  # dockerd reads it
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return fd
