"""What dockerd accepts of a plugin's answers: the one place that says it, per daemon version.

``dockerd_rejects(method, request, status, answer, dockerd="28")`` returns why dockerd
would treat the answer to ``method`` as a failed call, or ``None`` when it accepts it.
``answer`` is the decoded JSON value, or the raw response body as ``bytes`` (then the
body-decoding rules apply as well). Whether dockerd then only logs the failure (Leave,
DeleteEndpoint, IPAM GetCapabilities, ...; protocol.md §3.4) is `LOGGED_ONLY`; what it
sends to undo a call whose answer it refused is `rollback()`.

Go's ``encoding/json`` decides most of it (§1.4): the first JSON value of the body is
decoded into the method's response struct; keys match field names case-insensitively;
unknown keys are ignored; ``null`` leaves a field at its zero value; a value of the wrong
JSON type fails the whole decode. Section numbers (§) refer to the protocol notes the
fake is built on (moby's source: ``libnetwork/drivers/remote/driver.go``,
``libnetwork/ipams/remote/remote.go``, ``pkg/plugins/client.go``).

Two rule sets, as the daemons differ (`VERSIONS`): ``"20.10"`` (Debian's 20.10.24, the
daemon CI runs) and ``"28"`` (28.x). Where they differ:

* RequestPool's ``Pool``: 20.10 parses it with ``net.ParseCIDR`` (``invalid CIDR address:
  X``), 28 with ``netip.ParsePrefix`` (``netip.ParsePrefix("X"): no '/'``, which also
  refuses a prefix length with a leading zero);
* GetCapabilities' ``GwAllocChecker``: decoded by 28 only (20.10 ignores the key);
* what follows a served answer dockerd refuses (`rollback()`): 28 undoes a Join with
  Leave, then DeleteEndpoint, and any CreateEndpoint with DeleteEndpoint; 20.10 sends
  DeleteEndpoint alone after a Join, and undoes a CreateEndpoint only for an address or
  MAC conflict.
"""

from __future__ import annotations

import ipaddress
import json
import string
from collections.abc import Callable, Mapping
from typing import Any

Answer = Mapping[str, Any]
#: The daemon versions whose rules differ, and the one assumed unless told.
VERSIONS = ("20.10", "28")
DEFAULT_DOCKERD = "28"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# -- Go decoding ------------------------------------------------------------------------


def _fold(name: str) -> str:
    """Go's case-insensitive key match, one rune for one rune: for ASCII field names this
    is ASCII case plus U+017F (long s) ~ 's' and U+212A (Kelvin) ~ 'k' (§1.4.2)."""
    return "".join(f if len(f := c.casefold()) == 1 else c for c in name)


def go_field(obj: Answer, name: str) -> Any:
    """The value Go decodes into field ``name`` of ``obj``: the last key matching it
    case-insensitively; ``null`` clears maps, slices and pointers but leaves a string,
    bool or number as it was (Go merges duplicate objects; that is not modelled)."""
    value = None
    for key, item in obj.items():
        if _fold(key) == _fold(name) and (item is not None or isinstance(value, dict | list)):
            value = item
    return value


STRINGS = "map[string]string"
#: Response structs: field -> kind. A kind is a JSON type (``str``, ``bool``, ``int``,
#: ``dict`` for any object), ``STRINGS``, ``[kind]`` for a slice, or a nested struct dict.
#: The error field (``Err``/``Error``) is added per subsystem by :func:`_schema`.
SCHEMAS: dict[str, dict[str, Any]] = {
    "Plugin.Activate": {"Implements": [str]},
    "NetworkDriver.GetCapabilities": {
        "Scope": str,
        "ConnectivityScope": str,
        "GwAllocChecker": bool,
    },
    "NetworkDriver.GwAllocCheck": {"SkipIPv4": bool, "SkipIPv6": bool},
    "NetworkDriver.AllocateNetwork": {"Options": STRINGS},
    "NetworkDriver.CreateEndpoint": {
        "Interface": {"Address": str, "AddressIPv6": str, "MacAddress": str}
    },
    "NetworkDriver.EndpointOperInfo": {"Value": dict},
    "NetworkDriver.Join": {
        "InterfaceName": {"SrcName": str, "DstPrefix": str, "DstName": str},
        "Gateway": str,
        "GatewayIPv6": str,
        "StaticRoutes": [{"Destination": str, "RouteType": int, "NextHop": str}],
        "DisableGatewayService": bool,
    },
    "IpamDriver.GetCapabilities": {"RequiresMACAddress": bool, "RequiresRequestReplay": bool},
    "IpamDriver.GetDefaultAddressSpaces": {
        "LocalDefaultAddressSpace": str,
        "GlobalDefaultAddressSpace": str,
    },
    "IpamDriver.RequestPool": {"PoolID": str, "Pool": str, "Data": STRINGS},
    "IpamDriver.RequestAddress": {"Address": str, "Data": STRINGS},
}


