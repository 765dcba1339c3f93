"""A run of the kit: which checks (`select()`), the handshake, then each check followed by
the cleanup of what it left (`run_checks()`), from a target's name (`check_target()`)."""

from __future__ import annotations

import ipaddress
import time
import traceback
from collections.abc import Iterable

from .checks import handshake
from .client import Client, resolve
from .kit import (
    CHECKS,
    DEFAULT_PREFIX,
    DEFAULT_SUBNETS,
    GROUPS,
    Check,
    Context,
    Failed,
    Report,
    Result,
    Skipped,
)
from .rules import DEFAULT_DOCKERD, check_version
from .sequences import session_check


def select(only: Iterable[str] | None = None, skip: Iterable[str] | None = None) -> list[Check]:
    """The checks of the groups (or checks, ``group/name``) ``only`` names, less those
    ``skip`` names. :raises ValueError: a name that is no group nor check."""
    known = {c.name for c in CHECKS} | set(GROUPS)
    for name in [*(only or ()), *(skip or ())]:
        if name not in known:
            raise ValueError(f"no check group {name!r}: the groups are {', '.join(GROUPS)}")
    wanted = set(only or ())

    def matches(c: Check, names: set[str]) -> bool:
        return c.group in names or c.name in names

    chosen = [c for c in CHECKS if not wanted or matches(c, wanted)]
    kept = [c for c in chosen if not matches(c, set(skip or ()))]
    return sorted(kept, key=lambda c: GROUPS.index(c.group))  # in the order they run


def run_checks(context: Context, target: str, chosen: list[Check]) -> Report:
    """Run ``chosen`` against the plugin, each followed by the cleanup of what it left;
    the handshake's checks first, as everything else depends on what they find."""
    report = Report(target, context.dockerd)
    start = time.monotonic()
    handshake(context)  # Activate and the capabilities, before any check
    order = sorted(chosen, key=lambda c: GROUPS.index(c.group))
    for each in order:
        if each.name == "hygiene/cleanup":  # what every check before left behind
            left = report.not_cleaned
            why = f"could not clean {len(left)}: " + "; ".join(left[:5]) if left else ""
            report.results.append(Result(each.name, "fail" if left else "pass", why))
            continue
        report.results.append(_run_one(context, each, report))
    report.seconds = time.monotonic() - start
    return report


def _run_one(context: Context, each: Check, report: Report) -> Result:
    context.calls = []
    began = time.monotonic()
    missing = [s for s in each.needs if s not in context.info.implements]
    unusable = [context.info.refused[s] for s in each.needs if s in context.info.refused]
    try:
        if not context.info.implements and each.group != "handshake":
            raise Skipped("the plugin implements neither NetworkDriver nor IpamDriver")
        if missing:
            raise Skipped(f"the plugin does not implement {', '.join(missing)}")
        if unusable and each.group != "handshake":
            raise Skipped(f"dockerd would not use the plugin: {unusable[0]}")
        each.run(context)
        result = Result(each.name, "pass")
    except Failed as exc:
        result = Result(each.name, "fail", str(exc))
    except Skipped as exc:
        result = Result(each.name, "skip", str(exc))
    except Exception as exc:  # a plugin's answer the check did not foresee: still a result
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result = Result(each.name, "fail", f"{type(exc).__name__}: {exc} (at {where.name})")
    result.calls, context.calls = context.calls, []  # the evidence, not the cleanup
    report.not_cleaned += context.ledger.cleanup(context.call)
    result.seconds = time.monotonic() - began
    return result


def check_target(
    target: str,
    *,
    dockerd: str = DEFAULT_DOCKERD,
    only: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    strict: bool = True,
    timeout: float = 5.0,
    network_prefix: str = DEFAULT_PREFIX,
    subnets: Iterable[str] = DEFAULT_SUBNETS,
    parallel: int = 8,
    session: str | None = None,
) -> Report:
    """Run the kit (see `fakedriver.conformance.check`)."""
    check_version(dockerd)
    if not (network_prefix and len(network_prefix) <= 32 and _hex(network_prefix)):
        raise ValueError(f"network prefix {network_prefix!r}: up to 32 lowercase hex digits")
    networks = [ipaddress.ip_network(s) for s in subnets]
    if len({n.version for n in networks}) != len(networks):
        raise ValueError("give at most one IPv4 and one IPv6 --subnet")
    chosen = select(only, skip)
    if session is not None:  # the handshake, the session, the cleanup
        chosen = [c for c in chosen if c.group in ("handshake", "hygiene")]
        at = len([c for c in chosen if c.group == "handshake"])
        chosen.insert(at, session_check(session))
    resolved = resolve(target)
    client = Client(resolved, timeout=timeout)
    context = Context(
        client,
        dockerd=dockerd,
        strict=strict,
        prefix=network_prefix,
        subnets=networks,
        parallel=parallel,
    )
    try:
        return run_checks(context, str(resolved), chosen)
    finally:
        client.close()


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
