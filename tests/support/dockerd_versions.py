"""What each dockerd does on the plugin protocol, keyed by its version.

One row per thing that changed between dockerd 20.10 and 28, each with what the oldest
daemon we know does and, for every change since, the first version that does it
otherwise and where that is written (a moby commit; a change backported to older release
lines names the first version of each). :func:`expect` gives what a daemon of one version
does; the real-daemon tests ask their daemon its version (``docker version``) and assert
that. docs/dockerd.md shows the same rows as a table, for the daemons we run (20.10.24,
Debian 12's; 26.1.5, Debian 13's; 28.3.3, the captures' and the maintainers'), which
``test_docs.py`` checks against :data:`ROWS`.

The rows come from the two captures of the same 48 docker steps (20.10.24 and 28.3.3,
``fakedriver/conformance/data/``), from live runs of 20.10.24, 26.1.5 and 28.5.2 here, and from
moby's source for the versions between. The live scenario is compared with the capture
whose daemon sends the same request shapes and the same calls but for
GetDefaultAddressSpaces (:func:`capture_for`), with those calls moved to where this
daemon sends them (:func:`retime`).

Run as a script to print the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Version = tuple[int, int, int]
Record = dict[str, Any]

SPACES = "IpamDriver.GetDefaultAddressSpaces"
#: When dockerd asks GetDefaultAddressSpaces of a remote IPAM driver.
AT_ACTIVATION, PER_CREATE, PER_POOL = "activation", "create", "pool"


def parse_version(text: str) -> Version:
    """``"28.5.2+dfsg4"`` (what ``docker version`` says of the server) -> ``(28, 5, 2)``."""
    found = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if found is None:
        raise ValueError(f"not a dockerd version: {text!r}")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def shown(version: Version) -> str:
    return ".".join(map(str, version))


@dataclass(frozen=True)
class Behaviour:
    """What dockerd does from ``since`` on: ``value`` for the tests, ``cell`` for the docs.

    :param since: the first version that does it, one per release line it came to (a
        backport names the older lines first); empty for what the oldest daemon does.
    :param source: where that is written: a moby commit, or how it was seen.
    """

    value: Any
    cell: str
    since: tuple[Version, ...] = ()
    source: str = ""

    def applies(self, version: Version) -> bool:
        if not self.since:
            return True
        return version >= max(self.since) or any(
            version[:2] == first[:2] and version >= first for first in self.since
        )


@dataclass(frozen=True)
class Row:
    """One thing dockerd does that changed; ``name`` is its attribute of :class:`Expect`."""

    name: str
    label: str
    behaviours: tuple[Behaviour, ...]

    def at(self, version: Version) -> Behaviour:
        """What a daemon of ``version`` does (the last behaviour that applies)."""
        return [b for b in self.behaviours if b.applies(version)][-1]

    def changes(self) -> str:
        """The table's "changed in" cell."""
        return "; ".join(
            f"{' / '.join(shown(v) for v in b.since)} ({b.source})" for b in self.behaviours[1:]
        )


NOT_A_MANAGER = "This node is not a swarm manager"

ROWS: tuple[Row, ...] = (
    Row("spaces", f"`{SPACES}`", (
        Behaviour(AT_ACTIVATION, "once per activation, right after `IpamDriver.GetCapabilities`"),
        Behaviour(PER_CREATE, "once per network create, before its first `RequestPool`",
                  ((24, 0, 0),), "`5595311209`"),
        Behaviour(PER_POOL, "once per network create, and once more before each `RequestPool`",
                  ((27, 0, 0),), "`9d288b5b43`"),
    )),
    Row("oper_info_per_start", "`EndpointOperInfo` after a container's `Join` on one network", (
        Behaviour(2, "2"),
        Behaviour(1, "1", ((28, 0, 0),),
                  "seen on 28.3.3 and 28.5.2, not on 26.1.5; no one commit in the source"),
    )),
    Row("enable_ipv4", "`CreateNetwork`/`GwAllocCheck` option `com.docker.network.enable_ipv4`", (
        Behaviour(False, "absent"),
        Behaviour(True, "always; `false` on an IPv6-only network: no IPv4 pool, "
                  "`IPv4Data: []`, endpoints with no IPv4 address", ((28, 0, 0),), "`903daa4dc4`"),
    )),
    Row("no_proxy_6to4",
        "`ProgramExternalConnectivity` option `com.docker.network.driver.private.no_proxy_6to4`", (
        Behaviour(False, "absent"),
        Behaviour(True, "always; `true` when the container's IPv4 and IPv6 gateways are "
                  "different endpoints", ((28, 0, 0),), "`869f7996fc`"),
    )),
    Row("gw_alloc_check", "`GwAllocChecker` capability", (
        Behaviour(False, "ignored: `GwAllocCheck` is never called"),
        Behaviour(True, "`GwAllocCheck` before each network create; `SkipIPv4`/`SkipIPv6` "
                  "leave out that gateway address", ((28, 0, 0),), "`634951457d`"),
    )),
    Row("global_outside_swarm", "global-scope driver, `network create` outside swarm", (
        Behaviour(False, f"fails: `{NOT_A_MANAGER}. ...`; the driver sees "
                  "`CreateNetwork`, then `DeleteNetwork`"),
        Behaviour(True, "created (its pool in `GlobalDefault`)", ((24, 0, 0),), "`befff0e13f`"),
    )),
    Row("join_rollback_leave", "a `Join` answer dockerd cannot use (a bad `Gateway`)", (
        Behaviour(False, "`DeleteEndpoint`, no `Leave`"),
        Behaviour(True, "`Leave`, then `DeleteEndpoint`", ((27, 0, 0),), "`5952920380`"),
    )),
    Row("bad_pool_error", "what `docker network create` says of a `RequestPool` answer with "
        "no `Pool`", (
        Behaviour("invalid CIDR address:", "`invalid CIDR address:`"),
        Behaviour("netip.ParsePrefix(\"\"): no '/'", "`netip.ParsePrefix(\"\"): no '/'`",
                  ((27, 0, 0),), "`115de5ff3d`"),
    )),
    Row("host_header", "`Host` header of every call", (
        Behaviour("", "empty"),
        Behaviour("plugin.moby.localhost", "`plugin.moby.localhost`",
                  ((20, 10, 26), (23, 0, 7), (24, 0, 5)), "`pkg/plugins/client.go` `dummyHost`"),
    )),
)  # fmt: skip