def _schema(method: str, dockerd: str = DEFAULT_DOCKERD) -> dict[str, Any]:
    error = {"NetworkDriver": {"Err": str}, "IpamDriver": {"Error": str}}
    schema = {**error.get(method.partition(".")[0], {}), **SCHEMAS.get(method, {})}
    if dockerd == "20.10":  # GwAllocChecker came with 28.0.0: 20.10 ignores the key
        schema.pop("GwAllocChecker", None)
    return schema


def check_version(dockerd: str) -> str:
    """``dockerd`` if it names a rule set of `VERSIONS`, else `ValueError`."""
    if dockerd not in VERSIONS:
        raise ValueError(f"dockerd {dockerd!r}: the rules know {' and '.join(VERSIONS)}")
    return dockerd


def version_of(text: str) -> str:
    """The rule set of a daemon version as ``docker version`` prints it (``20.10.24+dfsg1``,
    ``28.3.3``): ``"28"`` from 28 on, ``"20.10"`` before (the rules between are not
    modelled: 20.10's are the nearer for most of them)."""
    major = text.strip().lstrip("v").partition(".")[0]
    if not major.isdigit():
        raise ValueError(f"not a daemon version: {text!r}")
    return "28" if int(major) >= 28 else "20.10"


def _json_kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean"}
    return names.get(type(value), "number")


def _type_error(value: object, kind: Any, where: str) -> str | None:
    """Go's "cannot unmarshal X into Go struct field ..." for ``value`` against ``kind``."""
    if value is None:
        return None
    if isinstance(kind, list):
        if not isinstance(value, list):
            return f"{where}: cannot unmarshal {_json_kind(value)} into a Go slice"
        errors = (_type_error(v, kind[0], f"{where}[{i}]") for i, v in enumerate(value))
        return next((e for e in errors if e), None)
    if kind is dict or kind == STRINGS:  # any object / map[string]string
        if not isinstance(value, dict):
            return f"{where}: cannot unmarshal {_json_kind(value)} into a Go map"
        for key, item in value.items() if kind == STRINGS else ():
            if item is not None and not isinstance(item, str):
                return f"{where}[{key!r}]: cannot unmarshal {_json_kind(item)} into a Go string"
        return None
    if isinstance(kind, dict):  # a struct: check the fields it knows, ignore other keys
        if not isinstance(value, dict):
            return f"{where}: cannot unmarshal {_json_kind(value)} into a Go struct"
        for key, item in value.items():
            for name in (n for n in kind if _fold(n) == _fold(key)):
                error = _type_error(item, kind[name], f"{where}.{name}")
                if error:
                    return error
        return None
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        go_type = {str: "string", bool: "bool", int: "int"}[kind]
        return f"{where}: cannot unmarshal {_json_kind(value)} into Go value of type {go_type}"
    return None


