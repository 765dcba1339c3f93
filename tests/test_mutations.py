"""Mutation: deliberately broken plugins, each caught by the check that names its defect,
and no check failing for a reason other than that defect.

Two kinds: ``tests/independent_plugin.py`` (a plugin written here without fakedriver:
it passes the kit, and fails it as the table says with each defect injected), and the
fake itself made wrong by a fault rule or a persona. Each row: the defect, the check
that names it, the checks that fail with it (each for that defect: its reason names one
of ``about``), as the issue asks ("no other check failing falsely")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.independent_plugin import DEFECTS, Served

from fakedriver import FakeNetDriver, serving
from fakedriver.conformance import Report, check

pytestmark = pytest.mark.socket  # the socket tier: the kit against plugins served on sockets

JOIN_CHECKS = {
    "answers/join",
    "answers/endpoint-info",
    "answers/teardown",
    "semantics/refuse-unknown-endpoint",
    "sequences/capture-20.10",
    "sequences/capture-28",
    "sequences/rollback-join",
}
IPAM_CHECKS = {
    "answers/request-address",
    "answers/ipam-error-dialect",
    "semantics/address-reuse",
    "semantics/addresses-in-pool",
    "semantics/parallel-request-address",
    "semantics/unique-addresses",
    "sequences/capture-20.10",
    "sequences/capture-28",
}


@dataclass(frozen=True)
class Mutation:
    defect: str
    named: str
    about: tuple[str, ...]
    also: frozenset[str] = field(default_factory=frozenset)

    @property
    def failing(self) -> set[str]:
        return {self.named, *self.also}


# fmt: off
MUTATIONS = [
    Mutation("missing_implements", "handshake/activate", ("Implements",)),
    Mutation("bad_scope", "handshake/network-capabilities", ("Local",)),
    Mutation("flaky_capabilities", "semantics/capabilities-idempotent", ("GetCapabilities",)),
    Mutation("mac_over_request", "answers/create-endpoint", ("MAC",)),
    Mutation("gateway_prefix", "answers/join", ("Gateway",), frozenset(JOIN_CHECKS)),
    Mutation("join_hang", "answers/join", ("Join", "no answer"), frozenset(JOIN_CHECKS)),
    Mutation("leave_500", "answers/teardown", ("Leave",),
             frozenset({"sequences/capture-20.10", "sequences/capture-28"})),
    Mutation("refuse_delete_joined", "sequences/rollback-join", ("DeleteEndpoint",)),
    Mutation("net_error_key", "answers/network-error-dialect", ("dialect",)),
    Mutation("ipam_err_key", "answers/ipam-error-dialect", ("dialect",)),
    Mutation("accept_unknown_network", "semantics/refuse-unknown-network", ("unknown network",)),
    Mutation("pool_bare", "answers/request-pool", ("RequestPool",),
             frozenset(IPAM_CHECKS | {"answers/request-pool"})),
    Mutation("bare_address", "answers/request-address", ("RequestAddress", "invalid CIDR"),
             frozenset(IPAM_CHECKS)),
    Mutation("duplicate_address", "semantics/unique-addresses",
             ("twice", "asked for address", "is not leased"),
             frozenset({"semantics/parallel-request-address", "sequences/capture-20.10",
                        "sequences/capture-28"})),
    Mutation("outside_pool", "semantics/addresses-in-pool",
             ("is not an address of pool", "asked for", "not leased"),
             frozenset({"answers/request-address", "semantics/address-reuse", "hygiene/cleanup",
                        "sequences/capture-20.10", "sequences/capture-28"})),
    Mutation("racy_allocator", "semantics/parallel-request-address", ("twice",)),
    Mutation("no_reuse", "semantics/address-reuse", ("RequestAddress",)),
]
# fmt: on


def _failures(report: Report) -> dict[str, str]:
    return {r.name: r.reason for r in report.failed}


def _held_to(mutation: Mutation, report: Report) -> None:
    failed = _failures(report)
    shown = "\n".join(f"{name}: {why[:300]}" for name, why in failed.items())
    assert mutation.named in failed, f"{mutation.defect} not caught by {mutation.named}:\n{shown}"
    assert set(failed) == mutation.failing, f"{mutation.defect}:\n{shown}"
    for name, why in failed.items():
        assert any(word in why for word in mutation.about), (
            f"{name} fails for another reason: {why}"
        )


def timeout_for(mutation: Mutation) -> float:
    """How long the kit waits for each answer: short where the defect is a call that
    never answers (the check must see the time-out), else long enough for a loaded
    machine (an answer later than the kit waits is a failure of another check)."""
    return 0.5 if "no answer" in mutation.about else 10.0


@pytest.fixture
def plugin_path(short_dir: Path) -> Iterator[str]:
    yield str(short_dir / "indep.sock")


def test_the_independent_plugin_passes_the_kit(plugin_path: str) -> None:
    served = Served(plugin_path)
    try:
        for dockerd in ("20.10", "28"):
            report = check(plugin_path, dockerd=dockerd)
            assert report.ok, "\n".join(r.line() for r in report.failed)
            assert report.not_cleaned == []
            assert not served.plugin.pools and not served.plugin.networks  # all undone
    finally:
        served.close()


def test_every_defect_is_a_mutation() -> None:
    assert sorted(m.defect for m in MUTATIONS) == sorted(DEFECTS)
    assert len(MUTATIONS) >= 12 and len({m.named for m in MUTATIONS}) >= 12


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.defect)
def test_the_independent_plugin_with_a_defect(mutation: Mutation, plugin_path: str) -> None:
    served = Served(plugin_path, frozenset({mutation.defect}))
    try:
        report = check(plugin_path, timeout=timeout_for(mutation))
    finally:
        served.close()
    _held_to(mutation, report)


# -- the fake, made wrong by a fault rule or its persona -------------------------------------


def _gateway_prefix(fake: FakeNetDriver) -> None:
    fake.fail("Join", kind="answer", answer={"Gateway": "10.0.0.1/24"})


def _no_implements(fake: FakeNetDriver) -> None:
    fake.fail("Plugin.Activate", kind="answer", answer={"Implements": []})


def _leave_500(fake: FakeNetDriver) -> None:
    fake.fail("Leave", status=500, message="boom")


def _join_hang(fake: FakeNetDriver) -> None:
    fake.fail("Join", kind="hang")


def _bare_address(fake: FakeNetDriver) -> None:
    fake.fail("RequestAddress", kind="answer", answer={"Address": "10.200.0.2"})


FAKES = [
    pytest.param(
        _gateway_prefix,
        Mutation("", "answers/join", ("Gateway",), frozenset(JOIN_CHECKS)),
        id="gateway-prefix",
    ),
    pytest.param(
        _no_implements, Mutation("", "handshake/activate", ("Implements",)), id="no-implements"
    ),
    pytest.param(
        _leave_500,
        Mutation(
            "",
            "answers/teardown",
            ("Leave",),
            frozenset({"sequences/capture-20.10", "sequences/capture-28"}),
        ),
        id="leave-500",
    ),
    pytest.param(
        _join_hang,
        Mutation("", "answers/join", ("Join", "no answer"), frozenset(JOIN_CHECKS)),
        id="join-hang",
    ),
    pytest.param(
        _bare_address,
        Mutation(
            "",
            "answers/request-address",
            ("invalid CIDR", "10.200.0.2"),
            frozenset(IPAM_CHECKS | {"hygiene/cleanup"}),
        ),
        id="bare-address",
    ),
]


@pytest.mark.parametrize(("make_wrong", "mutation"), FAKES)
def test_the_fake_made_wrong(make_wrong: object, mutation: Mutation) -> None:
    fake = FakeNetDriver()
    make_wrong(fake)  # type: ignore[operator]
    with serving(fake) as served:
        report = check(served.socket_path, timeout=timeout_for(mutation))
    _held_to(mutation, report)


def test_the_lenient_fake_is_caught_by_the_refusal_checks() -> None:
    """The persona ``strict=False`` accepts calls on unknown ids (as documented)."""
    with serving(FakeNetDriver(strict=False)) as served:
        report = check(served.socket_path)
    assert set(_failures(report)) == {
        "semantics/refuse-unknown-network",
        "semantics/refuse-unknown-endpoint",
        "semantics/refuse-unknown-pool",
    }
    assert all("was accepted" in why for why in _failures(report).values())
