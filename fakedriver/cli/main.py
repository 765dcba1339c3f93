"""``fakedriver serve``: run the fake as a plugin that a real dockerd loads (the flags are
in ``args.py``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

from ..core.changes import LinkAdded, LinkDropped
from ..core.clock import RealClock
from ..core.ports import Links, StoreError
from ..fake import FakeNetDriver
from ..persist.store import StateFileError, Store
from ..plugin.bundle import BundleError
from ..server.connection import Limits
from ..server.control import control
from ..server.dashboard import listen, local, loopback, url
from ..server.files import ServeError
from ..server.log import printable
from ..server.server import PLUGIN_DIR, SPEC_DIR, PluginServer
from ..server.veth import Checkpointed, VethLinks, reconcile
from .args import (
    ARGV_TOKEN,
    DEFAULT_NAME,
    check_serve_args,
    conflicts,
    control_token,
    parser,
)
from .check import check_command, record_command
from .dashboard import dashboard_command
from .files import check_regular
from .options import persona_from
from .plugin import plugin_command
from .state import state_command


class Interrupted(BaseException):
    """A stop signal came while ``serve`` was starting: the start is abandoned, and what
    it made is removed on the way out. A `BaseException`, as `KeyboardInterrupt` is, so
    that no ``except Exception`` takes it for an error of the start."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP stop ``serve``.

    During the start (until `started()`), the first one ends it at once, wherever the
    main thread is: its handler raises `Interrupted`, which also cuts a system call
    that Python would otherwise retry (a read of a slow file, an ``ip`` that hangs);
    only the parts that make files and record them (`deferred()`) finish first.

    Once serving, nothing happens when one comes: the handlers run no code of the
    server. Python's own handler writes the signal's number to a pipe
    (`signal.set_wakeup_fd()`), the main thread waits on it (`wait()`), and the shutdown
    that follows runs once, uninterrupted: a second signal is ignored (an exception
    raised by a handler would land anywhere, the shutdown itself included)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self.starting = True
        self._deferring = 0
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
        self._old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._old = {signum: signal.signal(signum, self._noted) for signum in self.SIGNALS}

    def _noted(self, signum: int, frame: object) -> None:
        """A stop signal's Python handler: the first one is noted, and ends a start
        (outside `deferred()`); after the start, the wakeup pipe has its number."""
        if self.received is not None:
            return
        self.received = signum
        if self.starting and not self._deferring:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A part of the start that a signal does not cut (it makes a file and records
        it, so that the way out removes it): a signal that came meanwhile ends the start
        when it is over."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if self.starting and not self._deferring and self.received is not None:
            raise Interrupted(self.received)

    def started(self) -> None:
        """The start is over: from now on a stop signal only wakes `wait()`."""
        self.starting = False

    def serving(self) -> int:
        """`started()`, then `wait()`: what a command does once it serves."""
        self.started()
        return self.wait()

    def wait(self) -> int:
        """Block until a stop signal comes (or came since the start); its number."""
        while self.received is None:
            select.select([self._read], [], [])
            with contextlib.suppress(BlockingIOError):
                numbers = os.read(self._read, 64)
                self.received = next((n for n in numbers if n in self.SIGNALS), None)
        return self.received

    def close(self) -> None:
        """Stop listening for signals. After one came the process is stopping, so later
        ones stay ignored up to its exit; otherwise the former handlers are back."""
        self.starting = False
        for signum, old in self._old.items():
            signal.signal(signum, signal.SIG_IGN if self.received is not None else old)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self._read)
        os.close(self._write)