def decode_body(raw: bytes) -> tuple[Any, str | None]:
    """What ``json.Decoder.Decode`` makes of a 200 body: the first JSON value (trailing
    bytes are ignored), ``EOF`` for an empty body, an error for anything else (§1.4.2)."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")

    text = raw.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        return None, "EOF: a 200 answer needs a JSON body, at least {} (§1.4.2)"
    try:
        value, _ = json.JSONDecoder(parse_constant=no_constants).raw_decode(text)
    except ValueError as exc:
        return None, f"error reading plugin resp: {exc} (§1.4.2)"
    return value, None


# -- parsers as Go's net package has them -----------------------------------------------


def parse_ip(text: str) -> IPAddress | None:
    """``net.ParseIP``: a bare IPv4 or IPv6 address; no prefix length, no zone."""
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_prefix(text: str) -> IPInterface | None:
    """``netip.ParsePrefix``: ``address/length``, no zone, the length decimal without a
    leading zero; host bits allowed."""
    _, slash, length = text.partition("/")
    if not slash or (len(length) > 1 and length.startswith("0")):
        return None
    return parse_cidr(text)


def parse_cidr(text: str) -> IPInterface | None:
    """``net.ParseCIDR``: ``address/length`` with a decimal length; host bits allowed."""
    address, slash, length = text.partition("/")
    if not (slash and length.isascii() and length.isdigit()) or parse_ip(address) is None:
        return None
    try:
        return ipaddress.ip_interface(f"{address}/{int(length)}")
    except ValueError:
        return None


def is_mac(text: str) -> bool:
    """``net.ParseMAC``: 6, 8 or 20 bytes as ``aa:bb:..``, ``aa-bb-..`` or ``aabb.ccdd..``."""
    for separator, width in ((":", 2), ("-", 2), (".", 4)):
        parts = text.split(separator)
        if len(parts) > 1 and len(parts) * width // 2 in (6, 8, 20):
            hexes = all(len(p) == width and set(p) <= set(string.hexdigits) for p in parts)
            if hexes:
                return True
    return False


# -- the rules --------------------------------------------------------------------------

_OPTIONAL_404 = (
    "NetworkDriver.ProgramExternalConnectivity",
    "NetworkDriver.RevokeExternalConnectivity",
)


def rule_status(method: str, status: int) -> str | None:
    """§1.4.1, §2.11: every status but 200 is an error (201 and 204 too), except a 404
    from Program/RevokeExternalConnectivity, which counts as success."""
    if status == 200 or (status == 404 and method in _OPTIONAL_404):
        return None
    return f"HTTP {status}: dockerd treats every non-200 answer as an error (§1.4.1)"


def rule_error_field(method: str, answer: Answer) -> str | None:
    """§1.4.3, §6: a non-empty top-level ``Err`` fails a NetworkDriver call, a non-empty
    ``Error`` an IpamDriver call; the other subsystem's key is ignored."""
    key = {"NetworkDriver": "Err", "IpamDriver": "Error"}.get(method.partition(".")[0])
    message = go_field(answer, key) if key else None
    return f"remote: {message} (non-empty {key}, §1.4.3)" if message else None


def rule_activate(request: Answer, answer: Answer) -> str | None:
    """§1.2: ``Implements`` must list ``NetworkDriver`` or ``IpamDriver``."""
    implements = go_field(answer, "Implements") or []
    if {"NetworkDriver", "IpamDriver"} & set(implements):
        return None
    return f"Plugin does not implement the requested driver: Implements {implements!r} (§1.2)"


def rule_capabilities(request: Answer, answer: Answer) -> str | None:
    """§2.1: ``Scope`` is 'local' or 'global'; ``ConnectivityScope`` '', 'local' or 'global'."""
    scope = go_field(answer, "Scope") or ""
    if scope not in ("local", "global"):
        return f"invalid capability: expecting 'local' or 'global', got {scope!r} (§2.1)"
    connectivity = go_field(answer, "ConnectivityScope") or ""
    if connectivity not in ("", "local", "global"):
        return f"invalid ConnectivityScope {connectivity!r}: '', 'local' or 'global' (§2.1)"
    return None


