"""``fakedriver plugin build``: the managed-plugin bundle, its config.json, its rootfs, and
``fakedriver serve`` running inside that rootfs (chroot, root only)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.dockerd_env import run_name, unix_call
from support.rawhttp import system_python

import fakedriver
from fakedriver.cli.args import check_serve_args
from fakedriver.cli.main import main
from fakedriver.plugin import bundle as _bundle
from fakedriver.plugin.bundle import DATA, BundleError, build
from fakedriver.plugin.rootfs import PRUNED_STDLIB, SITE, interpreter

BAKED = ["--scope", "global", "--links", "veth", "--seed", "7"]
#: what serve needs inside: PYTHONPATH from config.json, PATH as dockerd sets it
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONPATH": SITE,
}
#: fakedriver's modules that need an extra (not in the bundle, never imported by serve),
#: and the one that runs the command line
EXTRAS = {"for_httpx", "for_aiohttp", "for_requests", "pytest_plugin", "__main__"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle for the module: building takes about a second."""
    path = tmp_path_factory.mktemp("bundle") / "fakedriver"
    assert main(["plugin", "build", str(path), *BAKED]) == 0
    return path


@pytest.fixture(scope="module")
def settings(bundle: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return config


def _inside(bundle: Path, path: str) -> Path:
    return bundle / "rootfs" / path.lstrip("/")


# -- config.json ------------------------------------------------------------------------
def test_config_declares_both_drivers_on_the_socket_serve_listens_on(
    settings: dict[str, Any],
) -> None:
    interface = settings["interface"]
    assert interface["types"] == ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"]
    assert interface["socket"] == "fakedriver.sock"
    entry = settings["entrypoint"]
    assert entry[1:] == [
        "-m",
        "fakedriver",
        "serve",
        "--socket",
        "/run/docker/plugins/fakedriver.sock",
    ]
    assert entry[0] == str(interpreter())
    assert settings["network"] == {"type": "host"}
    assert "CAP_NET_ADMIN" in settings["linux"]["capabilities"]
    assert settings["description"] and settings["documentation"].startswith("https://")


def test_the_build_flags_are_the_default_args_and_settable(settings: dict[str, Any]) -> None:
    assert settings["args"]["value"] == BAKED
    assert settings["args"]["settable"] == ["value"]


def test_a_settable_mount_shows_a_host_folder_inside(settings: dict[str, Any]) -> None:
    (mount,) = settings["mounts"]
    assert mount["destination"] == DATA and mount["type"] == "bind"
    assert mount["settable"] == ["source"] and "rbind" in mount["options"]
    env = {item["name"]: item["value"] for item in settings["env"]}
    assert env["PYTHONPATH"] == SITE


def test_name_sets_the_socket(tmp_path: Path) -> None:
    from fakedriver.plugin.bundle import config

    made = config("/usr/bin/python3", socket="fd2")
    assert made["interface"]["socket"] == "fd2.sock"
    assert made["entrypoint"][-1] == "/run/docker/plugins/fd2.sock"


@pytest.mark.parametrize("name", ["../up", ".hidden", "a/b", ""])
def test_a_socket_name_serve_would_refuse_is_refused(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plugin", "build", "--name", name, str(tmp_path / "b")])
    assert exited.value.code == 2
    assert f"{name!r} is not a plugin name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- the rootfs ---------------------------------------------------------------------------
def test_rootfs_holds_the_interpreter_ip_fakedriver_and_its_dependencies(
    bundle: Path, settings: dict[str, Any]
) -> None:
    assert os.access(_inside(bundle, settings["entrypoint"][0]), os.X_OK)
    ip = shutil.which("ip", path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert ip is not None and _inside(bundle, ip).is_file()
    for package in ("fakedriver", "werkzeug", "h11", "markupsafe"):
        assert (_inside(bundle, SITE) / package / "__init__.py").is_file(), package
    source = Path(fakedriver.__file__).parent
    shipped = {p.name for p in (_inside(bundle, SITE) / "fakedriver").glob("*.py")}
    assert shipped == {p.name for p in source.glob("*.py")}
    shipped_tests = [p for p in _inside(bundle, SITE).rglob("*") if p.name in ("test", "tests")]
    assert shipped_tests == []  # h11 0.14 (the floor) ships h11/tests, which needs pytest


def test_the_standard_library_is_pruned(bundle: Path) -> None:
    import sysconfig

    stdlib = _inside(bundle, os.path.realpath(sysconfig.get_path("stdlib")))
    assert (stdlib / "os.py").is_file() and (stdlib / "json" / "__init__.py").is_file()
    kept = {p.name for p in stdlib.iterdir()}
    assert not kept & PRUNED_STDLIB
    assert not list(stdlib.rglob("tests")) and not list(stdlib.glob("config-*"))
    assert not list(stdlib.rglob("*.opt-1.pyc"))


def test_the_bundle_is_well_under_the_recorders_109_mb(bundle: Path) -> None:
    done = subprocess.run(
        ["du", "-sm", str(bundle)], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(done.stdout.split()[0]) < 80, done.stdout


# -- refusals: a clear error, nothing written ---------------------------------------------
def _siblings(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("x"), "exists and is not a folder"),
        (lambda p: (p.mkdir(), (p / "keep").write_text("x")), "exists and is not empty"),
    ],
)
def test_a_bad_folder_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, message: str
) -> None:
    target = tmp_path / "bundle"
    make(target)
    before = _siblings(tmp_path)
    assert main(["plugin", "build", str(target)]) == 2
    assert message in capsys.readouterr().err
    assert _siblings(tmp_path) == before
    assert not target.is_dir() or _siblings(target) == {"keep"}


def test_a_missing_parent_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such folder"):
        build(tmp_path / "nowhere" / "bundle", check=check_serve_args)
    assert _siblings(tmp_path) == set()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--scope", "planet"], "scope must be 'local' or 'global', not 'planet'"),
        (["--links", "ether"], "invalid choice: 'ether'"),
        (["--socket", "/x.sock"], "listens on the socket its config.json names"),
        (["--sock=/x.sock"], "unrecognized arguments: --sock=/x.sock"),  # not --socket
        (["--tcp", "127.0.0.1:0"], "listens on the socket its config.json names"),
        (["--default-pools", '[["10.9.0.0/16", 24]]'], "splits args on single spaces"),
        (["--no-control", "--control-token-file", f"{DATA}/t"], "--no-control serves no"),
        (["--control-token", "s3cret"], "bake --control-token-file /var/lib/fakedriver/token"),
        (["--control-token=s3cret"], "a token in args is in config.json and 'docker plugin"),
    ],
)
def test_serve_flags_serve_would_refuse_are_refused_at_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["plugin", "build", str(tmp_path / "b"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert _siblings(tmp_path) == set()


# -- two builds of one folder at once ---------------------------------------------------------
@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds without the rootfs's copies (interpreter, ip, packages, libraries): where
    the bundle lands is what these tests are about, and the module's bundle is real."""
    monkeypatch.setattr(_bundle, "copy_interpreter", lambda root: ("/usr/bin/python3", []))
    monkeypatch.setattr(_bundle, "copy_ip", lambda root: root / "usr/bin/ip")
    monkeypatch.setattr(_bundle, "copy_packages", lambda root: [])
    monkeypatch.setattr(_bundle, "libraries", lambda paths: [])
    monkeypatch.setattr(_bundle, "strip", lambda root, paths: None)


def _the_other_build_lands(target: Path) -> None:
    """What the winning build does last: its finished bundle renamed to the folder."""
    done = target.parent / ".winner"
    (done / "rootfs").mkdir(parents=True)
    (done / "config.json").write_text('{"winner": true}\n')
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(target)
    os.rename(done, target)


@pytest.mark.usefixtures("quick")
@pytest.mark.parametrize(
    ("empty", "when"),
    [(False, "config"), (True, "config"), (True, "rmdir")],
    ids=["new folder", "empty folder", "between rmdir and rename"],
)
def test_of_two_builds_of_one_folder_the_loser_is_refused_and_the_winner_stays(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    empty: bool,
    when: str,
) -> None:
    """The other build lands after this one checked the folder: while this one writes its
    config.json, or between its rmdir of the empty folder and its rename."""
    target = tmp_path / "bundle"
    if empty:
        target.mkdir()
    if when == "config":
        config = _bundle.config

        def race_then_config(*args: Any, **kwargs: Any) -> dict[str, Any]:
            _the_other_build_lands(target)
            return config(*args, **kwargs)

        monkeypatch.setattr(_bundle, "config", race_then_config)
    else:
        rmdir, raced = os.rmdir, []

        def rmdir_then_race(path: Any, *args: Any, **kwargs: Any) -> None:
            rmdir(path, *args, **kwargs)
            if Path(path) == target and not raced:
                raced.append(path)
                _the_other_build_lands(target)

        monkeypatch.setattr(os, "rmdir", rmdir_then_race)
    assert main(["plugin", "build", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"fakedriver: {target}: was made by another build meanwhile; left as it is\n"
    )
    assert json.loads((target / "config.json").read_text()) == {"winner": True}
    assert _siblings(tmp_path) == {"bundle"}  # the loser's temporary folder is gone
    assert _siblings(target) == {"config.json", "rootfs"}


@pytest.mark.usefixtures("quick")
def test_a_quick_build_lands(tmp_path: Path) -> None:
    """The stubs above leave a build that works: the race, not they, refuses the loser."""
    assert main(["plugin", "build", str(tmp_path / "bundle")]) == 0
    assert _siblings(tmp_path / "bundle") == {"config.json", "rootfs"}


def test_a_token_file_on_the_data_mount_is_a_flag_like_any_other() -> None:
    check_serve_args(["--control-token-file", f"{DATA}/token", "--links", "veth"])


def test_help_documents_the_serve_flags_and_the_mount(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["plugin", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "'fakedriver serve' flag" in text and DATA in text and "docker plugin create" in text


# -- inside the rootfs (chroot needs root) ------------------------------------------------
def _chroot(bundle: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(bundle / "rootfs"), *argv],
        env=CHROOT_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0 or shutil.which("chroot") is None:
        pytest.skip("SKIPPED LOUDLY: chroot into the bundle needs root")


@pytest.mark.usefixtures("root")
def test_python_runs_fakedriver_inside(bundle: Path) -> None:
    done = _chroot(bundle, "python3", "-m", "fakedriver", "--version")
    assert done.stdout.strip() == f"fakedriver {fakedriver.__version__}", done.stderr


@pytest.mark.usefixtures("root")
def test_every_module_of_fakedriver_and_its_dependencies_imports_inside(bundle: Path) -> None:
    script = (
        "import importlib, pkgutil, sys\n"
        "import fakedriver, werkzeug, h11, markupsafe\n"
        f"skip = {sorted(EXTRAS)!r}\n"
        "for pkg in (fakedriver, h11, markupsafe):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if m.name.rsplit('.', 1)[-1] not in skip:\n"
        "            importlib.import_module(m.name)\n"
        "import werkzeug.wrappers, werkzeug.exceptions, werkzeug.test, werkzeug.routing\n"
        "import sqlite3, tomllib, subprocess, hashlib, ssl\n"
        "print('ok')\n"
    )
    done = _chroot(bundle, "python3", "-c", script)
    assert done.stdout.strip() == "ok", done.stderr


def _wait_for(sock: Path, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"serve did not listen in 20 s: {log.read_text()}"
        time.sleep(0.05)


@pytest.fixture
def served(bundle: Path) -> Iterator[tuple[Path, Path]]:
    """serve inside the rootfs, on a socket in its data folder (the host sees it there),
    with a state database, a scenario file and veth links; the socket and the log."""
    data = _inside(bundle, DATA)
    name = run_name("fdb") + uuid.uuid4().hex[:6]
    (data / f"{name}.toml").write_text(
        '[[fault]]\nmethod = "DeleteNetwork"\nmessage = "scenario says no"\ntimes = 1\n'
    )
    log = data / f"{name}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                "chroot",
                str(bundle / "rootfs"),
                *json.loads((bundle / "config.json").read_text())["entrypoint"][:4],
                "--socket",
                f"{DATA}/{name}.sock",
                "--state",
                f"{DATA}/{name}.db",
                "--faults",
                f"{DATA}/{name}.toml",
                "--links",
                "veth",
                "--log-format",
                "json",
            ],
            env=CHROOT_ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        _wait_for(data / f"{name}.sock", process, log)
        yield data / f"{name}.sock", log
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.usefixtures("root")
@pytest.mark.socket
def test_serve_inside_answers_the_protocols_faults_and_the_control_api(
    served: tuple[Path, Path],
) -> None:
    sock, log = served
    nid, eid = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    assert unix_call(sock, "POST", "/Plugin.Activate") == (
        200,
        {"Implements": ["NetworkDriver", "IpamDriver"]},
    )
    network = {
        "NetworkID": nid,
        "Options": {"com.docker.network.generic": {}},
        "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.77.0.0/24"}],
        "IPv6Data": [],
    }
    assert unix_call(sock, "POST", "/NetworkDriver.CreateNetwork", network) == (200, {})
    endpoint = {"Interface": {"Address": "10.77.0.2/24"}, "Options": {}}
    ids = {"NetworkID": nid, "EndpointID": eid}
    assert unix_call(sock, "POST", "/NetworkDriver.CreateEndpoint", {**ids, **endpoint})[0] == 200
    status, joined = unix_call(
        sock, "POST", "/NetworkDriver.Join", {**ids, "SandboxKey": "/x", "Options": {}}
    )
    inner = joined["InterfaceName"]["SrcName"]
    assert status == 200 and inner.startswith("fdv"), joined
    shown = subprocess.run(["ip", "link", "show", inner], capture_output=True, timeout=10)
    assert shown.returncode == 0  # ip, inside the rootfs, made the pair on the host
    assert unix_call(sock, "POST", "/NetworkDriver.Leave", ids) == (200, {})
    shown = subprocess.run(["ip", "link", "show", inner], capture_output=True, timeout=10)
    assert shown.returncode != 0
    assert unix_call(sock, "POST", "/NetworkDriver.DeleteEndpoint", ids) == (200, {})
    # the scenario file's fault, then one added over the control API
    assert unix_call(sock, "POST", "/NetworkDriver.DeleteNetwork", {"NetworkID": nid}) == (
        200,
        {"Err": "scenario says no"},
    )
    rule = {"method": "DeleteNetwork", "status": 503, "message": "busy", "times": 1}
    assert unix_call(sock, "POST", "/fakedriver/faults", rule) == (200, {"added": [1]})
    assert unix_call(sock, "POST", "/NetworkDriver.DeleteNetwork", {"NetworkID": nid}) == (
        503,
        {"Err": "busy"},
    )
    assert unix_call(sock, "POST", "/NetworkDriver.DeleteNetwork", {"NetworkID": nid}) == (200, {})
    status, calls = unix_call(sock, "GET", "/fakedriver/calls")
    methods = [call["method"] for call in calls["calls"]]
    assert methods[:2] == ["Plugin.Activate", "NetworkDriver.CreateNetwork"]
    assert methods.count("NetworkDriver.DeleteNetwork") == 3
    assert unix_call(sock, "GET", "/fakedriver/leaks") == (200, {"leaks": []})
    assert '"method": "NetworkDriver.Join"' in log.read_text()


@pytest.mark.usefixtures("root")
def test_a_bundle_of_debians_python_runs_too(tmp_path: Path) -> None:
    """The same build run by Debian's /usr/bin/python3 (same minor version), with this
    environment's packages on its path: its rootfs runs fakedriver."""
    debian = system_python()
    if debian is None:
        pytest.skip(f"SKIPPED LOUDLY: no Debian /usr/bin/python3 {sys.version_info[:2]} here")
    import sysconfig

    path = os.pathsep.join(
        [str(Path(fakedriver.__file__).parents[1]), sysconfig.get_path("purelib")]
    )
    done = subprocess.run(
        [debian, "-m", "fakedriver", "plugin", "build", str(tmp_path / "b")],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["entrypoint"][0].startswith("/usr/bin/python3")
    inside = _chroot(tmp_path / "b", "python3", "-m", "fakedriver", "--version")
    assert inside.stdout.strip() == f"fakedriver {fakedriver.__version__}", inside.stderr
