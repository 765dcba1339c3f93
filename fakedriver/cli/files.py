"""The files the command line reads at start (a token, a persona, a fault scenario, a
state database, a JSON state file to import): regular files only. A FIFO, a device or a
socket could block the start forever, or feed it without end; each is refused, in one
line, before it is read or handed on."""

from __future__ import annotations

import os
import stat

from ..server.files import ServeError

#: What a file that is not a regular one is, for the refusal.
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


#: Opening does not block (a FIFO with no writer would wait for one) nor take a terminal.
_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK


def _refuse_irregular(mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise ServeError(f"{what} is {kind}, not a regular file")


def open_regular(path: str, what: str) -> int:
    """``path`` opened for reading (its descriptor, blocking again), if it is a regular
    file: checked before it is opened (opening a device may do something), and again
    once opened (`os.fstat`: the file opened, whatever the path names by then).

    :param what: names the file in the refusal (``"persona file PATH"``).
    :raises ServeError: it cannot be opened, or it is not a regular file.
    """
    try:
        _refuse_irregular(os.stat(path).st_mode, what)
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise ServeError(f"cannot read {what}: {exc.strerror}") from None
    try:
        _refuse_irregular(os.fstat(fd).st_mode, what)
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return fd


def read_regular(path: str, what: str) -> bytes:
    """What the regular file at ``path`` holds.

    :raises ServeError: as `open_regular()`, or it cannot be read.
    """
    fd = open_regular(path, what)
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError as exc:
        raise ServeError(f"cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def check_regular(path: str, what: str) -> None:
    """Refuse ``path`` if it is there and not a regular file: for a file that a loader
    of another layer opens by its path. One that cannot be looked at (missing, in a
    folder this user may not enter) passes: its loader says why, as it always has.

    :raises ServeError: it is a folder, a FIFO, a device or a socket.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    _refuse_irregular(mode, what)
