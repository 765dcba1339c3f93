"""Print the declared floor of every dependency (core and the extras the test suite
uses, followed through ``fakedriver[...]`` references, and the tools of the dev extra the
floor run runs too) as ``name==version`` lines, for CI's floor run: a floor that is wrong
fails there."""

from __future__ import annotations

import re
import sys
import tomllib

#: The extra the test suite installs; the extras it names are followed from it.
ROOT = "test"
SELF = re.compile(r"^fakedriver\[([^\]]+)\]$")
#: Tools of the dev extra that the floor run runs (``lint-imports``), at their floor too.
TOOLS = ("import-linter",)


def requirements(extras: dict[str, list[str]], extra: str, seen: set[str]) -> list[str]:
    """The requirements of ``extra`` and of every extra it names, each extra once."""
    if extra in seen:
        return []
    seen.add(extra)
    found: list[str] = []
    for spec in extras[extra]:
        named = SELF.match(spec.strip())
        if named is None:
            found.append(spec)
            continue
        for other in named.group(1).split(","):
            found += requirements(extras, other.strip(), seen)
    return found


def main() -> None:
    with open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb") as source:
        project = tomllib.load(source)["project"]
    wanted = list(project["dependencies"])
    wanted += requirements(project["optional-dependencies"], ROOT, set())
    wanted += [
        spec
        for spec in project["optional-dependencies"]["dev"]
        if re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower() in TOOLS
    ]
    pins = {}
    for spec in wanted:
        found = re.match(r"^([A-Za-z0-9_.-]+)(?:\[.*\])?\s*>=\s*([^,;\s]+)", spec)
        if found:
            pins[found.group(1).lower()] = found.group(2)
    for name, version in sorted(pins.items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
