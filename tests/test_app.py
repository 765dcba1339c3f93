"""The WSGI layer: routing, the two error dialects, malformed input, journal, reset, seed."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import traceback
import types
import typing

import pytest
import requests
import responses
from support.wire import NET, Wire

import fakedriver
from fakedriver import METHODS, FakeNetDriver
from fakedriver.core import state as _state


def test_activate_lists_what_the_persona_implements() -> None:
    assert Wire(FakeNetDriver()).ok("Plugin.Activate") == {
        "Implements": ["NetworkDriver", "IpamDriver"]
    }
    assert Wire(FakeNetDriver(ipam=False)).ok("Plugin.Activate") == {
        "Implements": ["NetworkDriver"]
    }
    assert Wire(FakeNetDriver(network=False)).ok("Plugin.Activate") == {
        "Implements": ["IpamDriver"]
    }


def test_every_method_is_routed(wire: Wire) -> None:
    assert len(METHODS) == 1 + 15 + 6
    for method in METHODS:
        status, answer = wire(method, {})
        assert status != 404, (method, answer)


@pytest.mark.parametrize("body", [b"", b"null", b"{}", b"\n"])
def test_no_argument_calls_accept_an_empty_body(wire: Wire, body: bytes) -> None:
    for method in (
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "IpamDriver.GetCapabilities",
        "IpamDriver.GetDefaultAddressSpaces",
    ):
        status, answer = wire.raw(method, body)
        assert status == 200 and "Err" not in answer and "Error" not in answer


def test_requests_need_no_content_type(fake: FakeNetDriver) -> None:
    # dockerd sends no Content-Type; the body is read whatever the headers say.
    response = Wire(fake).client.post(
        "/NetworkDriver.CreateNetwork",
        data=json.dumps({"NetworkID": NET}) + "\n",
        headers={"Content-Type": ""},
    )
    assert response.status_code == 200 and response.get_json(force=True) == {}
    assert response.content_type == "application/vnd.docker.plugins.v1.2+json"
    assert response.get_data().endswith(b"}\n")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "invalid request: body is not JSON: "),
        (b"[1]", "invalid request: expected a JSON object, got array"),
        (b"", "invalid request: empty body, expected a JSON object"),
        (b"\xff\xfe", "invalid request: body is not JSON: "),
        (b'{"NetworkID": ["x"]}', "invalid request: NetworkID must be a string, got array"),
        (
            b'{"NetworkID": "n", "IPv4Data": {}}',
            "invalid request: IPv4Data must be an array, got object",
        ),
        (
            b'{"NetworkID": "n", "IPv4Data": [{"Pool": "10.0.0.0/8", "Gateway": "10.0.0.1"}]}',
            "invalid request: IPv4Data[0].Gateway: invalid CIDR address '10.0.0.1'",
        ),
        (
            b'{"NetworkID": "n", "IPv4Data": [{"Pool": "10.0.0.0/8", "Gateway": "11.0.0.1/8"}]}',
            "invalid request: IPv4Data[0].Gateway: 11.0.0.1/8 is outside the pool 10.0.0.0/8",
        ),
        (
            b'{"NetworkID": "n", "IPv6Data": [{"Pool": "10.0.0.0/8"}]}',
            "invalid request: IPv6Data[0].Pool: 10.0.0.0/8 is not an IPv6 value",
        ),
        (
            b'{"NetworkID": "n", "Options": {"com.docker.network.generic": "x"}}',
            "invalid request: Options[com.docker.network.generic] must be an object",
        ),
    ],
)
def test_malformed_network_requests_get_400_with_err(wire: Wire, body: bytes, message: str) -> None:
    before = wire.fake.state.snapshot()
    status, answer = wire.raw("NetworkDriver.CreateNetwork", body)
    assert status == 400 and set(answer) == {"Err"} and answer["Err"].startswith(message)
    assert wire.fake.state.snapshot() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "invalid request: body is not JSON: "),
        (b'{"AddressSpace": "LocalDefault", "V6": "yes"}', "invalid request: V6 must be a boolean"),
        (
            b'{"AddressSpace": "LocalDefault", "Options": {"a": 1}}',
            "invalid request: Options['a'] must be a string",
        ),
    ],
)
def test_malformed_ipam_requests_get_400_with_error(wire: Wire, body: bytes, message: str) -> None:
    status, answer = wire.raw("IpamDriver.RequestPool", body)
    assert status == 400 and set(answer) == {"Error"} and answer["Error"].startswith(message)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Address", "10.0.0.2", "invalid CIDR address '10.0.0.2'"),
        ("AddressIPv6", "10.0.0.2/24", "10.0.0.2/24 is not an IPv6 value"),
        ("MacAddress", "02:42:ac:11:00", "invalid MAC address '02:42:ac:11:00'"),
    ],
)
def test_bad_interface_values_are_malformed(
    wire: Wire, field: str, value: str, message: str
) -> None:
    wire.network()
    body = {"NetworkID": NET, "EndpointID": "e", "Interface": {field: value}}
    assert wire.refused("NetworkDriver.CreateEndpoint", body, 400) == (
        f"invalid request: Interface.{field}: {message}"
    )


def test_unknown_methods_and_verbs(wire: Wire) -> None:
    assert (
        wire.refused("NetworkDriver.Frobnicate", {}, 404)
        == "unknown method NetworkDriver.Frobnicate"
    )
    assert wire.refused("IpamDriver.Frobnicate", {}, 404) == "unknown method IpamDriver.Frobnicate"
    assert wire.refused("VolumeDriver.Create", {}, 404) == "unknown method VolumeDriver.Create"
    response = wire.client.get("/Plugin.Activate")
    assert response.status_code == 405 and response.get_json(force=True) == {
        "Err": "method GET not allowed; use POST"
    }


def test_a_subsystem_the_persona_lacks_answers_404() -> None:
    wire = Wire(FakeNetDriver(ipam=False))
    assert wire.refused("IpamDriver.GetCapabilities", None, 404) == (
        "this plugin does not implement IpamDriver"
    )


def test_the_journal_records_every_call(wire: Wire, fake: FakeNetDriver) -> None:
    wire.ok("Plugin.Activate")
    wire.network()
    wire.raw("NetworkDriver.Join", b"nonsense")
    first, second, third = fake.calls
    assert (first.index, first.method, first.request, first.status, first.ok) == (
        0,
        "Plugin.Activate",
        {},
        200,
        True,
    )
    assert second.request is not None and second.request["NetworkID"] == NET
    assert second.response == {} and second.timestamp > 0
    assert (third.method, third.request, third.status, third.ok) == (
        "NetworkDriver.Join",
        None,
        400,
        False,
    )
    assert third.error is not None and third.error.startswith("invalid request: body is not JSON")
    assert str(third).startswith("#2 NetworkDriver.Join -> ERROR 400: invalid request")


def test_reset_forgets_everything_but_the_persona(wire: Wire) -> None:
    fake = FakeNetDriver(scope="global")
    wire = Wire(fake)
    wire.network()
    mac = wire.endpoint()["Interface"]["MacAddress"]
    fake.reset()
    assert fake.state.networks == {} and fake.calls == [] and fake.violations == []
    assert fake.persona.scope == "global"
    wire.network()
    assert wire.endpoint()["Interface"]["MacAddress"] == mac  # reseeded


def test_the_seed_makes_generated_values_reproducible() -> None:
    def macs(seed: int) -> list[str]:
        wire = Wire(FakeNetDriver(seed=seed))
        wire.network()
        return [
            wire.endpoint(eid=f"e{i}", address=f"10.0.0.{i + 2}/24")["Interface"]["MacAddress"]
            for i in range(5)
        ]

    assert macs(7) == macs(7)
    assert macs(7) != macs(8)
    assert len(set(macs(7))) == 5


@responses.activate
def test_handle_serves_any_transport() -> None:
    """``handle`` is the protocol without HTTP, so any client library can be routed to it."""
    fake = FakeNetDriver()

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = request.body or b""
        status, answer = fake.handle(
            request.path_url, body if isinstance(body, bytes) else body.encode()
        )
        return status, {}, json.dumps(answer)

    responses.add_callback(responses.POST, "http://plugin/Plugin.Activate", callback=callback)
    assert requests.post("http://plugin/Plugin.Activate").json()["Implements"][0] == "NetworkDriver"


def test_exported_members() -> None:
    # (pytest's assertion rewriting may add "@py_builtins" to the package it rewrites;
    # a public submodule, fakedriver.pytest_plugin, is an attribute once imported)
    public = {
        name
        for name in dir(fakedriver)
        if not name.startswith(("_", "@"))
        and not isinstance(getattr(fakedriver, name), types.ModuleType)
    }
    assert sorted(public - {"annotations"}) == sorted(set(fakedriver.__all__) - {"__version__"})


#: Public names that are data, documented where they are defined (``#:`` comments).
DATA = {"KINDS", "METHODS", "__version__"}


@pytest.mark.parametrize("name", sorted(set(fakedriver.__all__) - DATA))
def test_every_public_name_has_a_docstring(name: str) -> None:
    """The API reference is generated from docstrings: none may be missing, and no public
    method of a public class either."""
    obj = getattr(fakedriver, name)
    assert inspect.getdoc(obj), f"fakedriver.{name} has no docstring"
    if inspect.isclass(obj) and getattr(_state, name, None) is not obj:  # (being rewritten)
        for member, value in vars(obj).items():
            if member.startswith("_") or (not callable(value) and not isinstance(value, property)):
                continue
            assert inspect.getdoc(value), f"fakedriver.{name}.{member} has no docstring"


@pytest.mark.parametrize("name", sorted(set(fakedriver.__all__) - DATA))
def test_every_public_name_is_shown_where_it_is_imported_from(name: str) -> None:
    """``fakedriver.LeakError``, not ``fakedriver.core.audit.LeakError``: the name a traceback,
    a repr or the API reference shows is one a user can import, and it is the same object;
    a class's annotations still resolve (``typing.get_type_hints``)."""
    obj = getattr(fakedriver, name)
    module, _, qualname = f"{obj.__module__}.{obj.__qualname__}".rpartition(".")
    assert (module, qualname) == ("fakedriver", name)
    assert getattr(importlib.import_module(module), qualname) is obj
    if inspect.isclass(obj):
        typing.get_type_hints(obj)


