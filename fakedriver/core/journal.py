"""The journal: every call the fake served, in order (or the most recent ones, bounded)."""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import re
import sys
from collections import deque
from collections.abc import Iterable
from typing import Any

from .call import Call as Call  # re-exported: it is named from here too
from .methods import resolve

#: In a bounded journal, the largest request or answer kept whole, in bytes of JSON, and
#: the longest error, violation or note, in characters: a larger one is cut down to its
#: head, so that a client sending large bodies cannot fill the server's memory.
FIELD_LIMIT = 4096

#: What an entry costs beyond its request, answer and texts, in bytes of memory: the
#: `Call` and its fields (index, status, time, the empty tuples) and its slot and
#: size in the journal.
ENTRY_OVERHEAD = 300

#: The byte budget of ``fakedriver serve``'s journal (``--journal-bytes``): 32 MiB of
#: memory, what 10,000 of dockerd's calls take, near enough.
SERVE_BYTES = 32 * 2**20


def footprint(value: Any) -> int:
    """The memory ``value`` takes as Python objects, in bytes, near enough (within a
    factor of 2, over rather than under, for what JSON decodes to): `sys.getsizeof` of
    each object it holds, a container's counting its slots, and nothing for the objects
    every value shares (``None``, ``True``, ``False``, the small integers, ``""`` and
    ``()``). What a bounded
    journal counts: a body's JSON says little of it, an empty array being 2 bytes of JSON
    and 56 of list."""
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if item is None or kind is bool or (kind is int and -5 <= item <= 256):
            continue
        if (kind is str or kind is tuple) and not item:
            continue
        size += sys.getsizeof(item)
        if kind is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
    return size


#: A value's JSON is at most this many characters per byte of its `footprint()`, plus 8
#: (a lone ``false``): a string's character is at least 1 byte of it and at most 6
#: characters of JSON (``\u0001``), or 4 bytes and 12 characters (``\ud83d\ude00``);
#: every other value and slot is more bytes than characters. So a value this small is
#: not encoded only to be measured.
JSON_PER_BYTE = 6


def _cut_value(value: Any) -> tuple[Any, int]:
    """``value`` (a request or an answer), or its head when it is large; and its size
    (see `footprint()`)."""
    size = footprint(value)
    if JSON_PER_BYTE * size + 8 <= FIELD_LIMIT:  # its JSON cannot be over the limit
        return value, size
    try:
        text = json.dumps(value, default=str)
    except (ValueError, RecursionError) as exc:  # never from the wire: decode refuses both
        value = {"fakedriver.unrecorded": _cut_text(f"{type(exc).__name__}: {exc}")}
        text = json.dumps(value)
    if len(text) > FIELD_LIMIT:
        value = {"fakedriver.truncated": f"{len(text)} bytes", "head": text[:FIELD_LIMIT]}
    return value, footprint(value)


def _cut_text(text: str | None) -> str | None:
    if text is None or len(text) <= FIELD_LIMIT:
        return text
    return f"{text[:FIELD_LIMIT]}... (cut: {len(text)} characters)"


def bounded(call: Call) -> tuple[Call, int]:
    """``call`` as a bounded journal holds it (its request, answer and texts cut down
    when large: see `FIELD_LIMIT`), and its size in bytes of memory (see `footprint()`
    and `ENTRY_OVERHEAD`)."""
    request, request_size = _cut_value(call.request)
    response, response_size = _cut_value(call.response)
    texts = (call.error, call.fault, call.violations, call.notes)
    error, fault = _cut_text(call.error), _cut_text(call.fault)
    violations = tuple(str(_cut_text(text)) for text in call.violations)
    notes = tuple(str(_cut_text(text)) for text in call.notes)
    if (
        request is not call.request
        or response is not call.response
        or (error, fault, violations, notes) != texts
    ):
        call = dataclasses.replace(
            call,
            request=request,
            response=response,
            error=error,
            fault=fault,
            violations=violations,
            notes=notes,
        )
    size = sum(footprint(text) for text in (call.method, error, fault, violations, notes))
    return call, request_size + response_size + size + ENTRY_OVERHEAD


Matcher = Any  # a value to compare with ==, a dict matched as a subset, or a predicate


