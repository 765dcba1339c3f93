"""The control API: the fault rules, journal and state over HTTP, for tests in another
process than ``fakedriver serve``. Paths live under ``/fakedriver/``; every body is JSON.

=======  ==========================  ==================================================
verb     path                        does
=======  ==========================  ==================================================
GET      /fakedriver/faults          the rules (with how often each fired), phase, seed
POST     /fakedriver/faults          add a rule (an object) or several (``{"faults": []}``)
DELETE   /fakedriver/faults          remove every rule (releasing held calls)
DELETE   /fakedriver/faults/N        remove rule N (its index in the list; releasing its calls)
POST     /fakedriver/faults/release  release every held or hung call
PUT      /fakedriver/phase           ``{"phase": "name"}`` (or ``null``) for phase rules
GET      /fakedriver/calls           the journal; ``?since=N`` for entries from index N
GET      /fakedriver/state           the state snapshot
GET      /fakedriver/leaks           what is still held, with the call that made it
POST     /fakedriver/reset           forget state, journal and rules
=======  ==========================  ==================================================

Who may call it: no browser (the socket server refuses every request that carries
``Origin`` or a ``Sec-Fetch-*`` header, the plugin protocol's too: see ``core.http.from_browser``;
and `refusal()` wants a body in ``application/json``, which a cross-origin page cannot
send without a preflight), and, with a token, only a client that shows it
(``Authorization: Bearer TOKEN``, the scheme in any case); without a token the server does
not serve the control API on TCP at all. The one browser page that gets in is the
dashboard's own, through its listener (`fakedriver.server.dashboard`).
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ..core.errors import DriverError
from ..core.faults import RuleChanged, rule_from_dict
from ..core.journal import Call
from ..core.wire import strict_json

if TYPE_CHECKING:
    from ..fake import FakeNetDriver


def refusal(verb: str, headers: Mapping[str, str], token: str | None) -> tuple[int, Any] | None:
    """Why a control request is refused (its status and answer), or ``None``. A browser's
    request never gets here: the server refuses it first, whatever its path.

    :param headers: the request's headers, by lower-case name.
    :param token: the bearer token a request must carry (``None``: none needed).
    """
    if token is not None:
        # "Bearer", "bearer", "BEARER": the scheme is case-insensitive (RFC 7235 §2.1)
        scheme, _, given = headers.get("authorization", "").partition(" ")
        shown = given.lstrip(" ").encode("latin-1")  # the bytes sent (headers are latin-1)
        if not (hmac.compare_digest(shown, token.encode()) and scheme.lower() == "bearer"):
            return 401, {"Err": "the control API needs Authorization: Bearer <the control token>"}
    media = headers.get("content-type", "").partition(";")[0].strip().lower()
    if verb in ("POST", "PUT") and media != "application/json":
        return 415, {"Err": "send the control request as Content-Type: application/json"}
    return None


def control(fake: FakeNetDriver, verb: str, target: str, body: bytes) -> tuple[int, Any]:
    """Serve one control request; returns the HTTP status and the JSON answer."""
    url = urlsplit(target)
    try:
        data = strict_json(body) if body.strip() else {}
        route = _ROUTES.get((verb, url.path))
        if route is None and verb == "DELETE" and url.path.startswith(_ONE_RULE):
            return _remove(fake, url.path[len(_ONE_RULE) :], data)
        if route is None:
            return 404, {"Err": f"no control endpoint {verb} {url.path}"}
        return 200, route(fake, data, parse_qs(url.query))
    except DriverError as exc:  # the server is shutting down
        return exc.status, {"Err": exc.message}
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        return 400, {"Err": f"bad control request: {exc}"}


def _faults(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    return fake.fault_report()


def _add(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    items = data["faults"] if isinstance(data, dict) and "faults" in data else [data]
    rules = [rule_from_dict(item) for item in items]  # all or nothing
    return {"added": list(fake.add_rules(rules))}  # the rules' places in the list


def _clear(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    fake.clear_rules()
    return {}


_ONE_RULE = "/fakedriver/faults/"


def _remove(fake: FakeNetDriver, index: str, data: Any) -> tuple[int, Any]:
    """Remove rule ``index`` (its place in the list, from 0), releasing the calls it
    holds. With ``{"name": NAME}``, only if rule ``index`` is still named so: a page that
    listed the rules before someone else changed them gets a 409, and nothing changes."""
    if not (index.isascii() and index.isdigit()):
        return 404, {"Err": f"no control endpoint DELETE {_ONE_RULE}{index}: N is a rule's index"}
    if not isinstance(data, dict) or not isinstance(data.get("name", ""), str):
        raise ValueError('send nothing, or {"name": "the rule\'s name"}')
    try:
        rule = fake.remove_rule_at(int(index), data.get("name"))
    except RuleChanged as exc:
        return 409, {"Err": str(exc)}
    except IndexError as exc:
        return 404, {"Err": str(exc)}
    return 200, {"removed": int(index), "rule": rule.to_dict()}


def _release(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    fake.release_rules()
    return {}


def _phase(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError('send {"phase": "name"} or {"phase": null}')
    phase = data.get("phase")
    if phase is not None and not isinstance(phase, str):
        raise ValueError("phase must be a string or null")
    fake.set_phase(phase)
    return {"phase": phase}


def _calls(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    since = int(query.get("since", ["0"])[0])
    if since < 0:
        raise ValueError(f"since must not be negative, not {since}")
    held, first, following = fake.calls_since(since)  # and the journal's bounds, together
    calls = [_entry(call) for call in held]
    # a bounded journal (``serve --journal-size``) drops its oldest calls: say how many
    # of those asked for are gone
    return {"calls": calls, "first": first, "next": following, "evicted": max(first - since, 0)}


_FIELDS = tuple(field.name for field in dataclasses.fields(Call))


def _entry(call: Call) -> dict[str, Any]:
    """A journal entry as JSON sends it: its fields, not copied (``dataclasses.asdict``
    copied every request and answer, 50 µs a call under the driver's lock: half a second
    for a journal of 10,000). A journaled call's request and answer are never changed
    after it was served (the state holds parts of them as it holds its snapshot's)."""
    return {name: getattr(call, name) for name in _FIELDS}


def _state(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    return fake.snapshot()


def _leaks(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    return {"leaks": fake.leaks()}


def _reset(fake: FakeNetDriver, data: Any, query: Any) -> Any:
    fake.reset()
    return {}


_ROUTES = {
    ("GET", "/fakedriver/faults"): _faults,
    ("POST", "/fakedriver/faults"): _add,
    ("DELETE", "/fakedriver/faults"): _clear,
    ("POST", "/fakedriver/faults/release"): _release,
    ("PUT", "/fakedriver/phase"): _phase,
    ("GET", "/fakedriver/calls"): _calls,
    ("GET", "/fakedriver/state"): _state,
    ("GET", "/fakedriver/leaks"): _leaks,
    ("POST", "/fakedriver/reset"): _reset,
}
