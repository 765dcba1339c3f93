"""One call as it arrives: its method and its body, decoded once.

Everything that reads a call's request (the fault rules that match on its fields, the
protocol model that serves it, the journal entry, served or not) reads this value, never
the raw body again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .wire import as_object, read_json


@dataclass(frozen=True)
class Request:
    """One call's request, its body decoded once (see `read()`).

    :param method: ``"NetworkDriver.Join"``: the path without its leading slash.
    :param raw: the body, as it came.
    :param value: the decoded body (``None`` when there was none, or it was not JSON).
    :param error: why the body is not JSON the fake can keep, else ``None``.
    :param empty: the body is empty or only white space.
    """

    method: str
    raw: bytes
    value: Any = None
    error: str | None = None
    empty: bool = False

    @classmethod
    def read(cls, path: str, raw: bytes) -> Request:
        """The call to ``path`` (``/NetworkDriver.Join``; the slash is optional) with the
        body ``raw``, decoded here and only here."""
        method = path.lstrip("/")
        if not raw.strip():
            return cls(method, raw, empty=True)
        try:
            return cls(method, raw, read_json(raw))
        except BadRequest as exc:
            return cls(method, raw, error=exc.message)

    def body(self, *, no_arguments: bool) -> dict[str, Any]:
        """The request object the method is served with; [`BadRequest`][fakedriver.BadRequest]
        when there is none (see ``wire.decode()``: a method ``no_arguments`` takes an empty
        body or ``null``)."""
        if self.error is not None:
            raise BadRequest(self.error)
        return as_object(self.value, no_arguments=no_arguments, empty=self.empty)

    @property
    def fields(self) -> dict[str, Any] | None:
        """The request as a JSON object if it is one (an empty body or ``null``: ``{}``),
        else ``None``: what fault rules match on, and what the journal shows of a call
        that was not served."""
        if self.error is not None:
            return None
        if self.value is None:  # an empty body too
            return {}
        return self.value if isinstance(self.value, dict) else None
