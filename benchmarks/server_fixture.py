"""What ``fake_netdriver_server`` adds to a test: one pytest run of N tests that use it,
interleaved with N bare tests, each test's setup + call + teardown timed by a hook; prints
the medians and the difference (what the fixture adds per test).

    python benchmarks/server_fixture.py            # 300 of each
    python benchmarks/server_fixture.py --tests 100 --tcp
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CONFTEST = """
import json, time
import pytest

TIMES = {}

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.perf_counter()
    yield
    TIMES[item.name] = time.perf_counter() - start

def pytest_sessionfinish(session):
    with open("times.json", "w") as out:
        json.dump(TIMES, out)
"""

TESTS = """
import pytest

{mark}
def test_server_{i}(fake_netdriver_server):
    assert fake_netdriver_server.socket_path

def test_bare_{i}():
    assert True
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tests", type=int, default=300, help="tests of each kind")
    parser.add_argument("--tcp", action="store_true", help="the marker's tcp=True")
    args = parser.parse_args()
    mark = "@pytest.mark.fake_netdriver(tcp=True)" if args.tcp else ""
    with tempfile.TemporaryDirectory(prefix="fdserverbench") as folder:
        root = Path(folder)
        (root / "conftest.py").write_text(CONFTEST)
        body = "".join(TESTS.format(i=i, mark=mark) for i in range(args.tests))
        (root / "test_cost.py").write_text(textwrap.dedent(body))
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"]
        subprocess.run(command, cwd=root, check=True, capture_output=True, timeout=600)
        times = json.loads((root / "times.json").read_text())
    served = statistics.median(v for k, v in times.items() if k.startswith("test_server_"))
    bare = statistics.median(v for k, v in times.items() if k.startswith("test_bare_"))
    print(
        f"fake_netdriver_server{' (tcp)' if args.tcp else ''}, median of {args.tests}: "
        f"{served * 1000:.3f} ms a test; bare: {bare * 1000:.3f} ms; "
        f"added: {(served - bare) * 1000:.3f} ms"
    )


if __name__ == "__main__":
    main()
