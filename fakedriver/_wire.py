"""Reading request bodies: one small reader per wire type, each raising :class:`BadRequest`.

Docker's structs have no json tags, so keys are the Go field names (PascalCase) and every
field is always present. The readers are a little kinder than that: a missing optional
field reads as its zero value, as Go's decoder would give it. What they never accept is a
value of the wrong type or shape: a bare IP where the protocol says CIDR, or the reverse.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Body = Mapping[str, Any]

#: ADDR/LEN with a decimal length, as Go's parsers want it (no netmask form, no zones).
_CIDR = re.compile(r"[^/%]+/(0|[1-9][0-9]{0,2})")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_FAMILY = {4: "IPv4", 6: "IPv6"}


def strict_json(raw: bytes | str) -> Any:
    """``json.loads`` as Go's decoder reads JSON: ``NaN``, ``Infinity`` and ``-Infinity``
    are not JSON, so they are refused (a ``ValueError``) rather than read as floats."""
    return json.loads(raw, parse_constant=_not_json)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def decode(raw: bytes, *, no_arguments: bool) -> dict[str, Any]:
    """Decode a request body into a JSON object.

    Calls without arguments accept an empty body (dockerd sends ``Content-Length: 0``) and
    ``null``; every other call needs an object.
    """
    if not raw.strip():
        if no_arguments:
            return {}
        raise BadRequest("invalid request: empty body, expected a JSON object")
    try:
        value = strict_json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid request: body is not JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("invalid request: body is nested too deeply") from None
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

