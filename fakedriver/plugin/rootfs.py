"""The root filesystem of the managed plugin: a relocatable copy of the running interpreter.

The interpreter's prefix is copied at the same absolute path (``sys.base_prefix``: its
binary, the standard library pruned of what ``fakedriver serve`` never imports, its
``lib-dynload`` modules), with every shared library ``ldd`` lists for the binary and those
modules, the dynamic loader, and iproute2's ``ip`` (for ``--links veth``). fakedriver and
its core dependencies are copied from the running environment into `SITE`. Nothing
is downloaded.
"""

from __future__ import annotations

import compileall
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

#: Where fakedriver and its dependencies live inside the rootfs (on ``PYTHONPATH``).
SITE = "/opt/fakedriver/site"

#: Top-level names of the standard library that serve never imports (checked by
#: tests/test_bundle.py against every module fakedriver's serve can reach).
PRUNED_STDLIB = frozenset(
    {
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "turtle.py",
        "ensurepip",
        "lib2to3",
        "site-packages",
        "dist-packages",
        "pydoc_data",
        "venv",
        "distutils",
        "__phello__",
    }
)
#: Folders pruned at any depth of the standard library (the tests of its packages).
PRUNED_ANYWHERE = frozenset({"test", "tests", "idle_test"})
#: Extension modules serve never imports, some pulling large libraries in (Tk, Kerberos).
PRUNED_DYNLOAD = frozenset(
    {"_tkinter", "_curses", "_curses_panel", "readline", "nis", "spwd", "ossaudiodev"}
    | {"_crypt", "audioop", "_ctypes_test", "xxlimited", "xxlimited_35", "xxsubtype"}
)
#: ... and their test modules (``_testcapi``, ``_testbuffer``, ...).
PRUNED_DYNLOAD_PREFIX = ("_test", "_xx")

_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


class RootfsError(Exception):
    """The rootfs cannot be made here; the message says why."""


def interpreter() -> Path:
    """The real binary of the running interpreter (a virtual environment's base one)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(sys.base_prefix) / "bin" / version
    if candidate.is_file():
        return candidate
    return Path(os.path.realpath(sys.executable))


def mirror(root: Path, path: str) -> str:
    """Make ``path`` resolve inside ``root`` as it does on the host: each symlink on the
    way is recreated (``/lib -> usr/lib``), then the file or folder itself is copied.

    :param root: the rootfs folder.
    :param path: an absolute host path.
    :return: the real host path it resolved to.
    """
    path = os.path.normpath(path)
    if path == "/":
        return "/"
    parent = mirror(root, os.path.dirname(path))
    host = os.path.join(parent, os.path.basename(path))
    inside = root / host.lstrip("/")
    if os.path.islink(host):
        target = os.readlink(host)
        if not os.path.lexists(inside):
            inside.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, inside)
        return mirror(root, os.path.join(parent, target))
    if os.path.isdir(host):
        inside.mkdir(parents=True, exist_ok=True)
    elif not os.path.lexists(inside):
        inside.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(host, inside)
    return host


def libraries(binaries: Iterable[str]) -> set[str]:
    """Every shared library (and the loader) ``ldd`` lists for these binaries."""
    files = sorted(set(binaries))
    ldd = shutil.which("ldd")
    if ldd is None:
        raise RootfsError("ldd not found (Debian package libc-bin): cannot list libraries")
    done = subprocess.run([ldd, *files], capture_output=True, text=True, check=False, timeout=120)
    found: set[str] = set()
    for line in done.stdout.splitlines():
        if "not found" in line:
            raise RootfsError(f"ldd: a library is missing on this host: {line.strip()}")
        match = _LDD_PATH.search(line)
        if match:
            found.add(match.group(1))
    if not found:
        raise RootfsError(f"ldd listed no library for {files[0]}: {done.stderr.strip()}")
    return found


def _stdlib_ignore(folder: str, names: list[str]) -> set[str]:
    top = os.path.realpath(folder) == os.path.realpath(sysconfig.get_path("stdlib"))
    ignored = {n for n in names if n in PRUNED_ANYWHERE}
    if top:
        ignored |= {n for n in names if n in PRUNED_STDLIB or n.startswith("config-")}
    if os.path.basename(folder) == "lib-dynload":
        for name in names:
            module = name.split(".")[0]
            if module in PRUNED_DYNLOAD or module.startswith(PRUNED_DYNLOAD_PREFIX):
                ignored.add(name)
    if os.path.basename(folder) == "__pycache__":  # the optimized levels serve never runs
        ignored |= {n for n in names if ".opt-" in n}
    return ignored


def _dynload() -> Path:
    """The folder of the interpreter's extension modules (on ``sys.path``)."""
    for entry in sys.path:
        if os.path.basename(entry) == "lib-dynload" and os.path.isdir(entry):
            return Path(entry)
    return Path(sysconfig.get_path("stdlib")) / "lib-dynload"


