"""Fault injection in the plugin protocol's own terms.

A [`Rule`][fakedriver.Rule] says *what* goes wrong (its ``kind``) and *when* (method, request
fields, nth call, first N calls, every k-th, a seeded probability, a named phase). Rules are checked
in order for every call; every firing ``latency`` adds its delay, a firing ``hold``/``hang`` holds
the call, and the first firing rule of any other kind decides the answer. The journal entry of the
call names the rules that fired.
"""

from __future__ import annotations

import difflib
import json
import random
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

from .clock import Clock
from .journal import Call, mismatches
from .kinds import KIND, Kind
from .methods import TABLE, resolve

#: kind -> what it does, as Docker's client sees it (protocol.md §1.4, §8); each kind is an
#: object of ``kinds.TABLE``, which says what it does to a call.
KINDS = {name: kind.description for name, kind in KIND.items()}
#: Kinds that change only the timing; any number of them apply to one call.
TIMING = frozenset(name for name, kind in KIND.items() if kind.timed)
#: The longest latency a rule may ask for (a day): beyond, a call could never be answered.
MAX_SECONDS = 86400.0


#: The statuses from 200 up whose answer has no body (RFC 9110): a ``status`` fault sends
#: one, so they are refused, as is every 1xx.
NO_BODY = frozenset({204, 304})

#: The fields that belong to one kind only: giving one to a rule of another kind is refused.
OWN_FIELDS = {field: name for name, kind in KIND.items() for field in kind.fields}
#: Each field a rule takes from its caller, and the type it must have.
TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,),
    "kind": (str,),
    "message": (str,),
    "status": (int, type(None)),
    "body": (str, type(None)),
    "seconds": (int, float),
    "answer": (dict, type(None)),
    "match": (dict,),
    "nth": (int, type(None)),
    "times": (int, type(None)),
    "after": (int, type(None)),
    "every": (int, type(None)),
    "probability": (int, float, type(None)),
    "phase": (str, type(None)),
    "name": (str,),
}


def _type_names(kinds: tuple[type, ...]) -> str:
    return " or ".join("None" if kind is type(None) else kind.__name__ for kind in kinds)


#: Every request field of any method: what a ``match`` of a rule on ``"*"`` may name.
ANY_FIELD = tuple(sorted({name for row in TABLE.values() for name in row.fields}))


def _check_match(method: str, match: dict[str, Any]) -> None:
    """Refuse a ``match`` key that no call of ``method`` has (the rule could never fire),
    naming the fields there are and the nearest one."""
    known = ANY_FIELD if method == "*" else TABLE[method].fields
    for key in match:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        where = "any method" if method == "*" else method
        fields = ", ".join(known) if known else "none: it takes no arguments"
        raise ValueError(
            f"match names {key!r}, which is not a request field of {where}{hint} "
            f"(its fields: {fields})"
        )


