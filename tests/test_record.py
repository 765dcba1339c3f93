"""``fakedriver record``: a transparent proxy in front of a plugin (or of a fake of its own)
that writes every exchange to a session file; the session replays against the fake
(`fakedriver.conformance.replay`) and through ``fakedriver check --session``."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.serve_env import Conn, dockerd_request, read_response

from fakedriver import FakeNetDriver, serving
from fakedriver.conformance import ReplayError, load, replay
from fakedriver.conformance.client import Client, Target
from fakedriver.conformance.recorder import Recorder
from fakedriver.conformance.session import Replay, capture

pytestmark = pytest.mark.socket  # the socket tier: the recorder proxies a real socket

NET = "ab" * 32


class Upstream:
    """A plugin that keeps the bytes of each request it gets and answers ``{}``."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen()
        self.got: list[bytes] = []
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            self.conn = conn
            conn.settimeout(10)
            data = b""
            while True:
                head, sep, rest = data.partition(b"\r\n\r\n")
                if sep:
                    length = next(
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    if len(rest) >= length:
                        self.got.append(head + sep + rest[:length])
                        data = rest[length:]
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Up: 1\r\n\r\n{}\n")
                        continue
                more = conn.recv(65536)
                if not more:
                    return
                data += more

    def close(self) -> None:
        self.sock.close()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture
def recorded(short_dir: Path) -> Iterator[tuple[Recorder, io.StringIO, Upstream]]:
    upstream = Upstream(short_dir / "up.sock")
    out = io.StringIO()
    recorder = Recorder(
        str(short_dir / "rec.sock"),
        out,
        upstream=Target("up", path=str(short_dir / "up.sock")),
        dockerd="20.10.24",
    )
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    yield recorder, out, upstream
    recorder.close()
    upstream.close()
    thread.join(timeout=10)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_request_is_forwarded_unchanged_and_recorded(
    recorded: tuple[Recorder, io.StringIO, Upstream], short_dir: Path
) -> None:
    _recorder, out, upstream = recorded
    sent = [
        dockerd_request("Plugin.Activate"),
        dockerd_request("NetworkDriver.DeleteNetwork", {"NetworkID": NET}),
    ]
    with Conn(str(short_dir / "rec.sock")) as conn:  # one keep-alive connection, as dockerd
        for raw in sent:
            conn.sock.sendall(raw)
            response = read_response(conn.stream)
            assert (response.status, response.body) == (200, b"{}\n")
    assert upstream.got == sent  # the same bytes: path, headers in their order, body
    session, *exchanges = _lines(out)
    assert session["marker"] == "session" and session["dockerd"] == "20.10.24"
    assert [e["seq"] for e in exchanges] == [1, 2]
    second = exchanges[1]
    assert second["path"] == "/NetworkDriver.DeleteNetwork"
    assert second["header_list"] == [
        ["Host", ""],
        ["User-Agent", "Go-http-client/1.1"],
        ["Content-Length", str(len(second["body_raw"]))],
        ["Accept", "application/vnd.docker.plugins.v1.2+json"],
    ]
    assert second["body"] == {"NetworkID": NET} and second["body_raw"].endswith("}\n")
    assert (second["status"], second["response"], second["response_raw"]) == (200, {}, "{}\n")
    assert ["X-Up", "1"] in second["response_headers"]
    assert second["dur_ms"] >= 0 and second["ts"].endswith("+00:00")


def test_a_mark_starts_a_step_and_is_not_forwarded(
    recorded: tuple[Recorder, io.StringIO, Upstream], short_dir: Path
) -> None:
    _recorder, out, upstream = recorded
    client = Client(Target("rec", path=str(short_dir / "rec.sock")))
    client.call("fakedriver/mark", {"desc": "network create"})
    client.call("Plugin.Activate")
    client.close()
    assert len(upstream.got) == 1
    lines = _lines(out)
    assert lines[1] == {**lines[1], "marker": "begin", "step": 1, "desc": "network create"}
    steps = load_lines(out)
    assert [str(s) for s in steps] == ["step 1 (network create)"]


def load_lines(out: io.StringIO) -> list[Any]:
    path = Path(f"/tmp/fdt-session-{time.monotonic_ns()}.jsonl")
    path.write_text(out.getvalue())
    try:
        return load(path)
    finally:
        path.unlink()


def test_an_upstream_that_is_gone_is_a_connection_closed(short_dir: Path) -> None:
    out = io.StringIO()
    recorder = Recorder(
        str(short_dir / "rec.sock"), out, upstream=Target("x", path=str(short_dir / "none.sock"))
    )
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        exchange = Client(Target("rec", path=str(short_dir / "rec.sock")), timeout=5).call(
            "Plugin.Activate"
        )
    finally:
        recorder.close()
    assert exchange.error is not None and "closed" in exchange.error
    (recorded,) = _lines(out)[1:]
    assert recorded["status"] == 0 and recorded["error"]


def _drive_capture(socket_path: str, dockerd: str) -> int:
    """Send the calls of a capture to ``socket_path`` as dockerd did, mapped to the
    plugin's answers by the package's replay engine, marking each docker step."""
    client = Client(Target("rec", path=socket_path))
    driver = Replay(client.send)
    for step in load(capture(dockerd)):
        client.call("fakedriver/mark", {"desc": step.desc})
        for record in step.calls:
            driver.call(step, record)
    client.close()
    assert driver.problems == []
    return driver.sent


def test_record_in_front_of_a_fake_then_replay_the_session(short_dir: Path) -> None:
    """``fakedriver record --upstream`` in front of a served fake, fed a capture's calls;
    the session replays clean against a new fake and through ``check --session``."""
    session = short_dir / "session.jsonl"
    with serving() as upstream:
        rec = subprocess.Popen(
            [sys.executable, "-m", "fakedriver", "record", "--upstream", upstream.socket_path,
             "--socket", str(short_dir / "rec.sock"), "--out", str(session),
             "--dockerd-version", "28.3.3"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _wait_for_socket(short_dir / "rec.sock", rec)
            sent = _drive_capture(str(short_dir / "rec.sock"), "28")
        finally:
            rec.terminate()
            _, err = rec.communicate(timeout=20)
        assert rec.returncode == 0, err
        assert f"recorded {sent} exchange(s)" in err
        assert len(upstream.fake.calls) == sent
    steps = load(session)
    assert sum(len(s.calls) for s in steps) == sent and len(steps) == 48
    runner = replay(FakeNetDriver(), session)
    assert runner.sent == sent
    with serving() as other:
        done = subprocess.run(
            [sys.executable, "-m", "fakedriver", "check", "--session", str(session),
             other.socket_path],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "PASS sequences/session" in done.stdout
        assert other.fake.leaks() == []


def test_record_with_no_upstream(short_dir: Path) -> None:
    session = short_dir / "s.jsonl"
    rec = subprocess.Popen(
        [sys.executable, "-m", "fakedriver", "record", "--no-upstream",
         "--socket", str(short_dir / "rec.sock"), "--out", str(session)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = Client(Target("rec", path=str(short_dir / "rec.sock")))
    try:
        _wait_for_socket(short_dir / "rec.sock", rec)
        answer = client.call("Plugin.Activate")
    finally:
        client.close()
        rec.terminate()
        rec.communicate(timeout=20)
    assert answer.status == 200 and answer.answer == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert load(session)[0].calls[0]["response"] == answer.answer


def test_a_replay_fails_at_the_first_refusal_naming_the_step(short_dir: Path) -> None:
    session = short_dir / "s.jsonl"
    out = io.StringIO()
    with serving() as upstream:
        recorder = Recorder(
            str(short_dir / "rec.sock"), out, upstream=Target("u", path=upstream.socket_path)
        )
        threading.Thread(target=recorder.serve_forever, daemon=True).start()
        try:
            _drive_capture(str(short_dir / "rec.sock"), "20.10")
        finally:
            recorder.close()
    session.write_text(out.getvalue())
    fake = FakeNetDriver()
    fake.fail("Join", kind="answer", answer={"Gateway": "10.0.0.1/24"})
    with pytest.raises(
        ReplayError, match=r"^step 14 \(start container\), seq \d+ NetworkDriver.Join: "
    ):
        replay(fake, session)


def _wait_for_socket(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"fakedriver record exited: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            pytest.fail("fakedriver record did not listen within 20 s")
        time.sleep(0.02)