def build(args: argparse.Namespace, stop: StopSignals | None = None) -> FakeNetDriver:
    """The driver ``fakedriver serve`` runs, from its parsed arguments, built whole: with
    ``--state`` it holds the store (which it closes, in `FakeNetDriver.close()`). ``stop``:
    the start's signals, which do not cut the opening of the state file."""
    for path, what in ((args.faults, "fault scenario"), (args.state, "state file")):
        if path:  # read by loaders of other layers: refused here, before anything is made
            check_regular(path, f"{what} {path}")
    veth = args.links == "veth"
    # a gateway with no interface makes dockerd fail the start: by default, only with links
    persona = persona_from(args, join_gateway=veth)
    links: Links | None = VethLinks() if veth else None
    store: Store | None = None
    try:
        with stop.deferred() if stop is not None else contextlib.nullcontext():
            store = Store.open(args.state) if args.state else None
        for note in store.notes if store is not None else ():  # said even --quiet
            _say(args, f"fakedriver: {note}")  # a file made private
        if store is not None and links is not None:  # the intent to make a pair: saved first
            saving = store
            links = Checkpointed(links, lambda eid: saving.commit(app.state, [LinkAdded(eid)]))
        app = FakeNetDriver(
            persona,
            links=links,
            clock=RealClock(),
            store=store,
            state=store.load() if store is not None else None,
            journal_size=args.journal_size,  # a ring: serve runs for long
            journal_bytes=args.journal_bytes,
        )
        if args.faults:
            app.faults.load(args.faults)
    except BaseException:
        if store is not None:
            store.close()
        raise
    return app


def _reconcile(args: argparse.Namespace, app: FakeNetDriver, stop: StopSignals) -> None:
    """Make the host agree with the loaded state's links, and say so: once the socket is
    ours (no live server shares them) and before the first call. A stop signal cuts an
    ``ip`` that hangs (see `_start_ip()`)."""
    if not args.state or app.links is None:
        return
    done = reconcile(app.state, VethLinks(run=partial(_start_ip, stop)))
    if done.removed and app.store is not None:
        with stop.deferred():
            app.store.commit(app.state, [LinkDropped(eid) for eid in done.removed])
    if args.quiet or not (done.removed or done.adopted):
        return
    if args.log_format == "json":
        line = json.dumps({"event": "links", "removed": done.removed, "adopted": done.adopted})
    else:
        line = (
            f"fakedriver: links: removed the veth pairs of {len(done.removed)} endpoint(s) no "
            f"saved join owns, adopted {len(done.adopted)}"
            + "".join(f"\n  removed: {printable(eid)}" for eid in done.removed)
        )
    print(line, file=sys.stderr, flush=True)


