"""The HTTP facts every transport shares: the content type, the error key of each
subsystem, how answers are encoded, the answer to a verb other than POST, and how a web
browser's request is told apart from dockerd's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

#: What a plugin answers with (dockerd sends no Content-Type and reads any).
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"


def error_key(method: str) -> str:
    """``Error`` for the IPAM protocol, ``Err`` for everything else (protocol.md §1.4)."""
    return "Error" if method.lstrip("/").partition(".")[0] == "IpamDriver" else "Err"


def from_browser(headers: Mapping[str, str]) -> str | None:
    """The header that marks a request as a web browser's, or ``None``: ``Origin``, or any
    ``Sec-Fetch-*``. Browsers add them to every request a page makes and a page cannot
    take them off; dockerd and other programs never send them.

    :param headers: the request's headers, by lower-case name.
    """
    for name in headers:
        if name == "origin" or name.startswith("sec-fetch-"):
            return "-".join(part.capitalize() for part in name.split("-"))
    return None


def encode(payload: Mapping[str, Any] | list[Any]) -> bytes:
    """Compact JSON with a trailing newline, as Go's ``json.Encoder`` writes it (never
    ``NaN`` or ``Infinity``, which are not JSON: a ``ValueError`` if one got this far)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def not_allowed(verb: str) -> tuple[int, bytes]:
    """The answer to any verb but POST: 405, with an empty body for HEAD."""
    body = b"" if verb == "HEAD" else encode({"Err": f"method {verb} not allowed; use POST"})
    return 405, body


def reason(status: int) -> str:
    """The reason phrase of ``status`` (``"Unknown"`` for a code HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def headers(body: bytes) -> list[tuple[str, str]]:
    """The headers of an answer carrying ``body``."""
    return [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
