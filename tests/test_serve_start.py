"""``fakedriver serve``'s start (issue 17, second round): a numeric flag is refused beyond
the most it can take, what the server reads at start must be a regular file, a signal ends
a start that is stuck, the folders it makes are not others' to write, and which TCP
addresses are this host's alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rawhttp import Served, call, connect, read_one

from fakedriver.cli.args import MOST, parser


# -- numeric flags ------------------------------------------------------------------------
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _over(most: float) -> str:
    return repr(most * 10) if isinstance(most, float) else str(most + 1)


@pytest.mark.parametrize("name", sorted(MOST))
@pytest.mark.parametrize("kind", ["over", "huge", "nan", "inf", "zero", "negative"])
def test_a_numeric_flag_beyond_its_bounds_is_a_usage_error(
    name: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--idle-timeout 1e10`` was taken, then every connection's settimeout() overflowed
    and the client was reset."""
    value = {
        "over": _over(MOST[name]),
        "huge": "1e10" if isinstance(MOST[name], float) else str(10**12),
        "nan": "nan",
        "inf": "inf",
        "zero": "0",
        "negative": "-1",
    }[kind]
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["serve", _flag(name), value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {_flag(name)}: " in err and "Traceback" not in err, err


def test_every_numeric_flag_of_serve_has_its_most() -> None:
    serve = parser().parse_args(["serve"]).subparser
    numeric = {
        action.dest
        for action in serve._actions
        if getattr(action.type, "__name__", "") in ("int", "float")
    }
    persona = {"seed"}  # a persona field: checked by Persona (test_persona.py)
    assert numeric - persona == set(MOST)


def test_every_numeric_flag_at_its_most_serves(short_dir: Path) -> None:
    """The bounds are values that work: a call read in two parts (the read timeout's
    deadline set) and a second one on the same kept-alive connection (the idle one)."""
    most = [arg for name, value in MOST.items() for arg in (_flag(name), str(value))]
    served = Served(short_dir, "--socket", str(short_dir / "p.sock"), *most).wait_ready()
    try:
        with connect(str(short_dir / "p.sock")) as sock:
            data = call("Plugin.Activate", {})
            sock.sendall(data[:10])
            sock.sendall(data[10:])
            assert read_one(sock).status == 200
            sock.sendall(call("NetworkDriver.GetCapabilities", {}))
            assert json.loads(read_one(sock).body)["Scope"] == "local"
    finally:
        assert served.stop() == 0
    assert "Traceback" not in served.stderr(), served.stderr()

