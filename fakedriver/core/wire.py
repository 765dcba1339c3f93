"""Reading request bodies: one small reader per wire type, each raising
[`BadRequest`][fakedriver.BadRequest].

Docker's structs have no json tags, so keys are the Go field names (PascalCase) and every
field is always present. The readers are a little kinder than that: a missing optional
field reads as its zero value, as Go's decoder would give it. What they never accept is a
value of the wrong type or shape: a bare IP where the protocol says CIDR, or the reverse.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Body = Mapping[str, Any]

#: ADDR/LEN with a decimal length, as Go's parsers want it (no netmask form, no zones).
_CIDR = re.compile(r"[^/%]+/(0|[1-9][0-9]{0,2})")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_FAMILY = {4: "IPv4", 6: "IPv6"}


#: How deep a body may nest objects and arrays (``{"a": {"b": []}}`` nests 3 deep).
#: dockerd's bodies nest 3 or 4 deep (CreateNetwork's ``Options`` and ``IPv4Data``) and a
#: user's ``-o`` options are strings; deeper is refused, so no journal entry, log line or
#: saved record can be too deep for the code that copies and writes it.
MAX_DEPTH = 32

#: A ``\uD800``-``\uDFFF`` escape: the only way a JSON text in UTF-8 can name a surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class Unusable(ValueError):
    """Well-formed JSON the fake refuses: it could not be stored, journaled or logged."""


def strict_json(raw: bytes | str) -> Any:
    """``json.loads`` as Go's decoder reads JSON, refusing (a ``ValueError``) what the fake
    could not keep:

    * a body that is not UTF-8 (a byte-order mark, UTF-16, a surrogate encoded in UTF-8);
    * ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON;
    * a number beyond a 64-bit float (``1e400``, which Python would read as infinity);
    * a string with an unpaired surrogate (``"\\ud800"``), which is not Unicode text;
    * nesting deeper than `MAX_DEPTH` (an `Unusable`, as are the two above).

    The last two are looked for only when the raw text could hold them (a ``\\uD8``-style
    escape; more brackets than the limit), so an ordinary body costs what ``json.loads``
    does.
    """
    data = raw.encode("utf-8") if isinstance(raw, str) else raw  # a str: as it is sent
    text = data.decode("utf-8")  # strict: no surrogates, no BOM skipped
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise Unusable(f"body nests deeper than {MAX_DEPTH} objects and arrays") from None
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and too_deep(value):
        raise Unusable(f"body nests deeper than {MAX_DEPTH} objects and arrays")
    if b"\\u" in data and _SURROGATE_ESCAPE.search(data):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise Unusable(
                "body holds a string that is not Unicode text (an unpaired surrogate, "
                "\\ud800 to \\udfff)"
            ) from None
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


#: The largest magnitude a 64-bit float holds: Go's decoder refuses a number beyond it.
_FLOAT_MAX = sys.float_info.max


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise Unusable(f"number {_head(text)} is out of range (beyond a 64-bit float)")
    return value


def _int(text: str) -> int:
    # below 309 digits it is below 1e308; above, beyond (JSON has no leading zeros)
    if len(text) > 308 and (len(text.lstrip("-")) > 309 or abs(int(text)) > _FLOAT_MAX):
        raise Unusable(f"number {_head(text)} is out of range (beyond a 64-bit float)")
    return int(text)


def _head(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


def too_deep(value: Any) -> bool:
    """Whether ``value`` nests deeper than `MAX_DEPTH` (walked without recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def decode(raw: bytes, *, no_arguments: bool) -> dict[str, Any]:
    """Decode a request body into a JSON object.

    Calls without arguments accept an empty body (dockerd sends ``Content-Length: 0``) and
    ``null``; every other call needs an object. What `strict_json()` refuses (not
    UTF-8, not JSON, a number beyond a 64-bit float, an unpaired surrogate, nesting deeper
    than `MAX_DEPTH`) is a [`BadRequest`][fakedriver.BadRequest]: the call is answered 400 in its
    protocol's dialect and changes nothing.
    """
    if not raw.strip():
        return as_object(None, no_arguments=no_arguments, empty=True)
    return as_object(read_json(raw), no_arguments=no_arguments)


def read_json(raw: bytes) -> Any:
    """`strict_json()`, its refusals a [`BadRequest`][fakedriver.BadRequest] saying why."""
    try:
        return strict_json(raw)
    except Unusable as exc:
        raise BadRequest(f"invalid request: {exc}") from None
    except UnicodeDecodeError as exc:
        why = f"it is not UTF-8 ({exc.reason} at byte {exc.start})"
        raise BadRequest(f"invalid request: body is not JSON: {why}") from None
    except ValueError as exc:
        raise BadRequest(f"invalid request: body is not JSON: {exc}") from None


def as_object(value: Any, *, no_arguments: bool, empty: bool = False) -> dict[str, Any]:
    """The decoded ``value`` of a body (``empty``: there was none) as a request object; see
    `decode()`."""
    if empty and not no_arguments:
        raise BadRequest("invalid request: empty body, expected a JSON object")
    if value is None and no_arguments:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"invalid request: expected a JSON object, got {_kind(value)}")
    return value


def peek(raw: bytes) -> dict[str, Any] | None:
    """The request as a JSON object if it is one, else ``None`` (for matching fault rules
    and for the journal of a call that was not served)."""
    try:
        return decode(raw, no_arguments=True)
    except BadRequest:
        return None


