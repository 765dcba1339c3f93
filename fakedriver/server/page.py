"""The dashboard's page, one HTML document with its script and style inlined (they ship
in ``static/``: no framework, no build step, nothing fetched from the network). One set
of views, two deliveries: live, served by the dashboard's listener and polling the
control API behind it (`fakedriver.server.dashboard`); or a report, one self-contained
file with the data inlined, as the pytest plugin writes for a failing test.

The data of a report (and what the live page builds from the control API) is plain JSON:
``{"title", "lanes": [LANE, ...], "order", "cuts", "failure", "audit"}``, a ``LANE``
being ``{"name", "calls", "first", "state", "leaks", "faults"}`` (the control API's
answers, see `fake_data()`). ``order`` lists the calls as ``[lane, index]`` pairs in the
order they were served (a cluster's timeline), or is ``None`` (then by time); ``cuts`` are
partitions, ``{"lane", "mode", "start", "end"}``, their times as the calls' timestamps
(``end`` ``None``: not healed); ``failure`` is the test's failure, ``audit`` a
cluster's leaks and violations.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..core.faults import KINDS
from ..core.methods import METHODS
from .control import control

if TYPE_CHECKING:
    from ..fake import FakeNetDriver

#: The files of the page, in ``fakedriver/server/static/``.
ASSETS = ("page.html", "dashboard.css", "dashboard.js")
_SLOT = re.compile(r"\{\{(\w+)\}\}")


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or
    ``&`` (so no ``</script>`` nor ``<!--`` in it), each written as its ``\\u`` escape."""
    text = json.dumps(value, allow_nan=False, default=repr)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def policy(nonce: str, *, live: bool, header: bool = False) -> str:
    """The page's Content-Security-Policy: its own inlined script and style (by their
    ``nonce``), and no network access but, live, to its own origin's control API. As a
    ``header`` it also forbids framing (which a ``<meta>`` policy cannot say)."""
    connect = "'self'" if live else "'none'"
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        f"img-src data:; connect-src {connect}; base-uri 'none'; form-action 'none'"
        + ("; frame-ancestors 'none'" if header else "")
    )


def render(
    title: str, *, data: dict[str, Any] | None = None, key: str | None = None, nonce: str = ""
) -> str:
    """The page. With ``data`` a report (the data inlined, nothing fetched); else the live
    page, which sends ``key`` with every control request (``X-Fakedriver-Key``).

    :param nonce: the Content-Security-Policy nonce of its script and style (a fresh
        random one when empty; the live page's answer carries the policy as a header too).
    """
    nonce = nonce or secrets.token_urlsafe(16)
    config = {"live": data is None, "kinds": KINDS, "methods": list(METHODS), "title": title}
    inlined = {
        "csp": html.escape(policy(nonce, live=data is None)),
        "nonce": nonce,
        "title": html.escape(title),
        "key": html.escape(key or ""),
        "config": script_json(config),
        "data": script_json(data) if data is not None else "null",
        "css": _asset("dashboard.css"),
        "js": _asset("dashboard.js"),
    }
    # one pass: a value (a call's request, say) that holds "{{js}}" stays as it is
    return _SLOT.sub(lambda found: inlined[found.group(1)], _asset("page.html"))


def fake_data(fake: FakeNetDriver, name: str) -> dict[str, Any]:
    """One lane of a report: the fake's journal, state, leaks and fault rules, as the
    control API answers them."""
    lane: dict[str, Any] = {"name": name}
    for key, target in (
        ("calls", "/fakedriver/calls"),
        ("state", "/fakedriver/state"),
        ("leaks", "/fakedriver/leaks"),
        ("faults", "/fakedriver/faults"),
    ):
        _, answer = control(fake, "GET", target, b"")
        lane[key] = answer
    calls = lane.pop("calls")
    lane.update(calls=calls["calls"], first=calls["first"], leaks=lane["leaks"]["leaks"])
    return lane
