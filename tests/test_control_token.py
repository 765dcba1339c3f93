"""The control token (issue 17): never on a command line, where every local user reads it
in ``/proc/PID/cmdline``, nor in a file others may read. ``serve`` takes it from
``--control-token-file`` (its owner's alone, as ssh wants a private key) or from
``FAKEDRIVER_CONTROL_TOKEN``, and a ``nobody`` process finds it nowhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.rawhttp import Served, connect, read_one, system_python
from support.rawhttp import request as raw_request

from fakedriver.cli.args import ARGV_TOKEN, MAX_TOKEN, TOKEN_ENV, control_token, parser
from fakedriver.server.files import ServeError

TOKEN = "s3cret-0f1e2d3c4b5a"


def _serve_args(*argv: str) -> object:
    return parser().parse_args(["serve", *argv])


def _token_file(folder: Path, data: bytes, mode: int = 0o600) -> Path:
    path = folder / "token"
    path.write_bytes(data)
    path.chmod(mode)
    return path


# -- never on the command line -----------------------------------------------------------
def _serve(*argv: str, **popen: Any) -> subprocess.CompletedProcess[str]:
    """``fakedriver serve ARGV`` in a process of its own: were it not refused, it would
    serve, and the timeout would say so."""
    return subprocess.run(
        [sys.executable, "-m", "fakedriver", "serve", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        **popen,
    )


@pytest.mark.parametrize("flag", [["--control-token", TOKEN], [f"--control-token={TOKEN}"]])
def test_a_token_on_the_command_line_is_refused_in_one_line(
    tmp_path: Path, flag: list[str]
) -> None:
    done = _serve(*flag, "--tcp", "127.0.0.1:0", "--spec-dir", str(tmp_path))
    assert done.returncode == 2
    err = done.stderr
    assert err == f"fakedriver: {ARGV_TOKEN}\n"
    assert "/proc/PID/cmdline" in err and "--control-token-file FILE" in err and TOKEN_ENV in err
    assert list(tmp_path.iterdir()) == []  # no spec file: nothing served


# -- the token file ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data", [TOKEN.encode(), f"{TOKEN}\n".encode(), f"{TOKEN}\r\n".encode()], ids=repr
)
def test_the_token_file_is_read_less_one_trailing_newline(tmp_path: Path, data: bytes) -> None:
    path = _token_file(tmp_path, data)
    assert control_token(_serve_args("--control-token-file", str(path)), {}) == TOKEN


@pytest.mark.parametrize("mode", [0o400, 0o600, 0o700])
def test_a_token_file_of_its_owner_alone_is_accepted(tmp_path: Path, mode: int) -> None:
    path = _token_file(tmp_path, TOKEN.encode(), mode)
    assert control_token(_serve_args("--control-token-file", str(path)), {}) == TOKEN


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o610, 0o601])
def test_a_token_file_others_may_read_or_write_is_refused_with_the_chmod_to_run(
    short_dir: Path, mode: int
) -> None:
    path = _token_file(short_dir, TOKEN.encode(), mode)
    sock = short_dir / "p.sock"
    done = _serve("--socket", str(sock), "--control-token-file", str(path))
    assert done.returncode == 2
    assert done.stderr == (
        f"fakedriver: --control-token-file {path} may be read or written by others "
        f"(mode {mode:04o}): chmod 600 {path}\n"
    )
    assert not sock.exists()  # refused before anything is made


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the token is empty"),
        (b"\n", "the token is empty"),
        (b"two\nlines\n", "printable ASCII, without spaces or a second line"),
        (b"s3cret\n\n", "printable ASCII, without spaces or a second line"),
        (b"with space", "printable ASCII, without spaces or a second line"),
        (b" s3cret", "printable ASCII, without spaces or a second line"),
        ("s\u00e9cret".encode(), "printable ASCII, without spaces or a second line"),
        (b"x" * (MAX_TOKEN + 1), f"longer than {MAX_TOKEN} characters"),
    ],
    ids=["empty", "a newline", "two lines", "two newlines", "space", "lead", "utf8", "long"],
)
def test_a_token_file_without_one_good_token_is_refused(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = _token_file(tmp_path, data)
    with pytest.raises(ServeError, match=message):
        control_token(_serve_args("--control-token-file", str(path)), {})


def test_a_token_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ServeError, match=f"cannot read --control-token-file {missing}: No such"):
        control_token(_serve_args("--control-token-file", str(missing)), {})
    (tmp_path / "folder").mkdir(mode=0o700)
    with pytest.raises(ServeError, match="is a folder"):
        control_token(_serve_args("--control-token-file", str(tmp_path / "folder")), {})


# -- the environment variable ----------------------------------------------------------------
def test_the_variable_is_read_once_and_taken_out_of_the_environment() -> None:
    environ = {TOKEN_ENV: TOKEN, "OTHER": "x"}
    assert control_token(_serve_args(), environ) == TOKEN
    assert environ == {"OTHER": "x"}  # no child process (ip, for veth links) inherits it
    assert control_token(_serve_args(), environ) is None


def test_without_file_or_variable_there_is_no_token() -> None:
    assert control_token(_serve_args(), {}) is None


@pytest.mark.parametrize(
    ("value", "argv", "message"),
    [
        ("", [], f"{TOKEN_ENV}: the token is empty"),
        ("a b", [], f"{TOKEN_ENV}: the token must be printable ASCII"),
        (TOKEN, ["--control-token-file", "/x"], "and --control-token-file is given: choose"),
        (TOKEN, ["--no-control"], f"{TOKEN_ENV} is set and --no-control is given: choose one"),
    ],
    ids=["empty", "space", "and a file", "and no control"],
)
def test_a_bad_or_contradicted_variable_is_refused(
    short_dir: Path, value: str, argv: list[str], message: str
) -> None:
    sock = short_dir / "p.sock"
    done = _serve("--socket", str(sock), *argv, env={**os.environ, TOKEN_ENV: value})
    assert done.returncode == 2
    err = done.stderr
    assert err.startswith("fakedriver: ") and message in err and err.count("\n") == 1, err
    assert not sock.exists()


# -- served: the token works, and nobody finds it ---------------------------------------------
#: Run as nobody: everything it can read of the server's command line, environment and
#: files (each file's content, or why it could not be read), as JSON.
LOOK = r"""
import json, os, sys
pid, folder = sys.argv[1], sys.argv[2]
paths = [f"/proc/{pid}/cmdline", f"/proc/{pid}/environ"]
paths += sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files)
seen = {}
for path in paths:
    try:
        with open(path, "rb") as file:
            seen[path] = file.read().decode("latin-1")
    except OSError as exc:
        seen[path] = "unreadable: " + exc.strerror
