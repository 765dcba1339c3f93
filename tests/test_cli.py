"""``fakedriver`` as a person types it: --version, a bad flag answered with the usage of the
command it was given to, plain-text help, contradicting flags refused before anything is
made, and timestamps on text log lines (see test_server's log tests)."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import fakedriver
from fakedriver.cli.main import main


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
        (["--no-control", "--control-token-file", "{dir}/t"], "--no-control serves no"),
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
        from fakedriver.cli.args import parser
        from fakedriver.cli.options import persona_from

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


#: An abbreviation of a real flag, for every command and sub-command, and the words of
#: the refusal (argparse would take each as the whole flag if it allowed abbreviations).
ABBREVIATED = [
    (["--vers", "state", "show", "{dir}/x.db"], "unrecognized arguments: --vers"),
    (["serve", "--scop", "global", "--socket", "{dir}/no/x.sock"], "arguments: --scop global"),
    (["serve", "--hel"], "unrecognized arguments: --hel"),
    (["state", "--hel", "show", "{dir}/x.db"], "unrecognized arguments: --hel"),
    (["state", "show", "--js", "{dir}/x.db"], "unrecognized arguments: --js"),
    (["state", "import", "--hel", "{dir}/x.json", "{dir}/x.db"], "arguments: --hel"),
    (["plugin", "--hel", "socket", "x"], "unrecognized arguments: --hel"),
    (["plugin", "build", "{dir}/b", "--scop", "global"], "unrecognized arguments: --scop"),
    (["plugin", "socket", "--hel", "x"], "unrecognized arguments: --hel"),
]


@pytest.mark.parametrize(
    ("argv", "message"), ABBREVIATED, ids=[" ".join(a) for a, _ in ABBREVIATED]
)
def test_an_abbreviated_flag_is_refused_by_every_command(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exited:
        code = exited.code
    assert code == 2
    captured = capsys.readouterr()
    assert message in captured.err, captured.err
    assert "usage:" not in captured.out  # no help printed either
    assert list(tmp_path.iterdir()) == []  # nothing made


def test_every_parser_refuses_abbreviations() -> None:
    """Every parser the command line is made of, however deep: a new one must say so too."""
    from fakedriver.cli.args import parser

    def walk(each: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield each
        for action in each._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)

    parsers = list(walk(parser()))
    # fakedriver, serve, state, show, import, plugin, build, socket, check, record, dashboard
    assert len(parsers) == 11
    assert [p.prog for p in parsers if p.allow_abbrev] == []


def test_an_error_is_one_line_whatever_the_names_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error names a file, and a file's name may hold a newline or an escape."""
    odd = tmp_path / "a\nb\x1b[2K"
    code = main(["serve", "--persona", str(odd), "--socket", str(tmp_path / "x.sock")])
    err = capsys.readouterr().err
    assert code == 2 and err.endswith("\n") and err[:-1].isprintable(), err
    shown = f"{tmp_path}/a\\nb\\x1b[2K"
    assert err == f"fakedriver: cannot read persona file {shown}: No such file or directory\n"


def test_every_persona_flag_has_its_help_whatever_the_docstrings_indent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython 3.13 strips a docstring's common indentation when it compiles it: the
    persona's ``:param`` lines start the line there, indented under 3.11 and 3.12. Every
    field's help is found either way (serve's parser was a KeyError under 3.13)."""
    import inspect

    from fakedriver import Persona
    from fakedriver.cli import options

    indented = Persona.__doc__ or ""
    for doc in (indented, inspect.cleandoc(indented)):
        monkeypatch.setattr(Persona, "__doc__", doc)
        helps = options._helps()
        assert set(helps) == {f.name for f in dataclasses.fields(Persona)}, doc[:80]
        assert all(helps.values()) and not any(":param" in text for text in helps.values())
