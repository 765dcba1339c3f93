"""``fakedriver`` as a person types it: --version, a bad flag answered with the usage of the
command it was given to, plain-text help, contradicting flags refused before anything is
made, and timestamps on text log lines (see test_server's log tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fakedriver
from fakedriver._cli import main


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fakedriver", *argv], capture_output=True, text=True, timeout=30
    )


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"fakedriver {fakedriver.__version__}"


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["serve", "--bogus"], "usage: fakedriver serve "),
        (["state", "show", "--bogus", "x.db"], "usage: fakedriver state show "),
    ],
)
def test_a_bad_flag_gets_the_usage_of_its_command(argv: list[str], usage: str) -> None:
    done = run(*argv)
    assert done.returncode == 2
    assert done.stderr.startswith(usage), done.stderr
    assert "unrecognized arguments: --bogus" in done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["state", "show", "--help"]])
def test_help_is_plain_text(argv: list[str]) -> None:
    done = run(*argv)
    assert done.returncode == 0
    assert "``" not in done.stdout and ":param" not in done.stdout and "`" not in done.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "a", "--socket", "{dir}/x.sock"], "--socket names its own path"),
        (["--socket", "{dir}/x.sock", "--spec-dir", "{dir}"], "--socket names its own path"),
        (["--socket", "{dir}/x.sock", "--tcp", "127.0.0.1:0"], "not allowed with argument"),
        (["--spec-dir", "{dir}"], "--spec-dir is only for --tcp"),
        (["--no-control", "--control-token", "t"], "--no-control serves no control API"),
        (["--no-control", "--control-socket", "{dir}/c.sock"], "--no-control serves no"),
        (["--socket", "{dir}/missing/x.sock"], "its folder does not exist"),
        (["--strict", "--lenient", "--socket", "{dir}/x.sock"], None),  # the last one wins
    ],
)
def test_contradicting_flags_are_refused_before_anything_is_made(
    tmp_path: Path, argv: list[str], message: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    if message is None:  # argparse's own rule for a flag and its negation: accepted
        from fakedriver._args import parser
        from fakedriver._options import persona_from

        assert persona_from(parser().parse_args(["serve", *argv])).strict is False
        return
    with pytest.raises(SystemExit) as exited:
        main(["serve", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no socket, no spec, no folder made


def test_a_bad_persona_file_is_exit_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    persona = tmp_path / "p.toml"
    persona.write_text('scope = "galactic"\n')
    code = main(["serve", "--persona", str(persona), "--socket", str(tmp_path / "x.sock")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fakedriver: persona file {persona}: scope must be") and err[-1] == "\n"
    assert not (tmp_path / "x.sock").exists()