def _start_ip(stop: StopSignals, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` during the start: a stop signal while it runs kills it (and ends the
    start), and one while it is being started waits until it is (`subprocess.Popen`
    would leave a child it had started running, unknown, were it cut then)."""
    process = None
    try:
        with stop.deferred():
            process = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        out, err = process.communicate()
    except BaseException:
        if process is not None:
            process.kill()
            process.communicate()
        raise
    return subprocess.CompletedProcess(list(argv), process.returncode, out, err)


def _plugin_server(args: argparse.Namespace, app: FakeNetDriver, **shared: Any) -> PluginServer:
    """The server of the plugin socket (or TCP address) the arguments ask for."""
    if args.tcp:
        host, port = args.tcp
        spec = os.path.join(args.spec_dir or SPEC_DIR, f"{args.name or DEFAULT_NAME}.spec")
        server = PluginServer(app, tcp=(host, port), spec=spec, **shared)
        if not loopback(server.listener.getsockname()[0]):  # as bound, not as written
            _say(
                args,
                f"fakedriver: warning: serving the plugin protocol on {host}, beyond this "
                "host: anyone who can reach it can create and delete networks",
            )
        return server
    path = args.socket or os.path.join(PLUGIN_DIR, f"{args.name or DEFAULT_NAME}.sock")
    try:
        return PluginServer(app, socket_path=path, **shared)
    except PermissionError:
        if args.socket or os.geteuid() == 0:
            raise
        raise ServeError(f"needs root for {PLUGIN_DIR}; use --socket PATH") from None


def _say(args: argparse.Namespace, line: str) -> None:
    if args.log_format == "json":  # keep the stream JSON lines throughout
        line = json.dumps({"event": "server", "message": line})
    print(line, file=sys.stderr, flush=True)


def serve(args: argparse.Namespace) -> int:
    stop = StopSignals()  # first: a signal during the start ends it cleanly too
    try:
        return _serve(args, stop)
    except Interrupted as exc:  # what the start made is removed by now
        name = signal.Signals(exc.signum).name
        _say(args, f"fakedriver: {name} during the start: stopped before serving")
        return 128 + exc.signum
    finally:
        stop.close()


def _serve(args: argparse.Namespace, stop: StopSignals) -> int:
    """Serve until a stop signal, then shut down once: stop accepting, stop the
    connections (the calls being served are answered), then close the driver, and with it
    the state file, under its lock (`FakeNetDriver.close()`). A signal during the start
    ends it (`Interrupted`) by the same way out."""
    token = control_token(args)  # before anything is made; the variable read once
    app = build(args, stop)
    servers: list[PluginServer] = []
    try:
        log = None if args.quiet else sys.stderr
        api = None if args.no_control else partial(control, app)
        limits = Limits(
            max_body=args.max_body,
            read_timeout=args.read_timeout,
            idle_timeout=args.idle_timeout,
            max_connections=args.max_connections,
        )
        with stop.deferred():  # a socket, a spec file: made and recorded whole
            server = _plugin_server(
                args,
                app,
                log=log,
                log_format=args.log_format,
                control=None if args.control_socket else api,
                control_token=token,
                limits=limits,
            )
            servers.append(server)
        if args.tcp and api is not None and not args.control_socket and not token:
            _say(
                args,
                "fakedriver: the control API is not served over TCP without a control token "
                "(--control-token-file)",
            )
        _reconcile(args, app, stop)
        if args.control_socket and api is not None:
            with stop.deferred():
                servers.append(
                    PluginServer(
                        app,
                        socket_path=args.control_socket,
                        control=api,
                        control_token=token,
                        protocol=False,
                        limits=limits,
                    )
                )
        where = " and control API on " + servers[1].address if len(servers) > 1 else ""
        if args.dashboard and api is not None:
            with stop.deferred():  # its listener, made and recorded whole
                page, dashboard = listen(
                    local(app),
                    args.dashboard,
                    title=server.address,
                    log=log,
                    log_format=args.log_format,
                    limits=limits,
                )
                servers.append(page)
            _say(args, f"fakedriver: dashboard on {url(page, dashboard)}")
        stop.started()
        banner = f"fakedriver: serving on {server.address}{where}"
        if args.log_format == "json":  # keep the stream JSON lines throughout
            banner = json.dumps({"event": "serving", "message": banner})
        # said before any call can be served (the sockets listen already): the loop serves
        # a call at once, and its log line must not come before this one, or inside it
        print(banner, file=sys.stderr, flush=True)
        for each in servers:
            threading.Thread(target=each.serve_forever, daemon=True).start()
        stop.wait()
    finally:
        with stop.deferred():  # the way out is not cut either
            for each in servers:
                each.shutdown()
            for each in servers:
                each.close()
            app.close()
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    token = control_token(args)  # the file, or the variable (taken out of the environment)
    stop = StopSignals()
    try:
        return dashboard_command(args, token, stop)
    except Interrupted as exc:  # a signal during the start: what it made is gone
        return 128 + exc.signum
    finally:
        stop.close()


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = parser().parse_known_args(argv)
    if args.command == "plugin" and args.action == "build":  # the rest are serve flags
        args.serve_args, unknown = unknown, []
    if unknown:  # with the usage of the command they were given to
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "serve":
        if args.control_token is not None:  # one line: the rest does not matter
            print(f"fakedriver: {ARGV_TOKEN}", file=sys.stderr)
            return 2
        conflict = conflicts(args)
        if conflict:
            args.subparser.error(conflict)
    if args.command == "check":
        return check_command(args)
    if args.command == "record":
        stop = StopSignals()
        try:
            return record_command(args, stop.serving)
        except ServeError as exc:  # the socket is live, or not ours to remove
            print(f"fakedriver record: {exc}", file=sys.stderr)
            return 2
        except Interrupted as exc:  # a signal during the start: what it made is gone
            return 128 + exc.signum
        finally:
            stop.close()
    try:
        if args.command == "state":
            return state_command(args)
        if args.command == "plugin":
            return plugin_command(args, getattr(args, "serve_args", []), check_serve_args)
        if args.command == "dashboard":
            return _dashboard(args)
        return serve(args)
    except (ServeError, StateFileError, BundleError, ValueError) as exc:
        print(f"fakedriver: {printable(str(exc))}", file=sys.stderr)  # a file's text too
        return 2
    except StoreError as exc:  # at start: the links reconciled could not be saved
        print(f"fakedriver: cannot save state file {args.state}: {exc}", file=sys.stderr)
        return 2