def copy_interpreter(root: Path) -> tuple[str, list[str]]:
    """Copy the interpreter and its pruned standard library into ``root`` at their host
    paths.

    :return: the interpreter's path, and the host paths of the binaries copied (the
        interpreter and its extension modules), whose libraries it needs.
    """
    binary = interpreter()
    mirror(root, str(binary))
    stdlib = sysconfig.get_path("stdlib")
    real = mirror(root, os.path.dirname(stdlib))  # the folders (and links) above it
    target = root / os.path.join(real, os.path.basename(stdlib)).lstrip("/")
    shutil.copytree(
        os.path.realpath(stdlib),
        target,
        symlinks=False,
        ignore=_stdlib_ignore,
        ignore_dangling_symlinks=True,
        dirs_exist_ok=True,
    )
    dynload = _dynload()
    inside = root / os.path.realpath(dynload).lstrip("/")
    if not inside.is_dir():  # outside the standard library (Fedora's lib64)
        mirror(root, str(dynload.parent))
        shutil.copytree(os.path.realpath(dynload), inside, ignore=_stdlib_ignore)
    modules = [str(dynload / m.name) for m in inside.glob("*.so")]
    return str(binary), [str(binary), *modules]


def strip(root: Path, binaries: Iterable[str]) -> None:
    """Drop the debug sections of the copies (at their host paths) of these host
    binaries, where binutils' ``strip`` is installed (pyenv's libpython carries 17 MB of
    them); else keep them."""
    tool = shutil.which("strip")
    if tool is None:
        return
    copies = [str(root / os.path.realpath(b).lstrip("/")) for b in sorted(set(binaries))]
    subprocess.run([tool, "--strip-debug", *copies], capture_output=True, check=False, timeout=120)


def copy_ip(root: Path) -> str:
    """Copy iproute2's ``ip`` at its host path (found on the default ``PATH`` a plugin
    gets)."""
    ip = shutil.which("ip", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if ip is None:
        raise RootfsError("iproute2's ip not found: install iproute2 (for --links veth)")
    mirror(root, ip)
    return ip


def _requirements(dist: importlib.metadata.Distribution) -> list[str]:
    """The names of a distribution's requirements outside its extras."""
    names = []
    for requirement in dist.requires or []:
        spec, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if match:
            names.append(match.group(1))
    return names


def distributions(root: str = "fakedriver") -> list[importlib.metadata.Distribution]:
    """``root`` and every distribution it needs (outside extras), installed here."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise RootfsError(f"{name} is needed by fakedriver but not installed") from None
        found[key] = dist
        todo += _requirements(dist)
    return list(found.values())


def _top_level(dist: importlib.metadata.Distribution) -> set[str]:
    """The import names a distribution installs: fakedriver's package (an editable
    install lists none of its files), or those its files show (else ``top_level.txt``)."""
    if dist.metadata["Name"] == "fakedriver":
        return {"fakedriver"}
    names = set()
    for file in dist.files or []:
        first = file.parts[0]
        if len(file.parts) > 1 and not first.endswith((".dist-info", ".egg-info", "..")):
            names.add(first)
        elif len(file.parts) == 1 and file.suffix == ".py":
            names.add(file.stem)
    names = names or set((dist.read_text("top_level.txt") or "").split())
    return {n for n in names if n.isidentifier() and not n.startswith("__")}


def copy_packages(root: Path, site: str = SITE) -> list[str]:
    """Copy fakedriver and its core dependencies, as imported here, into ``site`` (an
    editable install's package folder too), without their tests, with their metadata,
    and compile them.

    :return: the host paths of the extension modules copied (markupsafe's speedups),
        whose libraries they need.
    """
    into = root / site.lstrip("/")
    into.mkdir(parents=True, exist_ok=True)
    copied = []
    skip = shutil.ignore_patterns("__pycache__", *PRUNED_ANYWHERE)  # h11 0.14 ships tests
    for dist in distributions():
        for file in dist.files or []:
            if file.parts[0].endswith(".dist-info") and file.name != "RECORD":
                source = Path(str(dist.locate_file(file)))
                (into / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, into / file)
        for name in sorted(_top_level(dist)):
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                raise RootfsError(f"cannot find the module {name} of {dist.metadata['Name']}")
            if spec.submodule_search_locations:
                folder = next(iter(spec.submodule_search_locations))
                shutil.copytree(folder, into / name, ignore=skip, dirs_exist_ok=True)
                copied += [str(p) for p in Path(folder).rglob("*.so")]
            else:
                shutil.copy2(spec.origin, into / os.path.basename(spec.origin))
                copied += [spec.origin] if spec.origin.endswith(".so") else []
    compileall.compile_dir(str(into), quiet=2, ddir=site, workers=1)
    return copied