def _kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def text(body: Body, key: str, *, required: bool = False) -> str:
    """A string field; ``required`` means present and non-empty."""
    value = body.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRequest(f"invalid request: {key} must be a string, got {_kind(value)}")
    if required and not value:
        raise BadRequest(f"invalid request: {key} is required")
    return value


def flag(body: Body, key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"invalid request: {key} must be a boolean, got {_kind(value)}")
    return value


def option_flag(options: Body, key: str, default: bool) -> bool:
    """A boolean option of an ``Options`` map (``com.docker.network.enable_ipv4``);
    ``default`` when absent or ``null``, as for a daemon that does not send it."""
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"invalid request: Options[{key}] must be a boolean, got {_kind(value)}")
    return value


def integer(body: Body, key: str) -> int:
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"invalid request: {key} must be an integer, got {_kind(value)}")
    return value


def mapping(body: Body, key: str) -> dict[str, Any]:
    """An object field; ``null`` or absent reads as ``{}``."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"invalid request: {key} must be an object, got {_kind(value)}")
    return value


def string_map(body: Body, key: str) -> dict[str, str]:
    """An object of string values, such as AllocateNetwork's or RequestPool's Options."""
    value = mapping(body, key)
    for name, item in value.items():
        if not isinstance(item, str):
            raise BadRequest(f"invalid request: {key}[{name!r}] must be a string")
    return value


def _version(value: IPAddress | IPInterface | IPNetwork, where: str, version: int | None) -> None:
    if version is not None and value.version != version:
        raise BadRequest(f"invalid request: {where}: {value} is not an {_FAMILY[version]} value")


def cidr(value: object, where: str, version: int | None = None) -> IPInterface:
    """An address with its prefix length, ``172.18.0.2/16``."""
    if not isinstance(value, str) or not _CIDR.fullmatch(value):
        raise BadRequest(f"invalid request: {where}: invalid CIDR address {value!r}")
    try:
        parsed = ipaddress.ip_interface(value)
    except ValueError:
        raise BadRequest(f"invalid request: {where}: invalid CIDR address {value!r}") from None
    _version(parsed, where, version)
    return parsed


def subnet(value: object, where: str, version: int | None = None) -> IPNetwork:
    """A network in CIDR form with no host bits set, ``172.18.0.0/16``."""
    if not isinstance(value, str) or not _CIDR.fullmatch(value):
        raise BadRequest(f"invalid request: {where}: invalid CIDR network {value!r}")
    try:
        parsed = ipaddress.ip_network(value)
    except ValueError:
        raise BadRequest(f"invalid request: {where}: invalid CIDR network {value!r}") from None
    _version(parsed, where, version)
    return parsed


def address(value: object, where: str, version: int | None = None) -> IPAddress:
    """A bare IP address, ``172.18.0.1`` (no prefix length)."""
    try:
        if not isinstance(value, str) or "%" in value:  # Go's parser refuses IPv6 zones
            raise ValueError
        parsed = ipaddress.ip_address(value)
    except ValueError:
        raise BadRequest(f"invalid request: {where}: invalid IP address {value!r}") from None
    _version(parsed, where, version)
    return parsed


def mac(value: object, where: str) -> str:
    """A MAC address in colon form, returned in lower case."""
    if not isinstance(value, str) or not _MAC.fullmatch(value):
        raise BadRequest(f"invalid request: {where}: invalid MAC address {value!r}")
    return value.lower()


@dataclass(frozen=True)
class IPAMData:
    """One entry of CreateNetwork's ``IPv4Data``/``IPv6Data``."""

    address_space: str
    pool: IPNetwork
    gateway: IPInterface | None = None
    aux_addresses: dict[str, IPInterface | None] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"AddressSpace": self.address_space, "Pool": str(self.pool)}
        if self.gateway is not None:
            out["Gateway"] = str(self.gateway)
        if self.aux_addresses:
            out["AuxAddresses"] = {
                name: "<nil>" if ip is None else str(ip) for name, ip in self.aux_addresses.items()
            }
        return out


def ipam_data(body: Body, key: str, version: int) -> list[IPAMData]:
    """Read ``IPv4Data`` or ``IPv6Data``: a list (or null) of IPAMData objects."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"invalid request: {key} must be an array, got {_kind(value)}")
    return [_ipam_entry(item, f"{key}[{i}]", version) for i, item in enumerate(value)]


def _ipam_entry(item: object, where: str, version: int) -> IPAMData:
    if not isinstance(item, dict):
        raise BadRequest(f"invalid request: {where} must be an object, got {_kind(item)}")
    pool = subnet(item.get("Pool"), f"{where}.Pool", version)
    gateway = None
    if text(item, "Gateway"):
        gateway = cidr(item["Gateway"], f"{where}.Gateway", version)
        _inside(gateway, pool, f"{where}.Gateway")
    aux: dict[str, IPInterface | None] = {}
    for name, raw in mapping(item, "AuxAddresses").items():
        # Docker writes "<nil>" for an aux address it stored as nil (protocol.md §2.3).
        if raw == "<nil>":
            aux[name] = None
            continue
        aux[name] = cidr(raw, f"{where}.AuxAddresses[{name!r}]", version)
        _inside(aux[name], pool, f"{where}.AuxAddresses[{name!r}]")
    return IPAMData(text(item, "AddressSpace"), pool, gateway, aux)


def _inside(value: IPInterface | None, pool: IPNetwork, where: str) -> None:
    if value is not None and value.ip not in pool:
        raise BadRequest(f"invalid request: {where}: {value} is outside the pool {pool}")