def test_a_traceback_names_the_errors_as_they_are_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNetDriver()
    fake.handle("/NetworkDriver.CreateNetwork", json.dumps({"NetworkID": NET}).encode())
    with pytest.raises(fakedriver.LeakError) as leaked:
        fake.assert_clean()
    shown = "".join(traceback.format_exception(leaked.value))
    assert "\nfakedriver.LeakError: the driver was left with 1 leak(s)" in shown, shown
    monkeypatch.setitem(sys.modules, "respx", None)  # as if not installed
    with pytest.raises(fakedriver.MissingExtra) as missing:
        fake.httpx_client()
    shown = "".join(traceback.format_exception(missing.value))
    assert "\nfakedriver.MissingExtra: routing httpx calls needs" in shown, shown


def test_the_version_has_one_source() -> None:
    """``__version__`` is what the installed metadata says (pyproject reads it from there)."""
    from importlib.metadata import version

    assert fakedriver.__version__ == version("fakedriver")


# -- the fake is its driver, built whole ------------------------------------------------------
def test_a_fake_is_its_driver_built_whole() -> None:
    """``FakeNetDriver`` is a `Driver`: its journal, state and rules are its own, made as
    its constructor says (the journal's bounds too), and a bare driver serves calls."""
    fake = FakeNetDriver(journal_size=2, scope="global")
    assert isinstance(fake, fakedriver.Driver) and fake.persona.scope == "global"
    for _ in range(3):
        Wire(fake).ok("Plugin.Activate")
    assert [call.index for call in fake.calls] == [1, 2]
    assert fake.calls_since(0) == (list(fake.calls), 1, 3)
    assert fakedriver.Driver().handle("/Plugin.Activate", b"")[0] == 200
    with pytest.raises(ValueError, match="at least one call"):
        FakeNetDriver(journal_size=0)


def test_add_rules_says_where_the_rules_went() -> None:
    fake = FakeNetDriver()
    first, second, third = (fakedriver.Rule("Join", name=name) for name in "abc")
    assert fake.add_rules([first, second]) == range(2)
    assert fake.add_rules([third], first=True) == range(1)
    assert [rule.name for rule in fake.faults.rules] == ["c", "a", "b"]


def test_fake_engine_is_a_deprecated_alias_of_the_fake() -> None:
    fake = FakeNetDriver()
    with pytest.warns(DeprecationWarning, match="FakeNetDriver.engine is deprecated"):
        engine = fake.engine
    assert engine is fake