class Journal(list[Call]):
    """The ordered list of served calls, with helpers to assert on it.

    Methods are named in full (``"NetworkDriver.Join"``) or short (``"Join"``) when only
    one protocol has that name. Request fields are matched by keyword: a plain value is
    compared with ``==``, a dict matches as a subset (``Interface={"Address": ...}``), a
    callable is a predicate.

    Unbounded by default (a test's fake keeps every call, whole). Bounded by ``maxlen``
    (calls) or ``max_bytes`` (bytes of memory, see `footprint()`), or both, it is a ring
    for a long-running server: it keeps the most recent calls, each still with its
    absolute index, evicting the oldest past either bound, and `first` is the index of
    the oldest one held. A bounded journal cuts down each call's large request, answer
    and texts (see `FIELD_LIMIT`), reckons each entry's size once as it is appended, and
    always holds the newest call, even alone past ``max_bytes``.
    """

    def __init__(
        self,
        calls: Iterable[Call] = (),
        *,
        maxlen: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        if maxlen is not None and maxlen < 1:
            raise ValueError(f"a journal holds at least one call, not {maxlen}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"a journal's byte budget is at least 1, not {max_bytes}")
        super().__init__()
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        #: The absolute index of the oldest call held (how many were evicted before it).
        self.first = 0
        #: The size of the calls held, in bytes of memory (see `footprint()`; reckoned only
        #: when bounded).
        self.bytes = 0
        self._sizes: deque[int] = deque()  # of each call held, oldest first
        for call in calls:
            self.append(call)

    @property
    def bounded(self) -> bool:
        """Whether the journal has a bound (``maxlen`` or ``max_bytes``)."""
        return self.maxlen is not None or self.max_bytes is not None

    def empty(self) -> Journal:
        """A new, empty journal bounded like this one."""
        return Journal(maxlen=self.maxlen, max_bytes=self.max_bytes)

    @property
    def next_index(self) -> int:
        """The absolute index the next call gets."""
        return self.first + len(self)

    def append(self, call: Call) -> None:
        if not self.bounded:
            super().append(call)
            return
        if len(self._sizes) != len(self):  # the list was changed other than by append()
            self._recount()
        call, size = bounded(call)
        super().append(call)
        self._sizes.append(size)
        self.bytes += size
        evict = 0
        while len(self) - evict > 1 and (
            (self.maxlen is not None and len(self) - evict > self.maxlen)
            or (self.max_bytes is not None and self.bytes > self.max_bytes)
        ):
            self.bytes -= self._sizes.popleft()
            evict += 1
        if evict:
            del self[:evict]
            self.first += evict

    def clear(self) -> None:
        super().clear()
        self._sizes.clear()
        self.bytes = 0

    def _recount(self) -> None:
        self._sizes = deque(bounded(call)[1] for call in self)
        self.bytes = sum(self._sizes)

    def at(self, index: int) -> Call | None:
        """The call with absolute ``index``, or ``None`` when it is not (or no longer) held."""
        position = index - self.first
        return self[position] if 0 <= position < len(self) else None

    def since(self, index: int) -> list[Call]:
        """The calls held from absolute ``index`` on."""
        return self[max(index - self.first, 0) :]

    @property
    def methods(self) -> list[str]:
        """The method of every call, in order."""
        return [call.method for call in self]

    def of(self, method: str, **fields: Matcher) -> list[Call]:
        """The calls of ``method`` whose request matches ``fields``."""
        name = resolve(method)
        return [c for c in self if c.method == name and not mismatches(c.request, fields)]

    def count_of(self, method: str, **fields: Matcher) -> int:
        """How many calls of ``method`` match ``fields`` (see [`of()`][fakedriver.Journal.of])."""
        return len(self.of(method, **fields))

    def assert_called(
        self, method: str, *, times: int | None = None, **fields: Matcher
    ) -> list[Call]:
        """Assert ``method`` was called (exactly ``times`` times, if given); return the calls."""
        __tracebackhide__ = True
        found = self.of(method, **fields)
        if (times is None and found) or len(found) == times:
            return found
        wanted = "at least once" if times is None else f"{times} time(s)"
        raise AssertionError(
            f"expected {_describe(method, fields)} to be called {wanted}, "
            f"it was called {len(found)} time(s)\n{self._miss(method, fields)}{self.format()}"
        )

    def assert_not_called(self, method: str, **fields: Matcher) -> None:
        """Fail if any call of ``method`` matches ``fields``, naming them."""
        __tracebackhide__ = True
        found = self.of(method, **fields)
        if found:
            raise AssertionError(
                f"expected {_describe(method, fields)} not to be called, it was called "
                f"{len(found)} time(s): {', '.join(f'#{c.index}' for c in found)}\n{self.format()}"
            )

    def assert_sequence(
        self, *steps: str | tuple[str, dict[str, Matcher]], contiguous: bool = False
    ) -> list[Call]:
        """Assert the steps happened in this order (a subsequence of the journal, or a
        contiguous run of it when ``contiguous``). A step is a method name or
        ``(method, {field: matcher})``. Returns the matching calls."""
        __tracebackhide__ = True
        wanted = [(s, {}) if isinstance(s, str) else s for s in steps]
        if not wanted:
            return []
        starts = range(len(self)) if contiguous else range(1)
        best: list[Call] = []
        for start in starts:
            got = self._match_from(start, wanted, contiguous)
            if len(got) == len(wanted):
                return got
            best = max(best, got, key=len)
        method, fields = wanted[len(best)]
        after = f" after call #{best[-1].index}" if best else ""
        kind = "contiguous sequence" if contiguous else "sequence"
        raise AssertionError(
            f"expected the {kind} {' -> '.join(_describe(m, f) for m, f in wanted)}\n"
            f"matched {len(best)} step(s); then no {_describe(method, fields)}{after}\n"
            f"{self._miss(method, fields)}{self.format()}"
        )

    def _match_from(
        self, start: int, wanted: list[tuple[str, dict[str, Matcher]]], contiguous: bool
    ) -> list[Call]:
        got: list[Call] = []
        calls = iter(self[start:])
        for method, fields in wanted:
            name = resolve(method)
            for call in calls:
                if call.method == name and not mismatches(call.request, fields):
                    got.append(call)
                    break
                if contiguous:
                    return got
            else:
                return got
        return got

    def _miss(self, method: str, fields: dict[str, Matcher]) -> str:
        """The nearest miss: the call of ``method`` differing in the fewest fields."""
        name = resolve(method)
        same = [(len(mismatches(c.request, fields)), c) for c in self if c.method == name]
        if not same:
            close = difflib.get_close_matches(name, set(self.methods), n=1)
            return f"no call of {name} at all{f'; did you mean {close[0]}?' if close else ''}\n"
        _, nearest = min(same, key=lambda pair: pair[0])
        problems = "; ".join(mismatches(nearest.request, fields)) or "its request matched"
        return f"nearest miss: #{nearest.index} {nearest.method}: {problems}\n"

    def format(self) -> str:
        """One line per call, errors marked: the journal as shown in failure reports."""
        if not self:
            return "calls: (none)\n"
        width = id_width(self)
        return "calls:\n" + "".join(f"  {format_call(call, width)}\n" for call in self)


def _describe(method: str, fields: dict[str, Matcher]) -> str:
    name = resolve(method)
    if not fields:
        return name
    return f"{name} with " + ", ".join(f"{k}={v!r}" for k, v in fields.items())


def mismatches(
    request: dict[str, Any] | None, fields: dict[str, Matcher], where: str = ""
) -> list[str]:
    """Why ``request`` does not match ``fields`` (empty when it does)."""
    problems = []
    for key, expected in fields.items():
        path = f"{where}{key}"
        if request is None or key not in request:
            problems.append(f"{path} is missing, wanted {expected!r}")
            continue
        value = request[key]
        if callable(expected):
            if not expected(value):
                problems.append(f"{path} is {value!r}, which the predicate refused")
        elif isinstance(expected, dict) and isinstance(value, dict):
            problems.extend(mismatches(value, expected, f"{path}."))
        elif value != expected:
            problems.append(f"{path} is {value!r}, wanted {expected!r}")
    return problems


_SHOWN = ("NetworkID", "EndpointID", "PoolID", "Pool", "Address", "SandboxKey")
_HEX_ID = re.compile(r"[0-9a-f]{64}")
#: The fewest characters of a 64-digit hex id a report shows (as ``docker ps`` does).
SHORT_ID = 12


def _shown(call: Call) -> list[tuple[str, str]]:
    request = call.request or {}
    return [
        (key, request[key]) for key in _SHOWN if isinstance(request.get(key), str) and request[key]
    ]


def id_width(calls: Iterable[Call]) -> int:
    """How many characters of a 64-digit hex id a report of ``calls`` shows: the fewest
    (at least `SHORT_ID`) that keep the ids it shows apart, else all 64."""
    ids = sorted({v for call in calls for _, v in _shown(call) if _HEX_ID.fullmatch(v)})
    width = SHORT_ID
    for one, other in itertools.pairwise(ids):  # in order, the nearest ids are neighbours
        differ = next(i for i, (a, b) in enumerate(zip(one, other, strict=True)) if a != b)
        width = max(width, differ + 1)
    return width


def format_call(call: Call, width: int | None = None) -> str:
    """One call on one line, as the journal is shown in failure reports. A 64-digit hex
    id is cut to ``width`` characters (see `id_width()`; by default, as few as keep
    this call's own ids apart)."""
    if width is None:
        width = id_width([call])
    shown = " ".join(
        f"{key}={value[:width] if _HEX_ID.fullmatch(value) else value}"
        for key, value in _shown(call)
    )
    head = f"#{call.index} {call.method}{' ' + shown if shown else ''}"
    if call.fault:
        head += f" [fault: {call.fault}]"
    if not call.ok:
        return f"{head}  !! {call.status} {call.error}"
    if call.violations:
        head += f"  ~ violation: {'; '.join(call.violations)}"
    if call.notes:
        head += f"  (note: {'; '.join(call.notes)})"
    return head