print(json.dumps(seen))
"""


def _control(address: tuple[str, int], auth: str) -> int:
    body = b"{}"
    headers = f"Content-Type: application/json\r\n{auth}Content-Length: {len(body)}\r\n"
    with connect(address) as sock:
        sock.sendall(raw_request("POST", "/fakedriver/reset", body, headers))
        return read_one(sock).status


@pytest.mark.parametrize("where", ["file", "variable"])
@pytest.mark.socket
def test_over_tcp_the_token_works_and_nobody_can_read_it(short_dir: Path, where: str) -> None:
    python = system_python()
    if os.geteuid() != 0 or python is None:
        pytest.skip("SKIPPED LOUDLY: needs root and /usr/bin/python3 to look as nobody")
    short_dir.chmod(0o755)  # nobody may look at every file the server writes
    token = f"{TOKEN}-{where}"
    argv = ["--tcp", "127.0.0.1:0", "--spec-dir", str(short_dir)]
    argv += ["--state", str(short_dir / "state.db")]
    env = dict(os.environ)
    if where == "file":
        argv += ["--control-token-file", str(_token_file(short_dir, f"{token}\n".encode()))]
    else:
        env[TOKEN_ENV] = token
    served = Served(short_dir, *argv, env=env).wait_ready()
    try:
        spec = (short_dir / "fake.spec").read_text().strip()
        host, _, port = spec.removeprefix("tcp://").rpartition(":")
        address = (host, int(port))
        assert _control(address, "") == 401
        assert _control(address, f"Authorization: Bearer {token}\r\n") == 200  # in force
        done = subprocess.run(
            [python, "-c", LOOK, str(served.process.pid), str(short_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            user=65534,
            group=65534,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        seen: dict[str, str] = json.loads(done.stdout)
    finally:
        assert served.stop() == 0
    cmdline = f"/proc/{served.process.pid}/cmdline"
    assert "fakedriver" in seen[cmdline]  # nobody reads every command line...
    assert seen[f"/proc/{served.process.pid}/environ"].startswith("unreadable")  # not this
    assert str(short_dir / "fake.spec") in seen  # ...and the files the server wrote
    if where == "file":
        assert seen[str(short_dir / "token")] == "unreadable: Permission denied"
    leaks = [path for path, content in seen.items() if token in content]
    assert leaks == [], leaks