@dataclass
class Rule:
    """One fault and its schedule. All the given conditions must hold for it to fire.

    The kind is inferred when it is not given: ``"status"`` when a ``status`` is, else
    ``"error"``. A field that belongs to another kind (``status`` or ``body`` on anything
    but a ``status`` rule, ``seconds`` on anything but ``latency``, ``answer`` on anything
    but ``answer``) is refused, as is a field of the wrong type (`TypeError`, naming
    the field and the type it takes).

    :param method: ``"Join"``, ``"IpamDriver.RequestPool"`` or ``"*"`` for every call.
    :param kind: one of [`KINDS`][fakedriver.KINDS]; ``""`` (the default): inferred, as above.
    :param message: the error message the fault answers (``error``, ``status``,
        ``wrong_key``, ``lost_reply``).
    :param status: the HTTP status of a ``status`` rule (default 500): from 200 to 599,
        other than 204 and 304, as the answer has a body.
    :param body: the raw body of a ``status`` rule, instead of ``{"Err": message}``.
    :param seconds: the delay of a ``latency`` rule.
    :param answer: what an ``answer`` rule merges into the driver's answer.
    :param match: request fields the call must match (as in the journal helpers); a field
        the method's request does not have (any method's, for ``"*"``) is refused.
    :param nth: fire on the nth matching call only (from 1).
    :param times: fire on the first ``times`` matching calls, then recover.
    :param after: let the first ``after`` matching calls through, then fire.
    :param every: fire on every ``every``-th matching call.
    :param probability: fire with this probability, from the driver's seeded RNG.
    :param phase: fire only while the driver's fault phase is this name.
    :param name: what the journal shows in ``call.fault`` (default: ``"<kind> on <method>"``).
    """

    method: str = "*"
    kind: str = ""
    message: str = "injected fault"
    status: int | None = None
    body: str | None = None
    seconds: float = 0.0
    answer: dict[str, Any] | None = None
    match: dict[str, Any] = field(default_factory=dict)
    nth: int | None = None
    times: int | None = None
    after: int | None = None
    every: int | None = None
    probability: float | None = None
    phase: str | None = None
    name: str = ""
    #: matching calls seen, and how many times the rule fired
    seen: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self._check_types()
        self.kind = self.kind or ("status" if self.status is not None else "error")
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(KINDS)}")
        for key, owner in OWN_FIELDS.items():
            unset = 0 if key == "seconds" else None
            if self.kind != owner and getattr(self, key) != unset:
                raise ValueError(
                    f"{key}= is for {owner!r} rules, not {self.kind!r} ones: a "
                    f"{self.kind!r} rule would ignore it (drop the kind, or the {key})"
                )
        if self.method != "*":
            self.method = resolve(self.method)
        _check_match(self.method, self.match)
        for key, least in (("nth", 1), ("times", 1), ("every", 1), ("after", 0)):
            value = getattr(self, key)
            if value is not None and value < least:
                raise ValueError(f"{key} must be a whole number from {least}, not {value!r}")
        if self.probability is not None and not 0 <= self.probability <= 1:  # NaN too
            raise ValueError(f"probability must be between 0 and 1, not {self.probability}")
        if self.kind == "status":
            self.status = 500 if self.status is None else self.status
            if not 200 <= self.status <= 599 or self.status in NO_BODY:
                raise ValueError(
                    "status must be from 200 to 599, other than 204 and 304 (a 1xx, 204 or "
                    f"304 answer has no body, and the fault sends one), not {self.status}"
                )
        self.name = self.name or f"{self.kind} on {self.method}"
        self._release = threading.Event()
        self._waiting = threading.Semaphore(0)

    def _check_types(self) -> None:
        for key, kinds in TYPES.items():
            value = getattr(self, key)
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise TypeError(
                    f"{key} must be {_type_names(kinds)}, not {type(value).__name__} {value!r}"
                )
        if not 0 <= self.seconds <= MAX_SECONDS:  # NaN and infinity fail both
            raise ValueError(f"seconds must be from 0 to {MAX_SECONDS}, not {self.seconds}")
        try:  # it is sent as it is: JSON, with no NaN or infinity (a TOML file may have them)
            json.dumps(self.answer, allow_nan=False)
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValueError(f"answer must be JSON: {exc}") from None

    @property
    def effect(self) -> Kind:
        """What the rule's kind does to a call (its object in ``kinds.TABLE``)."""
        return KIND[self.kind]

    def applies(self, method: str, request: dict[str, Any] | None, phase: str | None) -> bool:
        """Whether a call of ``method`` with ``request``, in ``phase``, is one this rule watches."""
        if self.method not in ("*", method) or (self.phase is not None and self.phase != phase):
            return False
        return not (self.match and mismatches(request, self.match))

    def fires(self, rng: random.Random) -> bool:
        """Count a matching call and say whether the rule fires on it."""
        self.seen += 1
        if self.nth is not None and self.seen != self.nth:
            return False
        if self.after is not None and self.seen <= self.after:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.every is not None and self.seen % self.every:
            return False
        if self.probability is not None and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    @property
    def spent(self) -> bool:
        """Whether its schedule lets it fire no more: its ``nth`` call is past, or it fired
        its ``times``."""
        if self.nth is not None and self.seen >= self.nth:
            return True
        return self.times is not None and self.fired >= self.times

    # -- holding ------------------------------------------------------------------------
    @property
    def released(self) -> bool:
        """Whether [`release()`][fakedriver.Rule.release] was called: held and hung calls go on."""
        return self._release.is_set()

    def release(self) -> None:
        """Let held (and hung) calls go on, now and from now on."""
        self._release.set()

    def wait_held(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait (in real time) until ``count`` calls are held by this rule."""
        return all(self._waiting.acquire(timeout=timeout) for _ in range(count))

    def hold(self, gone: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Block the calling request; True once released, False if the client went away
        or ``timeout`` seconds (real time; ``None``: no limit) passed first."""
        self._waiting.release()
        if gone is None:
            return self._release.wait(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._release.wait(0.02):
            if gone() or (deadline is not None and time.monotonic() >= deadline):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """The rule as the control API lists it: the fields that are set, and its counts."""
        data = asdict(self)
        return {key: value for key, value in data.items() if value not in (None, {}, "")}


class RuleChanged(LookupError):
    """The rule at a place in the list is not the one named: the rules changed since whoever
    names it read them (see `Driver.remove_rule_at()`)."""


class Faults:
    """The fault rules of one driver, with the seeded RNG and the current phase.

    :param calls: gives the driver's journal, where
        [`assert_all_fired()`][fakedriver.Faults.assert_all_fired] looks for the call nearest to an
        idle rule (none: it names no call).
    """

    def __init__(
        self, seed: int, clock: Clock, calls: Callable[[], Iterable[Call]] | None = None
    ) -> None:
        self.seed = seed
        self.clock = clock
        self._calls = calls or (lambda: ())
        self.rules: list[Rule] = []
        self.phase: str | None = None
        self._seeded: random.Random | None = None  # made by the first rule that needs it

    def _rng(self) -> random.Random:
        """The RNG seeded with `seed` (made now if it is not yet)."""
        if self._seeded is None:
            self._seeded = random.Random(self.seed)
        return self._seeded

    def add(self, rule: Rule | None = None, **fields: Any) -> Rule:
        """Add ``rule`` (or ``Rule(**fields)``) after the existing ones; return it."""
        rule = rule or Rule(**fields)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (releasing the calls they hold), the phase, and reseed."""
        for rule in self.rules:
            rule.release()
        self.rules = []
        self.phase = None
        self._seeded = None  # reseeded when next needed

    def load(self, path: str) -> list[Rule]:
        """Add the rules of a TOML scenario file (its ``seed`` and ``phase`` too)."""
        rules, seed, phase = load_scenario(path)
        if seed is not None:
            self.seed, self._seeded = int(seed), None
        if phase is not None:
            self.phase = str(phase)
        self.rules.extend(rules)
        return rules

    def assert_all_fired(self) -> None:
        """Fail (``AssertionError``) naming every rule that never fired: a fault the test
        meant to inject but that no call met (a wrong method, ``match`` or phase). Each
        is shown with its ``match`` and the journaled call of its method nearest to it,
        or that no call of its method came at all."""
        __tracebackhide__ = True
        idle = [rule for rule in self.rules if not rule.fired]
        if idle:
            lines = "".join(
                f"\n  {self.describe(rule)}: {rule.seen} matching call(s), never fired"
                f"{self._nearest(rule)}"
                for rule in idle
            )
            raise AssertionError(f"{len(idle)} fault rule(s) never fired:{lines}")

    def _nearest(self, rule: Rule) -> str:
        """What [`assert_all_fired()`][fakedriver.Faults.assert_all_fired] adds for an idle rule:
        its ``match`` and the call
        of its method differing from it in the fewest fields."""
        calls = [call for call in self._calls() if rule.method in ("*", call.method)]
        match = f"; match {rule.match!r}" if rule.match else ""
        if not calls:
            return f"{match}; no call {'' if rule.method == '*' else f'of {rule.method} '}at all"
        if not rule.match:
            return ""  # its calls came: the schedule or the phase kept it from firing
        nearest = min(calls, key=lambda call: len(mismatches(call.request, rule.match)))
        problems = "; ".join(mismatches(nearest.request, rule.match)) or "its request matched"
        return f"{match}; nearest miss: #{nearest.index} {nearest.method}: {problems}"

    def describe(self, rule: Rule) -> str:
        """The rule's name as journaled; a random rule carries the seed that drew it."""
        if rule.probability is None:
            return rule.name
        return f"{rule.name} (p={rule.probability}, seed {self.seed})"

    def may_block(self, method: str | None = None) -> bool:
        """Whether a call (of ``method``, when given) may wait now: a timed rule (latency, a
        hold, a hang) on it could fire, in the current phase, with its schedule not spent.
        A rule's ``match`` is not read (it could be met). Any other rule only shapes the
        answer, which never waits."""
        return any(
            rule.effect.timed
            and not rule.spent
            and (rule.phase is None or rule.phase == self.phase)
            and (method is None or rule.method in ("*", method))
            for rule in self.rules
        )

    def select(self, method: str, request: dict[str, Any] | None) -> list[Rule]:
        """The rules firing on this call: every timing rule, then at most one outcome."""
        fired: list[Rule] = []
        outcome = False
        for rule in self.rules:
            if not rule.applies(method, request, self.phase):
                continue
            timed = rule.effect.timed
            if outcome and not timed:
                rule.seen += 1  # the call counts for its schedule; another rule decided it
                continue
            if rule.fires(self._rng()):
                fired.append(rule)
                outcome = outcome or not timed
        return fired


_SETTABLE = {f.name for f in dataclass_fields(Rule)} - {"seen", "fired"}


def rule_from_dict(data: Any) -> Rule:
    """A rule from a scenario file's ``[[fault]]`` table or a control API body."""
    if not isinstance(data, dict):
        raise ValueError(f"a fault must be an object, not {type(data).__name__}")
    unknown = set(data) - _SETTABLE
    if unknown:
        raise ValueError(f"unknown fault field(s) {sorted(unknown)}; known: {sorted(_SETTABLE)}")
    return Rule(**data)  # the kind, when not given, is inferred there


def load_scenario(path: str) -> tuple[list[Rule], int | None, str | None]:
    """Read a TOML scenario file: ``[[fault]]`` tables, and optional top-level ``seed`` (for
    the probabilities) and ``phase``. Errors name the file."""
    try:
        with open(path, "rb") as source:
            data = tomllib.load(source)
        rules = [rule_from_dict(item) for item in data.get("fault", [])]
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"fault scenario {path}: {exc}") from exc
    unknown = set(data) - {"fault", "seed", "phase"}
    if unknown:
        raise ValueError(f"fault scenario {path}: unknown key(s) {sorted(unknown)}")
    return rules, data.get("seed"), data.get("phase")
