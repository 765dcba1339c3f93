"""The kit in a plugin author's pytest suite: one test per check, in one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .kit import GROUPS, Report
from .run import select


def pytest_suite(target: str | Callable[[], str], **options: Any) -> Callable[[str], None]:
    """A pytest test function, parametrized with one test per check of the kit, that runs
    the kit once against ``target`` (or what calling it returns, at the first test) and
    passes, fails or skips as each check did. In a test module::

        from fakedriver.conformance import pytest_suite

        test_my_plugin = pytest_suite("/run/docker/plugins/mydriver.sock")

    ``options`` are those of [`check()`][fakedriver.conformance.check] (``dockerd``,
    ``only``, ``skip``, ``strict``, ``timeout``, ...). Needs pytest (the ``pytest``
    extra)."""
    import pytest

    from .run import check_target

    chosen = [c.name for c in select(options.get("only"), options.get("skip"))]
    if options.get("session"):
        chosen = [n for n in chosen if n.startswith(("handshake/", "hygiene/"))]
        chosen.insert(len([n for n in chosen if n.startswith("handshake/")]), "sequences/session")
    chosen.sort(key=lambda name: GROUPS.index(name.partition("/")[0]))
    reports: list[Report] = []

    @pytest.mark.parametrize("conformance_check", chosen)
    def test_conformance(conformance_check: str) -> None:
        __tracebackhide__ = True
        if not reports:
            reports.append(check_target(target() if callable(target) else target, **options))
        result = reports[0].result(conformance_check)
        if result.outcome == "skip":
            pytest.skip(result.reason)
        if result.outcome == "fail":
            pytest.fail(result.line(), pytrace=False)

    return test_conformance
