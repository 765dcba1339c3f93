"""Figure 3: what the ``fake_netdriver`` fixture costs a test suite.

Two generated files of N tests each, run by pytest in a subprocess
(``-p no:cacheprovider -q``): every test of one takes ``fake_netdriver`` and makes one
call (``Plugin.Activate`` through ``requests``); the other's tests take no fixture and make
no call. The plugin is loaded (entry point) in both runs, so startup is common to both."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import Figure, interleave, median, ratio

WITH = '''
def test_{i:04d}(fake_netdriver):
    answer = requests.post(fake_netdriver.url + "/Plugin.Activate").json()
    assert "NetworkDriver" in answer["Implements"]
'''
WITHOUT = """
def test_{i:04d}():
    pass
"""


def _write(folder: Path, name: str, head: str, template: str, n: int) -> Path:
    path = folder / name
    path.write_text(head + "".join(template.format(i=i) for i in range(n)))
    return path


def _run(folder: Path, test_file: Path, n: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test_file.name]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or f"{n} passed" not in done.stdout:
        raise RuntimeError(f"pytest run of {test_file.name} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def fixture_cost(n: int, reps: int) -> Figure:
    with tempfile.TemporaryDirectory(prefix="fakedriver-bench-") as tmp:
        folder = Path(tmp)
        (folder / "pytest.ini").write_text("[pytest]\n")  # this folder is the rootdir
        subject = _write(folder, "test_with_fixture.py", "import requests\n", WITH, n)
        baseline = _write(folder, "test_without.py", "", WITHOUT, n)
        got = interleave(
            {"fake": lambda: _run(folder, subject, n), "bare": lambda: _run(folder, baseline, n)},
            reps,
        )
    fake, bare = median(got["fake"]), median(got["bare"])
    return Figure(
        f"3 pytest wall time, {n} tests: fixture + 1 call / no fixture",
        ratio(got, "fake", "bare"),
        "<=",
        1.5,
        notes=[
            f"wall: with fixture {fake:.2f} s, without {bare:.2f} s; "
            f"fixture + call {(fake - bare) / n * 1e3:.2f} ms per test ({reps} reps)"
        ],
    )
