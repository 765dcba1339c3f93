"""The call engine: the one place a call is served.

`Engine` owns the lock, the state, the protocol models, the journal, the fault
rules and the clock. `Engine.respond()` serves one call with the fault rules applied
and returns the [`Reply`][fakedriver.Reply] that every transport renders in its own way;
`Engine.serve()` serves it with no faults. Everything else here (the fault and journal
operations of the control API) runs under the same lock.

With a `Store` attached (``--state FILE``), what a served call
changed is committed before its answer is made; when the commit fails, the store puts the
state back as the database has it, and the call answers ``state not saved: ...``.
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
from .clock import Clock
from .errors import DriverError, ShuttingDown, UnknownMethod
from .faults import TIMING, Faults, Rule
from .http import encode, error_key
from .journal import Call, Journal
from .methods import TABLE, Method
from .persona import Persona
from .ports import Links, Store, StoreError
from .reply import SERVED, NeverAnswered, Reply, as_sent, refused, served
from .state import State, Violation
from .wire import decode, peek

Listener = Callable[[Call], None]
_CLOSED = "the server is shutting down: call not served"


class Engine:
    """Serves calls on one driver's state, one at a time, and journals each.

    :param persona: what the driver announces and how it behaves.
    :param links: makes host interfaces for joins (``None``: none).
    :param clock: what latency and hangs wait on.
    """

    def __init__(self, persona: Persona, links: Links | None, clock: Clock) -> None:
        self.persona = persona
        self.links = links
        self.clock = clock
        #: Called with each `Call` once it is journaled, under the lock.
        self.listeners: list[Listener] = []
        #: What the call being journaled changed (for the listeners; empty for a call that
        #: was not served).
        self.changes: Sequence[Change] = ()
        self.lock = threading.RLock()
        self.calls = Journal()
        self.faults = Faults(persona.seed, clock, lambda: self.calls)
        self.state = State()
        #: Where each call's changes are committed (``None``: memory only).
        self.store: Store | None = None
        #: Set by `close()`: every call from then on is refused.
        self.closed = False
        self._rng = random.Random(persona.seed)

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget state, journal and fault rules (releasing held calls), and reseed. With a
        store, the empty state is saved first: if it cannot be, nothing is forgotten."""
        with self.lock:
            self.restore(State())
            self.calls = self.calls.empty()  # a bounded journal stays bounded
            self.faults.clear()
            self.faults = Faults(self.persona.seed, self.clock, lambda: self.calls)

    def restore(self, state: State) -> None:
        """Take ``state`` (e.g. loaded from a file) as the driver's state, and reseed. With
        a store, the database is made to hold it first (`StoreError` if it cannot)."""
        with self.lock:
            if self.closed:
                raise ShuttingDown(_CLOSED)
            if self.store is not None:
                self.store.replace(state)
            self.state = state
            self._rng = random.Random(self.persona.seed)

    def attach(self, store: Store) -> None:
        """Commit every call's changes to ``store`` from now on; it holds `state`
        already (see `Store.load()` and `Store.replace()`)."""
        with self.lock:
            self.store = store

    def close(self) -> None:
        """Stop serving, for good: under the lock (a call being served finishes, and is
        saved, first) detach the store and close it. Every call after is refused 503,
        never served into memory alone. Whoever attached the store calls this once the
        connections have stopped."""
        with self.lock:
            self.closed = True
            store, self.store = self.store, None
            if store is not None:
                store.close()

    # -- serving ----------------------------------------------------------------------------
    def serve(self, method: str, body: bytes) -> Call:
        """Serve ``method`` (``"NetworkDriver.Join"``) with no faults; journal it."""
        with self.lock:
            return self._append(self._run(method, body))

    def respond(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> Reply:
        """Serve one call with the fault rules applied.

        :param path: ``/NetworkDriver.Join`` (the leading slash is optional).
        :param timeout: how long the client waits for an answer (for ``hang``/``latency``, and
            ``hold``: a held call waits for its release that long in real time at most).
        :param gone: tells whether the client has gone away (for ``hang``/``hold``).
        :raises NeverAnswered: a ``hang`` holds the call and neither ``timeout`` nor ``gone``
            could ever end it.
        """
        method = path.lstrip("/")
        with self.lock:
            fired = self.faults.select(method, peek(body)) if self.faults.rules else []
            if not fired:
                call = self._append(self._run(method, body))
                return Reply(call.status, encode(call.response), call)
        names = " + ".join(self.faults.describe(rule) for rule in fired)
        delay = sum(rule.seconds for rule in fired if rule.kind == "latency")
        if timeout is not None and delay > timeout:  # served, but the client stops waiting
            self.clock.sleep(timeout)
            with self.lock:
                call = self._run(method, body, fault=names)
                gave_up = f"no answer: client gave up after {timeout} s (served)"
                call = self._append(dataclasses.replace(call, status=0, error=gave_up))
            return Reply(0, b"", call, drop="before", timed_out=True)
        if delay:
            self.clock.sleep(delay)
        for rule in fired:
            if rule.kind in ("hold", "hang"):
                why = self._wait(rule, timeout, gone, delay)
                if why == NeverAnswered.WHY:
                    self._not_answered(method, body, names, why)
                    raise NeverAnswered(f"{method}: {why} (and the {names!r} rule holds it)")
                if why is not None:
                    return self._not_answered(method, body, names, why)
        outcome = next((rule for rule in fired if rule.kind not in TIMING), None)
        with self.lock:
            if outcome is None or outcome.kind in SERVED:
                call = self._append(as_sent(self._run(method, body, fault=names), outcome))
                return served(call, outcome)
            status, payload, drop, error = refused(method, outcome)
            answer = peek(payload) or {}
            call = self._append(self._entry(method, peek(body), answer, status, error, fault=names))
            return Reply(status, payload, call, drop=drop)

    def _wait(
        self, rule: Rule, timeout: float | None, gone: Callable[[], bool] | None, waited: float
    ) -> str | None:
        """Hold the call; ``None`` once released, else why it ends unanswered. A ``hold``
        waits in real time (another thread releases it), for what is left of the client's
        ``timeout`` after the ``waited`` latency at most."""
        if rule.kind == "hang" and timeout is not None and not rule.released:
            self.clock.sleep(timeout)
            return f"client gave up after {timeout} s"
        if rule.kind == "hang" and gone is None and not rule.released:
            return NeverAnswered.WHY  # nothing would ever end the wait
        limit = None if timeout is None or rule.kind != "hold" else max(timeout - waited, 0.0)
        if rule.hold(gone, limit):
            return None
        if limit is None or (gone is not None and gone()):
            return "client went away"
        return f"client gave up after {timeout} s (held)"

    def _not_answered(self, method: str, body: bytes, names: str, why: str) -> Reply:
        with self.lock:
            entry = self._entry(method, peek(body), {}, 0, f"no answer: {why}", fault=names)
            call = self._append(entry)
        return Reply(0, b"", call, drop="before", timed_out=why.startswith("client gave up"))

    def _run(self, method: str, body: bytes, fault: str | None = None) -> Call:
        """Serve ``method`` on a fresh model (the caller holds the lock); not journaled."""
        index = self.calls.next_index
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
            request = decode(body, no_arguments=row.no_arguments)
            links = self.links if row.subsystem == "NetworkDriver" else None
            model = row.model(self.state, self.persona, self._rng, index, links)
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
    def add_rules(self, rules: Iterable[Rule], *, first: bool = False) -> list[Rule]:
        """Append ``rules`` after the existing ones (before them, in order, with
        ``first``: they decide a call ahead of every other rule), all together."""
        rules = list(rules)
        with self.lock:
            if first:
                self.faults.rules[:0] = rules
            else:
                for rule in rules:
                    self.faults.add(rule)
        return rules

    def remove_rule(self, rule: Rule) -> None:
        """Take ``rule`` out (if it is in) and release the calls it holds."""
        with self.lock:
            if rule in self.faults.rules:
                self.faults.rules.remove(rule)
        rule.release()

    def clear_rules(self) -> None:
        """Remove every rule, releasing the calls they hold."""
        with self.lock:
            self.faults.clear()

    def release_rules(self) -> None:
        """Release every held or hung call (the rules stay)."""
        with self.lock:
            rules = list(self.faults.rules)
        for rule in rules:
            rule.release()

    def set_phase(self, phase: str | None) -> None:
        with self.lock:
            self.faults.phase = phase

    def fault_report(self) -> dict[str, Any]:
        """The rules (with how often each fired), the phase and the seed."""
        with self.lock:
            rules = [rule.to_dict() for rule in self.faults.rules]
            return {"faults": rules, "phase": self.faults.phase, "seed": self.faults.seed}

    def calls_since(self, index: int) -> list[Call]:
        with self.lock:
            return self.calls.since(index)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.state.snapshot()

    def leaks(self) -> list[str]:
        """What is still held, and every recorded violation, each with its call."""
        with self.lock:
            return leaks(self.state, self.calls)
