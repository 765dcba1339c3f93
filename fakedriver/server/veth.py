"""Real host interfaces for joins (``fakedriver serve --links veth``).

Docker moves the interface named in Join's ``SrcName`` into the container and configures
on it the address the endpoint was created with. With `VethLinks` the driver makes
a veth pair per join (``fdv…`` for the container, ``fdp…`` left on the host) and
removes it on Leave. Without links Join answers an empty ``SrcName``.

A server killed while it makes a pair must not leave the pair behind: the driver records
the intent in `State.links` before the pair is made, `Checkpointed` has it
committed before ``ip link add`` runs, and `reconcile()`, at the next start, removes the
pairs no saved join owns and adopts the others.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.errors import DriverError
from ..core.ports import Links
from ..core.state import State

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

#: A character of an id that does not go into an interface name as it is: Linux refuses
#: ``/``, ``:`` and white space, takes ``%`` as a template (``%d``: a number of its
#: choosing), and counts a name's 15 characters in bytes. Each becomes ``_``.
_NOT_LITERAL = re.compile(r"[^A-Za-z0-9_.-]")


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


class VethLinks:
    """veth pairs made with iproute2's ``ip`` (needs root, as a real driver does)."""

    def __init__(self, run: Runner = _run) -> None:
        self.run = run

    @staticmethod
    def names(endpoint_id: str) -> tuple[str, str]:
        """The container-side and host-side names (15 ASCII characters at most, as Linux
        wants): the id's first 6 characters, for reading (each that Linux or ``ip`` would
        not take as it is made ``_``), and 6 of the whole id's hash, for telling apart ids
        that share a prefix."""
        head = _NOT_LITERAL.sub("_", endpoint_id[:6])
        tag = head + hashlib.sha256(endpoint_id.encode()).hexdigest()[:6]
        return f"fdv{tag}", f"fdp{tag}"

    def create(self, endpoint_id: str) -> str:
        """One ``ip`` run: the pair is made with its host end up (a single netlink request,
        so there is no half-made pair to clean up). A leftover of an earlier run with the
        same names is removed, and the pair made again."""
        inner, outer = self.names(endpoint_id)
        add = ("ip", "link", "add", outer, "up", "type", "veth", "peer", "name", inner)
        done = self.run(add)
        if done.returncode != 0 and "exists" in done.stderr:
            self.delete(endpoint_id)
            done = self.run(add)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise DriverError(f"failed to create veth pair {inner}/{outer}: {detail}")
        return inner

    def delete(self, endpoint_id: str) -> None:
        # Deleting either end removes both. The host end first: while joined, the other is
        # in the container's namespace, out of reach; after a crash it may be the one left.
        inner, outer = self.names(endpoint_id)
        for name in (outer, inner):
            if self.run(("ip", "link", "del", name)).returncode == 0:
                return


class Checkpointed:
    """``links`` with ``checkpoint(endpoint_id)`` called before each link is made:
    ``fakedriver serve --state`` commits the endpoint's link intent there, so the intent the
    driver recorded is on disk before the pair exists."""

    def __init__(self, links: Links, checkpoint: Callable[[str], None]) -> None:
        self.links, self.checkpoint = links, checkpoint

    def create(self, endpoint_id: str) -> str:
        self.checkpoint(endpoint_id)
        return self.links.create(endpoint_id)

    def delete(self, endpoint_id: str) -> None:
        self.links.delete(endpoint_id)


@dataclass(frozen=True)
class Reconciled:
    """What `reconcile()` did, by endpoint id."""

    removed: list[str]
    adopted: list[str]


def reconcile(state: State, links: Links) -> Reconciled:
    """Make the host agree with a state loaded at start: remove the link of every endpoint
    in ``state.links`` that no saved join owns (the server died between making the pair and
    saving the join, or between removing it and saving that), adopt the others. Only links
    this state recorded are touched: other servers' pairs on the host are none of its
    business."""
    removed, adopted = [], []
    for eid in sorted(state.links):
        endpoint = state.endpoints.get(eid)
        if endpoint is not None and endpoint.join is not None and endpoint.join.src_name:
            adopted.append(eid)
            continue
        links.delete(eid)
        state.drop_link(eid)
        removed.append(eid)
    return Reconciled(removed, adopted)