def rule_create_endpoint(request: Answer, answer: Answer) -> str | None:
    """§2.6, §3.2: ``Interface.Address``/``AddressIPv6`` parse as CIDR and the family of the
    address picks the slot, which must be empty in the request; ``MacAddress`` parses and
    is only allowed when the request's ``MacAddress`` was empty."""
    given = go_field(answer, "Interface") or {}
    asked = go_field(request, "Interface") or {}
    addresses: list[tuple[str, IPInterface]] = []
    for key in ("Address", "AddressIPv6"):
        value = go_field(given, key) or ""
        parsed = parse_cidr(value) if value else None
        if value and parsed is None:
            return f"Interface.{key}: invalid CIDR address: {value} (§3.2)"
        if parsed is not None:
            addresses.append((key, parsed))
    mac = go_field(given, "MacAddress") or ""
    if mac and not is_mac(mac):
        return f"Interface.MacAddress: address {mac}: invalid MAC address (§3.2)"
    if mac and go_field(asked, "MacAddress"):
        return f"driver modified interface MAC address: request had one, answer sets {mac} (§3.2)"
    filled = {4: bool(go_field(asked, "Address")), 6: bool(go_field(asked, "AddressIPv6"))}
    for key, parsed in addresses:
        mapped = isinstance(parsed.ip, ipaddress.IPv6Address) and parsed.ip.ipv4_mapped is not None
        slot = 4 if parsed.version == 4 or mapped else 6  # Go: IP.To4() != nil
        if filled[slot]:
            return f"driver modified interface address: IPv{slot} slot is set, {key} (§3.2)"
        filled[slot] = True
    return None


def rule_join(request: Answer, answer: Answer) -> str | None:
    """§2.9, §3.3: ``Gateway``/``GatewayIPv6`` are bare IPs; each static route has a
    non-empty CIDR ``Destination`` (an empty one panics M28) and a bare-IP or empty
    ``NextHop``. (``InterfaceName`` being an object or null is a decoding rule.)"""
    for key in ("Gateway", "GatewayIPv6"):
        value = go_field(answer, key) or ""
        if value and parse_ip(value) is None:
            return f'unable to parse {key} "{value}" (§3.3)'
    for i, route in enumerate(go_field(answer, "StaticRoutes") or []):
        destination = go_field(route or {}, "Destination") or ""
        if not destination:
            return f"StaticRoutes[{i}]: empty Destination (panics dockerd, §3.3)"
        if parse_cidr(destination) is None:
            return f"StaticRoutes[{i}]: invalid CIDR address: {destination} (§3.3)"
        hop = go_field(route or {}, "NextHop") or ""
        if hop and parse_ip(hop) is None:
            return f"StaticRoutes[{i}]: failed to parse nexthop IP {hop} (§3.3)"
    return None


def rule_request_pool(
    request: Answer, answer: Answer, dockerd: str = DEFAULT_DOCKERD
) -> str | None:
    """§6: a ``Pool`` in strict CIDR network form and a non-empty ``PoolID``, checked in
    that order: dockerd parses the Pool first (an answer with neither, such as
    ``{"Err": "x"}``, fails 20.10's ``docker network create`` with ``invalid CIDR
    address: ``; 28 says ``netip.ParsePrefix(""): no '/'``).

    Stricter than dockerd's code: it does not check the PoolID, and both parsers accept
    host bits; both are asked of a good plugin here."""
    pool = go_field(answer, "Pool") or ""
    if dockerd == "20.10":
        parsed = parse_cidr(pool)
        error = f"RequestPool: invalid CIDR address: {pool} (§6)"
    else:
        parsed = parse_prefix(pool)
        why = "no '/'" if "/" not in pool else "unable to parse"
        error = f'RequestPool: netip.ParsePrefix("{pool}"): {why} (§6)'
    if parsed is None:
        return error
    if parsed.ip != parsed.network.network_address:
        return f"RequestPool: Pool {pool} has host bits set; expected {parsed.network} (§6)"
    if not go_field(answer, "PoolID"):
        return "RequestPool: empty PoolID (§6)"
    return None


def rule_request_address(request: Answer, answer: Answer) -> str | None:
    """§6: ``Address`` is non-empty and CIDR (``172.20.0.34/16``), never a bare IP."""
    address = go_field(answer, "Address") or ""
    if not address:
        return "no address returned (§6)"
    if parse_cidr(address) is None:
        return f"RequestAddress: invalid CIDR address: {address} (§6)"
    return None