#: The captures of the 48 steps, and the version of the daemon each was made with.
CAPTURES: dict[str, Version] = {
    "scenario-rec.jsonl": (20, 10, 24),
    "scenario-rec-d28.jsonl": (28, 3, 3),
}
#: The rows that shape the scenario's requests and calls, but for GetDefaultAddressSpaces.
SHAPING = ("oper_info_per_start", "enable_ipv4", "no_proxy_6to4")
#: The columns of docs/dockerd.md's table: the daemons we run.
COLUMNS: dict[str, Version] = {
    "20.10.24 (Debian 12)": (20, 10, 24),
    "26.1.5 (Debian 13)": (26, 1, 5),
    "28.3.3": (28, 3, 3),
}


def capture_for(version: Version) -> str | None:
    """The capture whose daemon shapes the scenario as a daemon of ``version`` does (the
    newest such), or ``None`` when no capture does."""
    rows = [row for row in ROWS if row.name in SHAPING]
    same = [
        name
        for name, theirs in CAPTURES.items()
        if all(row.at(theirs).value == row.at(version).value for row in rows)
    ]
    return max(same, key=CAPTURES.__getitem__) if same else None


@dataclass(frozen=True)
class Expect:
    """What dockerd ``version`` does (one attribute per row of :data:`ROWS`)."""

    version: Version
    spaces: str
    oper_info_per_start: int
    enable_ipv4: bool
    no_proxy_6to4: bool
    gw_alloc_check: bool
    global_outside_swarm: bool
    join_rollback_leave: bool
    bad_pool_error: str
    host_header: str
    capture: str | None

    @property
    def name(self) -> str:
        return f"dockerd {shown(self.version)}"


def expect(version: Version) -> Expect:
    values = {row.name: row.at(version).value for row in ROWS}
    return Expect(version=version, capture=capture_for(version), **values)


def retime(calls: list[Record], spaces: str) -> list[Record]:
    """One docker step's calls (capture records) with GetDefaultAddressSpaces where a
    daemon that asks it ``spaces`` sends it: after IpamDriver.GetCapabilities, or before
    the step's first RequestPool (a step creates one network at most), or that and before
    each RequestPool."""
    asked = {"path": f"/{SPACES}", "body": None}
    out: list[Record] = []
    pools = 0
    for call in calls:
        method = str(call["path"]).lstrip("/")
        if method == SPACES:
            continue
        if method == "IpamDriver.RequestPool":
            out += [asked] * ((spaces != AT_ACTIVATION and pools == 0) + (spaces == PER_POOL))
            pools += 1
        out.append(call)
        if method == "IpamDriver.GetCapabilities" and spaces == AT_ACTIVATION:
            out.append(asked)
    return out


def markdown() -> str:
    """The version table of docs/dockerd.md."""
    lines = [
        f"| | {' | '.join(COLUMNS)} | changed in |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for row in ROWS:
        cells = [row.at(version).cell for version in COLUMNS.values()]
        lines.append(f"| {row.label} | {' | '.join(cells)} | {row.changes()} |")
    return "\n".join(lines) + "\n"


def parse_table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The table of ``text`` whose header row starts with an empty cell: its header cells
    (after that one), and its rows by label, each a list of cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.replace(" ", "").startswith("||"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(_cells(line))
    header, _, *body = table
    return header[1:], {cells[0]: cells[1:] for cells in body}


def _cells(line: str) -> list[str]:
    # a | inside backticks would be part of a cell: no cell of ours has one
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


if __name__ == "__main__":
    print(markdown(), end="")
