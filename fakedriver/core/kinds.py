"""The fault kinds as objects: each says what its rule does to a call, and the driver
asks nothing else of it.

A kind is timed (`Kind.timed`: it changes only when the answer comes, and any number of
timed rules apply to one call: `Kind.delay()` on the driver's clock, `Kind.wait()` to hold
the call), or it decides the answer (the first such rule that fires does): it says
whether the driver still serves the call (`Kind.served`: its state changes) and shapes
what the client gets (`Kind.shape()`: the status, the body, the
[`Outcome`][fakedriver.Outcome] a transport renders, and the journal entry). `TABLE` holds
one object per kind; ``fakedriver.KINDS`` and the strings of ``Rule(kind=...)`` are its
names. Adding a kind is a row here (and, for a kind with a field of its own, the field on
``Rule``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .call import Call
from .clock import Clock
from .http import encode, error_key
from .reply import NeverAnswered, Outcome, Reply
from .wire import peek

#: Tells whether the client has gone away (a real socket's peer closed it).
Gone = Callable[[], bool]


class Fired(Protocol):
    """What a kind reads of the rule that fired (a [`Rule`][fakedriver.Rule])."""

    message: str
    status: int | None
    body: str | None
    seconds: float
    answer: dict[str, Any] | None

    @property
    def released(self) -> bool: ...

    def hold(self, gone: Gone | None = None, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Ending:
    """How a call ends without the driver's answer reaching the client.

    :param outcome: what the transport renders.
    :param why: the journal's ``error``, after ``"no answer: "``.
    :param served: the driver served the call all the same (its state changed).
    """

    outcome: Outcome
    why: str
    served: bool = False

    def shape(self, rule: Fired | None, call: Call) -> Reply:
        entry = dataclasses.replace(call, status=0, error=f"no answer: {self.why}")
        return Reply(0, b"", entry, self.outcome)


#: The client hung up on a held call.
GONE = Ending(Outcome.DROP_BEFORE, "client went away")


@dataclass(frozen=True)
class Kind:
    """A fault kind; this base decides nothing: the client gets the driver's answer.

    :param name: what ``Rule(kind=...)`` says.
    :param description: what it does, as Docker's client sees it (``fakedriver.KINDS``).
    :param timed: it changes only when the answer comes.
    :param served: the driver serves the call, whatever the client then gets.
    :param fields: the rule fields that belong to this kind alone.
    """

    name: str
    description: str
    timed: bool = False
    served: bool = True
    fields: tuple[str, ...] = ()

    def delay(self, rule: Fired) -> float:
        """Seconds on the driver's clock before the answer comes."""
        return 0.0

    def wait(
        self, rule: Fired, clock: Clock, timeout: float | None, gone: Gone | None, waited: float
    ) -> Ending | None:
        """Hold the call; ``None`` once it may go on, else how it ends unanswered.

        :param timeout: how long the client waits for the answer (``None``: for ever).
        :param gone: tells whether the client has gone away, where that can be seen.
        :param waited: the latency the call has waited already.
        """
        return None

    def shape(self, rule: Fired | None, call: Call) -> Reply:
        """The reply to the call this kind decides: ``call`` is the driver's journal entry
        of it when the kind is `served`, else an entry with no answer yet."""
        return Reply(call.status, encode(call.response), call)


#: The answer of a call no rule decides: the driver's own.
ANSWERED = Kind("", "the driver's answer")


def _fired(rule: Fired | None) -> Fired:
    if rule is None:
        raise TypeError("a fault kind shapes the answer of a rule that fired")
    return rule


@dataclass(frozen=True)
class Refusal(Kind):
    """The fault answers instead of the driver, which does not serve the call.

    :param answers: (rule, the method's error key) -> the status, and the answer: an
        object (sent as JSON) or the raw bytes of the body.
    :param outcome: what the transport renders.
    :param says_message: the journal's ``error`` is the rule's message, not the kind's name.
    """

    served: bool = False
    answers: Callable[[Fired, str], tuple[int, dict[str, Any] | bytes]] = lambda rule, key: (0, b"")
    outcome: Outcome = Outcome.ANSWER
    says_message: bool = False

    def shape(self, rule: Fired | None, call: Call) -> Reply:
        rule = _fired(rule)
        status, answer = self.answers(rule, error_key(call.method))
        if isinstance(answer, bytes):
            payload, shown = answer, peek(answer) or {}
        else:
            payload, shown = encode(answer), answer
        error = rule.message if self.says_message else self.name
        entry = dataclasses.replace(call, status=status, response=shown, error=error)
        return Reply(status, payload, entry, self.outcome)


