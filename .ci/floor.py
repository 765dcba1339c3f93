"""Print the declared floor of every dependency (core and the extras the test suite
uses) as ``name==version`` lines, for CI's floor run: a floor that is wrong fails there."""

from __future__ import annotations

import re
import sys
import tomllib

EXTRAS = ("pytest", "httpx", "aiohttp", "unixsocket", "test")


def main() -> None:
    with open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb") as source:
        project = tomllib.load(source)["project"]
    wanted = list(project["dependencies"])
    for extra in EXTRAS:
        wanted += project["optional-dependencies"][extra]
    pins = {}
    for spec in wanted:
        found = re.match(r"^([A-Za-z0-9_.-]+)(?:\[.*\])?\s*>=\s*([^,;\s]+)", spec)
        if found:
            pins[found.group(1).lower()] = found.group(2)
    for name, version in sorted(pins.items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
