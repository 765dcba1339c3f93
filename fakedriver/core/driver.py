"""The driver: the one place a call is served, and the one object that owns everything
a call touches.

A [`Driver`][fakedriver.Driver] is built whole from its persona, clock, journal bounds,
store and links, and nothing of it is replaced after. It owns the lock, the state, the
protocol models, the journal, the fault rules and the clock. `Driver.respond()` serves one
call with the fault rules applied and returns the [`Reply`][fakedriver.Reply] that every
transport renders in its own way; `Driver.handle()` serves it with no faults. Everything
else here (the fault and journal operations of the control API) runs under the same lock,
which nothing outside the driver takes.

With a `Store` (``--state FILE``), what a served call changed is committed before its
answer is made; when the commit fails, the store puts the state back as the database has
it, and the call answers ``state not saved: ...``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .audit import leaks
from .changes import Change
from .clock import Clock, VirtualClock
from .errors import DriverError, ShuttingDown, UnknownMethod
from .faults import Faults, Rule, RuleChanged
from .http import error_key
from .journal import Call, Journal
from .kinds import ANSWERED, Ending, Kind
from .methods import TABLE, Method
from .persona import Persona
from .ports import Links, Store, StoreError
from .reply import Outcome, Reply
from .request import Request
from .state import State, Violation

Listener = Callable[[Call], None]
_CLOSED = "the server is shutting down: call not served"


class Driver:
    """A fake of a Docker remote network driver (and IPAM driver): it serves every call of
    both protocols on its state, one at a time under its own lock, with its fault rules
    applied, and journals each. [`FakeNetDriver`][fakedriver.FakeNetDriver] is a driver
    with the helpers of a test; ``fakedriver serve`` serves one on a socket.

    :param persona: what the driver announces and how it behaves; see
        [`Persona`][fakedriver.Persona].
    :param links: makes a host interface per Join (see ``fakedriver serve --links``).
    :param clock: what latency and hangs wait on: virtual (no waiting) unless given.
    :param store: where each call's changes are committed (``fakedriver serve --state``);
        it holds ``state`` already (see ``Store.load()``). `close()` closes it.
    :param state: what the driver knows to begin with (default: nothing).
    :param journal_size: keep only the most recent calls, at most this many (default: all).
    :param journal_bytes: keep only the most recent calls, at most this many bytes of
        memory (default: all; see [`Journal`][fakedriver.Journal]).
    :param options: shortcuts for persona fields, e.g. ``FakeNetDriver(scope="global")``.
    """

    def __init__(
        self,
        persona: Persona | None = None,
        *,
        links: Links | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
        state: State | None = None,
        journal_size: int | None = None,
        journal_bytes: int | None = None,
        **options: Any,
    ) -> None:
        if persona is None:  # one construction, one validation (fixtures make many fakes)
            persona = Persona(**options)
        elif options:
            persona = dataclasses.replace(persona, **options)
        self.persona = persona
        """What the driver announces and how it behaves."""
        self.links = links
        """What makes host interfaces for joins (``None`` in-process: none are made)."""
        self.clock = clock or VirtualClock()
        """The clock latency and hangs run on."""
        self.calls = Journal(maxlen=journal_size, max_bytes=journal_bytes)
        """The journal of every call, with assertion helpers."""
        #: the fault rules, made when first asked for (see `faults`): a fake whose test
        #: sets none is not a reference cycle (the rules read the journal back)
        self._faults: Faults | None = None
        self.state = state if state is not None else State()
        """What the driver knows: networks, endpoints, joins, pools, addresses, ..."""
        self.store = store
        """Where each call's changes are committed (``None``: memory only)."""
        self.listeners: list[Listener] = []
        """Called with each [`Call`][fakedriver.Call] once it is journaled, under the
        driver's lock."""
        self.changes: Sequence[Change] = ()
        """What the call being journaled changed, for the listeners (empty for a call that
        was not served)."""
        self.closed = False
        """Set by `close()`: every call from then on is refused."""
        self._lock = threading.RLock()
        #: the seeded RNG, made on the first call that needs it (seeding one costs about
        #: as much as the rest of a driver, and a cluster makes one driver per node)
        self._seeded: random.Random | None = None

    @property
    def faults(self) -> Faults:
        """The fault rules, phase and seed."""
        faults = self._faults
        if faults is None:
            with self._lock:  # one set of rules, whichever thread asks first
                if self._faults is None:
                    self._faults = Faults(self.persona.seed, self.clock, lambda: self.calls)
                faults = self._faults
        return faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = faults

    def _rng(self) -> random.Random:
        """The RNG seeded with the persona's seed (made now if it is not yet)."""
        if self._seeded is None:
            self._seeded = random.Random(self.persona.seed)
        return self._seeded

    @property
    def violations(self) -> list[Violation]:
        """Lifecycle violations recorded in non-strict mode, oldest first."""
        return self.state.violations

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all state, calls, violations and fault rules (releasing held calls), and
        reseed; the persona stays. With a store, the empty state is saved first: if it
        cannot be, nothing is forgotten."""
        with self._lock:
            self.restore(State())
            self.calls = self.calls.empty()  # a bounded journal stays bounded
            if self._faults is not None:
                self._faults.clear()
            self._faults = None  # a new one, reseeded, when next asked for

    def restore(self, state: State) -> None:
        """Take ``state`` (e.g. loaded from a file) as the driver's state, and reseed. With
        a store, the database is made to hold it first (`StoreError` if it cannot)."""
        with self._lock:
            if self.closed:
                raise ShuttingDown(_CLOSED)
            if self.store is not None:
                self.store.replace(state)
            self.state = state
            self._seeded = None  # reseeded when next needed

    def close(self) -> None:
        """Stop serving, for good: under the lock (a call being served finishes, and is
        saved, first) detach the store and close it. Every call after is refused 503,
        never served into memory alone. Whoever made the driver with a store calls this
        once the connections have stopped."""
        with self._lock:
            self.closed = True
            store, self.store = self.store, None
            if store is not None:
                store.close()

    # -- serving ----------------------------------------------------------------------------
    @property
    def may_block(self) -> bool:
        """Whether serving a call may wait: a timed rule (latency, a hold, a hang) could fire
        (see `Faults.may_block()`); other rules, and none, never make a call wait."""
        faults = self._faults
        return faults is not None and bool(faults.rules) and faults.may_block()

    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Serve one call, with no faults: ``path`` such as ``/NetworkDriver.Join``,
        ``body`` the raw request. Returns the HTTP status and the answer object; never
        raises for bad input."""
        with self._lock:
            call = self._append(self._run(Request.read(path, body)))
        return call.status, call.response

    def respond(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> Reply:
        """Serve one call with the fault rules applied: decode its body (once), select the
        rules that fire, wait as the timed ones say, then serve (or not) and shape the
        reply as the deciding one says (see ``kinds``).

        :param path: ``/NetworkDriver.Join`` (the leading slash is optional).
        :param body: the raw request.
        :param timeout: how long the client waits for an answer (for ``hang``/``latency``, and
            ``hold``: a held call waits for its release that long in real time at most).
        :param gone: tells whether the client has gone away (for ``hang``/``hold``). With
            neither, a ``hang`` that holds the call is `Outcome.NEVER_ANSWERED`.
        """
        request = Request.read(path, body)  # the one decode of the body
        with self._lock:
            faults = self._faults
            fired = []
            if faults is not None and faults.rules:
                fired = faults.select(request.method, request.fields)
            if not fired:
                return self._decide(request, ANSWERED)
        return self._fired(request, fired, timeout, gone)

    def respond_now(self, path: str, body: bytes) -> Reply | None:
        """`respond()` for a caller that must not wait (an event loop): ``None``, with
        nothing selected, journaled or changed, when a timed rule on the call's method
        could make it wait (see `Faults.may_block()`); the caller then serves it through
        `respond()` where waiting is allowed. The check and the call are one step under
        the driver's lock, so a rule added meanwhile from another thread is seen by one or
        the other."""
        with self._lock:  # (the body is decoded only when it is served here: once)
            faults = self._faults
            if faults is None or not faults.rules:
                return self._decide(Request.read(path, body), ANSWERED)
            if faults.may_block(path.lstrip("/")):  # a timed rule on this method
                return None
            request = Request.read(path, body)
            fired = faults.select(request.method, request.fields)
            if not fired:
                return self._decide(request, ANSWERED)
            return self._fired(request, fired, None, None)

    def _fired(
        self,
        request: Request,
        fired: list[Rule],
        timeout: float | None,
        gone: Callable[[], bool] | None,
    ) -> Reply:
        """Serve ``request`` as the ``fired`` rules say: wait as the timed ones say, then
        shape the reply as the deciding one says."""
        names = " + ".join(self.faults.describe(rule) for rule in fired)
        ending = self._wait([rule for rule in fired if rule.effect.timed], timeout, gone)
        decider = next((rule for rule in fired if not rule.effect.timed), None)
        kind = ending or (decider.effect if decider is not None else ANSWERED)
        with self._lock:
            return self._decide(request, kind, decider, names)

    def _wait(
        self, timed: list[Rule], timeout: float | None, gone: Callable[[], bool] | None
    ) -> Ending | None:
        """Wait as the ``timed`` rules say (latency first, then each hold); ``None`` when the
        call goes on to be answered, else how it ends."""
        delay = sum(rule.effect.delay(rule) for rule in timed)
        if timeout is not None and delay > timeout:  # served, but the client stops waiting
            self.clock.sleep(timeout)
            return Ending(Outcome.TIMED_OUT, f"client gave up after {timeout} s (served)", True)
        if delay:
            self.clock.sleep(delay)
        for rule in timed:
            ending = rule.effect.wait(rule, self.clock, timeout, gone, delay)
            if ending is not None:
                return ending
        return None

    def _decide(
        self,
        request: Request,
        kind: Kind | Ending,
        rule: Rule | None = None,
        fault: str | None = None,
    ) -> Reply:
        """Serve ``request`` if ``kind`` says it is served, shape its reply as ``kind`` says
        and journal it (the caller holds the lock)."""
        if kind.served:
            call = self._run(request, fault)
        else:
            call = self._entry(request.method, request.fields, {}, 0, None, fault=fault)
        reply = kind.shape(rule, call)
        self._append(reply.call)
        return reply

    def _run(self, incoming: Request, fault: str | None = None) -> Call:
        """Serve ``incoming`` on a fresh model (the caller holds the lock); not journaled."""
        method, index = incoming.method, self.calls.next_index
        request: dict[str, Any] | None = None
        found: tuple[str, ...] = ()
        notes: tuple[str, ...] = ()
        changes: list[Change] = []
        try:
            if self.closed:
                raise ShuttingDown(_CLOSED)
            if self.store is not None and self.store.broken is not None:
                raise StoreError(self.store.broken)  # memory may not be what was saved
            row = self._route(method)
            request = incoming.body(no_arguments=row.no_arguments)
            links = self.links if row.subsystem == "NetworkDriver" else None
            model = row.model(self.state, self.persona, self._rng(), index, links)
            self.state.log = changes
            try:
                answer = row.handler(model, request)
                found = tuple(str(finding) for finding in model.findings)
                for text in found:
                    self.state.record_violation(Violation(index, method, text))
            finally:
                self.state.log = None
            notes = tuple(model.notes)
            for change in changes:  # what a change did beyond the call's name
                if note := change.note:
                    notes += (note,)
            status, error = 200, None
        except DriverError as exc:
            status, error, answer = exc.status, exc.message, {error_key(method): exc.message}
        except StoreError as exc:  # a checkpoint within the call (see server.veth.Checkpointed)
            status, error = 500, f"state not saved: {exc}"
            answer = {error_key(method): error}
        except Exception as exc:  # a bug in the fake: still answer in the protocol
            status, error = 500, f"internal error in fakedriver: {exc!r}"
            answer = {error_key(method): error}
        self.changes = changes
        if self.store is not None and changes:
            try:  # a refused call may have changed (and put back) a record: commit it too
                self.store.commit(self.state, changes)
            except BaseException as exc:  # whatever failed, nothing of the call stays in memory
                with contextlib.suppress(StoreError):  # else the store is broken from now on
                    self.store.revert(self.state, changes)
                if not isinstance(exc, StoreError):  # KeyboardInterrupt, SystemExit
                    raise
                status, error, found, notes = 500, f"state not saved: {exc}", (), ()
                answer = {error_key(method): error}
        return self._entry(method, request, answer, status, error, found, fault, notes)

    def _route(self, method: str) -> Method:
        row = TABLE.get(method)
        if row is None:
            raise UnknownMethod(f"unknown method {method}")
        if (row.subsystem == "NetworkDriver" and not self.persona.network) or (
            row.subsystem == "IpamDriver" and not self.persona.ipam
        ):
            raise UnknownMethod(f"this plugin does not implement {row.subsystem}")
        return row

    def _entry(
        self,
        method: str,
        request: dict[str, Any] | None,
        answer: dict[str, Any],
        status: int,
        error: str | None,
        violations: tuple[str, ...] = (),
        fault: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> Call:
        index, now = self.calls.next_index, time.time()
        return Call(index, method, request, answer, status, error, violations, fault, now, notes)

    def _append(self, call: Call) -> Call:
        """Journal ``call`` and tell the listeners (the caller holds the lock)."""
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)
        self.changes = ()
        return call

    # -- faults and inspection, under the lock ------------------------------------------------
    def add_rules(self, rules: Iterable[Rule], *, first: bool = False) -> range:
        """Add ``rules`` after the existing ones (before them, in order, with ``first``:
        they decide a call ahead of every other rule), all together; their places in
        [`faults.rules`][fakedriver.Faults]."""
        rules = list(rules)
        with self._lock:
            if first:
                self.faults.rules[:0] = rules
                return range(len(rules))
            start = len(self.faults.rules)
            for rule in rules:
                self.faults.add(rule)
            return range(start, start + len(rules))

    def remove_rule(self, rule: Rule) -> None:
        """Take ``rule`` out (if it is in) and release the calls it holds."""
        with self._lock:
            if rule in self.faults.rules:
                self.faults.rules.remove(rule)
        rule.release()

    def remove_rule_at(self, index: int, name: str | None = None) -> Rule:
        """Take out the rule at ``index`` (its place in [`faults.rules`][fakedriver.Faults],
        from 0), release the calls it holds, and return it. By place: an equal rule
        elsewhere in the list stays.

        :param name: remove it only if it is still named so (whoever listed the rules
            before someone else changed them names another).
        :raises IndexError: there is no rule ``index``.
        :raises RuleChanged: rule ``index`` is not named ``name``; nothing is removed.
        """
        with self._lock:
            rules = self.faults.rules
            if not 0 <= index < len(rules):
                raise IndexError(f"no fault rule {index}: there are {len(rules)}")
            rule = rules[index]
            if name is not None and rule.name != name:
                why = f"rule {index} is {rule.name!r} now, not {name!r}: list the rules again"
                raise RuleChanged(why)
            del rules[index]
        rule.release()
        return rule

    def clear_rules(self) -> None:
        """Remove every rule, releasing the calls they hold."""
        with self._lock:
            self.faults.clear()

    def release_rules(self) -> None:
        """Release every held or hung call (the rules stay)."""
        with self._lock:
            rules = list(self.faults.rules)
        for rule in rules:
            rule.release()

    def set_phase(self, phase: str | None) -> None:
        """Set the fault phase (``None``: none), which rules with a ``phase`` wait for."""
        with self._lock:
            self.faults.phase = phase

    def fault_report(self) -> dict[str, Any]:
        """The rules (with how often each fired), the phase and the seed."""
        with self._lock:
            rules = [rule.to_dict() for rule in self.faults.rules]
            return {"faults": rules, "phase": self.faults.phase, "seed": self.faults.seed}

    def calls_since(self, index: int) -> tuple[list[Call], int, int]:
        """The calls held from absolute ``index`` on, with the index of the oldest call
        held and the index the next call gets, read together (a bounded journal drops its
        oldest calls)."""
        with self._lock:
            return self.calls.since(index), self.calls.first, self.calls.next_index

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data (see [`State.snapshot()`][fakedriver.State.snapshot])."""
        with self._lock:
            return self.state.snapshot()

    def leaks(self) -> list[str]:
        """What is still held (networks, endpoints, joins, allocations, pools, addresses)
        and every recorded violation, each with the call that made it."""
        with self._lock:
            return leaks(self.state, self.calls)