@dataclass(frozen=True)
class Altered(Kind):
    """The driver serves the call; the fault changes what the client gets of the answer.

    :param alter: (rule, the driver's entry) -> the entry as sent.
    :param cut: only the first half of the answer is sent (and the connection stays).
    :param outcome: what the transport renders.
    """

    alter: Callable[[Fired, Call], Call] = lambda rule, call: call
    cut: bool = False
    outcome: Outcome = Outcome.ANSWER

    def shape(self, rule: Fired | None, call: Call) -> Reply:
        entry = self.alter(_fired(rule), call)
        payload = encode(entry.response)
        if self.cut:
            payload = payload[: len(payload) // 2]
        return Reply(entry.status, payload, entry, self.outcome)


@dataclass(frozen=True)
class Latency(Kind):
    """The answer comes the rule's ``seconds`` later."""

    timed: bool = True
    fields: tuple[str, ...] = ("seconds",)

    def delay(self, rule: Fired) -> float:
        return rule.seconds


@dataclass(frozen=True)
class Hold(Kind):
    """The call waits, in real time, until released (then it is served), for what is left
    of the client's timeout after the latency at most."""

    timed: bool = True

    def wait(
        self, rule: Fired, clock: Clock, timeout: float | None, gone: Gone | None, waited: float
    ) -> Ending | None:
        limit = None if timeout is None else max(timeout - waited, 0.0)
        if rule.hold(gone, limit):
            return None
        if limit is None or (gone is not None and gone()):
            return GONE
        return Ending(Outcome.TIMED_OUT, f"client gave up after {timeout} s (held)")


@dataclass(frozen=True)
class Hang(Kind):
    """No answer until released (then the call is served) or the client gives up: at its
    timeout on the driver's clock, or when it goes away."""

    timed: bool = True

    def wait(
        self, rule: Fired, clock: Clock, timeout: float | None, gone: Gone | None, waited: float
    ) -> Ending | None:
        if timeout is not None and not rule.released:
            clock.sleep(timeout)
            return Ending(Outcome.TIMED_OUT, f"client gave up after {timeout} s")
        if gone is None and not rule.released:  # nothing would ever end the wait
            return Ending(Outcome.NEVER_ANSWERED, NeverAnswered.WHY)
        return None if rule.hold(gone) else GONE


def merge(answer: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``answer``, object fields merged rather than replaced."""
    merged = dict(answer)
    for key, value in extra.items():
        old = merged.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        merged[key] = merge(old, value) if both else value  # type: ignore[arg-type]
    return merged


def _other_key(key: str) -> str:
    return "Err" if key == "Error" else "Error"


def _lost(rule: Fired, call: Call) -> Call:
    answer = {error_key(call.method): rule.message}
    return dataclasses.replace(call, status=200, response=answer, error=rule.message)


def _status(rule: Fired, key: str) -> tuple[int, dict[str, Any] | bytes]:
    body = rule.body.encode() if rule.body is not None else {"Err": rule.message}
    return rule.status or 500, body


#: Every fault kind (protocol.md §1.4, §8), in the order ``fakedriver.KINDS`` lists them.
TABLE: tuple[Kind, ...] = (
    Refusal(
        "error",
        "HTTP 200 with the error under the subsystem's key (Err or Error)",
        answers=lambda rule, key: (200, {key: rule.message}),
        says_message=True,
    ),
    Refusal(
        "status",
        "a non-200 status, with {'Err': message} or the raw `body`",
        fields=("status", "body"),
        answers=_status,
        says_message=True,
    ),
    Refusal(
        "not_found",
        "HTTP 404 '404 page not found' (Docker tolerates it only for "
        "Program/RevokeExternalConnectivity)",
        answers=lambda rule, key: (404, b"404 page not found\n"),
    ),
    Refusal(
        "empty_body",
        "HTTP 200 with an empty body (Docker: EOF)",
        answers=lambda rule, key: (200, b""),
    ),
    Refusal(
        "invalid_json",
        "HTTP 200 with a body that is not JSON",
        answers=lambda rule, key: (200, b'{"Err": this is not JSON'),
    ),
    Altered("truncated", "the call is served, but the answer is cut in the middle", cut=True),
    Refusal(
        "wrong_key",
        "HTTP 200 with the error under the other subsystem's key (Docker: success)",
        answers=lambda rule, key: (200, {_other_key(key): rule.message}),
        says_message=True,
    ),
    Altered(
        "answer",
        "the call is served, and `answer` is merged into the answer (e.g. a field "
        "Docker must reject)",
        fields=("answer",),
        alter=lambda rule, call: dataclasses.replace(
            call, response=merge(call.response, rule.answer or {})
        ),
    ),
    Altered(
        "lost_reply",
        "the call is served (state changes), but the answer is an error",
        alter=_lost,
    ),
    Latency("latency", "the answer comes `seconds` later (on the driver's clock)"),
    Hang("hang", "no answer until released or the client gives up"),
    Hold("hold", "the call waits until released, then is served (for forcing interleavings)"),
    Refusal(
        "drop",
        "the connection is closed before answering (the call is not served)",
        outcome=Outcome.DROP_BEFORE,
    ),
    Altered(
        "drop_mid_body",
        "the call is served; the connection is closed in the middle of the answer",
        outcome=Outcome.DROP_MID_BODY,
    ),
)

#: Every kind by name.
KIND = {kind.name: kind for kind in TABLE}