Rule = Callable[[Answer, Answer], "str | None"]
#: Rules beyond decoding and the error field. GetDefaultAddressSpaces (strings) and
#: EndpointOperInfo (``Value`` an object) are decoding rules only, see SCHEMAS.
RULES: dict[str, Rule] = {
    "Plugin.Activate": rule_activate,
    "NetworkDriver.GetCapabilities": rule_capabilities,
    "NetworkDriver.CreateEndpoint": rule_create_endpoint,
    "NetworkDriver.Join": rule_join,
    "IpamDriver.RequestAddress": rule_request_address,
}

#: Calls whose failure dockerd only logs (§3.4): the docker command goes on.
LOGGED_ONLY = frozenset(
    {
        "NetworkDriver.DeleteNetwork",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "NetworkDriver.EndpointOperInfo",
        "NetworkDriver.DiscoverNew",
        "NetworkDriver.DiscoverDelete",
        "NetworkDriver.FreeNetwork",
        "IpamDriver.GetCapabilities",
        "IpamDriver.ReleasePool",
        "IpamDriver.ReleaseAddress",
    }
)


def dockerd_rejects(
    method: str,
    request: Answer | None,
    status: int,
    answer: object,
    dockerd: str = DEFAULT_DOCKERD,
) -> str | None:
    """Why dockerd fails the call ``method`` (``NetworkDriver.Join``, a leading ``/`` is
    fine) answered with ``status`` and ``answer``, or ``None`` when it accepts it.

    ``request`` is the request dockerd sent (CreateEndpoint's answer depends on it);
    ``answer`` the decoded answer, or the raw body as ``bytes``; ``dockerd`` the rule set
    (`VERSIONS`)."""
    check_version(dockerd)
    method = method.lstrip("/")
    if status != 200:
        return rule_status(method, status)
    if isinstance(answer, bytes | bytearray):
        answer, error = decode_body(bytes(answer))
        if error:
            return error
    if answer is None:  # the body `null`: an all-zero response (§1.4.2)
        answer = {}
    if not isinstance(answer, dict):
        return f"cannot unmarshal {_json_kind(answer)}: a 200 answer must be a JSON object (§1.4.2)"
    decoding = _type_error(answer, _schema(method, dockerd), "answer")
    if decoding:
        return f"{method}: error reading plugin resp: json: {decoding} (§1.4.2)"
    error = rule_error_field(method, answer)
    if error:
        return error
    if method == "IpamDriver.RequestPool":
        return rule_request_pool(request or {}, answer, dockerd)
    rule = RULES.get(method)
    return rule(request or {}, answer) if rule else None


def rollback(method: str, why: str, dockerd: str = DEFAULT_DOCKERD) -> tuple[str, ...]:
    """What dockerd sends the plugin after it refused the *served* answer to ``method``
    for the reason ``why`` (as `dockerd_rejects()` gives it): the calls that undo it, in
    order (§3.2, §3.3). An answer refused for its status, its error field or its
    decoding is a failed call to dockerd: a failed Join is still followed by
    DeleteEndpoint, as the endpoint is deleted; a failed CreateEndpoint by nothing.

    * Join: 28 sends Leave for any failure after a successful Join call, then the
      endpoint is deleted; 20.10 sends no Leave for an answer it cannot parse.
    * CreateEndpoint: 28 sends DeleteEndpoint for any failure after the call; 20.10 only
      for an address or MAC conflict (``driver modified interface ...``).
    """
    check_version(dockerd)
    method = method.lstrip("/")
    failed_call = why.startswith(("HTTP ", "remote: ", "EOF", "cannot unmarshal"))
    served = not (failed_call or "error reading plugin resp" in why)
    if method == "NetworkDriver.Join":
        if served and dockerd == "28":
            return ("NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint")
        return ("NetworkDriver.DeleteEndpoint",)
    conflict = "driver modified interface" in why
    if method == "NetworkDriver.CreateEndpoint" and served and (dockerd == "28" or conflict):
        return ("NetworkDriver.DeleteEndpoint",)
    return ()
