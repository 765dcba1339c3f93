"""The conformance kit for Docker network and IPAM plugins (``fakedriver check``), the
rules of what dockerd accepts (`rules`), sessions and their replay (``fakedriver check
--session``, `replay()`); the recorder (``fakedriver record``) is ``recorder.py``,
loaded by the command alone.

    report = fakedriver.conformance.check("/run/docker/plugins/mydriver.sock")
    assert report.ok, "\\n".join(r.line() for r in report.failed)
"""

from __future__ import annotations

from collections.abc import Iterable

from .client import Exchange, Target, TargetError, resolve
from .kit import CHECKS, DEFAULT_PREFIX, DEFAULT_SUBNETS, GROUPS, Check, Report, Result
from .rules import DEFAULT_DOCKERD, VERSIONS, dockerd_rejects
from .run import check_target as _check_target
from .run import select
from .session import Replay, ReplayError, SessionError, load, replay
from .suite import pytest_suite

__all__ = [
    "CHECKS",
    "DEFAULT_DOCKERD",
    "GROUPS",
    "VERSIONS",
    "Check",
    "Exchange",
    "Replay",
    "ReplayError",
    "Report",
    "Result",
    "SessionError",
    "Target",
    "TargetError",
    "check",
    "dockerd_rejects",
    "load",
    "pytest_suite",
    "replay",
    "resolve",
    "select",
]


def check(
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
    """Run the conformance kit against the plugin at ``target`` and return its
    [`Report`][fakedriver.conformance.Report] (``report.ok``: nothing failed).

    :param target: a unix socket path, an ``http://`` URL, or a plugin name, found as
        dockerd finds it (`resolve()`).
    :param dockerd: whose rules judge the answers: ``"28"`` (default) or ``"20.10"``.
    :param only: run only these groups (``handshake``, ``answers``, ``sequences``,
        ``semantics``, ``hygiene``) or checks (``group/name``).
    :param skip: leave out these groups or checks.
    :param strict: calls on unknown networks, endpoints and pools must be refused
        (``False``: accepting them passes too).
    :param timeout: the seconds each call may take; a plugin that does not answer in
        time fails that check.
    :param network_prefix: the hex digits every NetworkID and EndpointID of the run
        starts with.
    :param subnets: the IPv4 and IPv6 networks every subnet of the run is taken from.
    :param parallel: how many calls the parallel checks make at once.
    :param session: replay this session file (a recording, or a capture) instead of the
        kit's sequences: the handshake, the session, the cleanup.
    :raises TargetError: the target cannot be found.
    :raises ValueError: an option out of range, a group that does not exist.
    """
    return _check_target(
        target,
        dockerd=dockerd,
        only=only,
        skip=skip,
        strict=strict,
        timeout=timeout,
        network_prefix=network_prefix,
        subnets=subnets,
        parallel=parallel,
        session=session,
    )
