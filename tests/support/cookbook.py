"""The fault cookbook of docs/faults.md, one recipe per fault kind, as data.

``test_dockerd_faults.py`` runs every recipe against a real dockerd and checks what it
says here: the docker command's exit code, the message its user sees, how long it takes,
and whether dockerd rejected the faulted call as ``dockerd_rules`` predicts. It is what
Debian's dockerd 20.10 does; where a later daemon differs, the recipe names the
``dockerd_versions`` row that says how, and :meth:`Recipe.on` gives it for that daemon.
``test_docs.py`` checks that the cookbook table of docs/faults.md is :func:`markdown` of these,
so the table says what the daemon was seen to do.

Run as a script to print the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .dockerd_versions import Expect

#: The docker commands the recipes run; NET and PLUGIN are filled in by the test.
RUN = ("run", "--rm", "--network", "NET", "bb:local", "true")
CREATE = ("network", "create", "-d", "PLUGIN", "--ipam-driver", "PLUGIN", "NET")


@dataclass(frozen=True)
class Recipe:
    """One fault, its recipe, and what dockerd 20.10 does with it.

    :param python: the recipe as docs/faults.md shows it.
    :param rule: the same rule, as the control API takes it.
    :param command: the docker command it is seen through (:data:`RUN` or :data:`CREATE`).
    :param exit: that command's exit code.
    :param says: what its user is told (in stderr); ``""``: nothing.
    :param seconds: how long the command takes: at least, at most.
    :param when: the same, in words, for docs/faults.md.
    :param then: what follows, in words, for docs/faults.md.
    :param fatal: dockerd fails the command when it rejects the answer (for Leave it only
        logs ``driver error disconnecting container``).
    :param implicit_leave: dockerd then deletes a joined endpoint without Leave.
    :param held: the call waits until the test releases it (dockerd has no timeout).
    :param shown: a row of the docs' table (else a variant tested alongside).
    :param model: what ``dockerd_rules`` must give as the reason it rejects the last answer
        dockerd received for the faulted method (dockerd's own words where the rule knows
        them; decoding errors are Python's words, dockerd says Go's).
    :param says_by: where what the user is told depends on the daemon's version: the
        attribute of ``dockerd_versions.Expect`` that says it.
    :param leave_by: where whether dockerd sends Leave before DeleteEndpoint depends on
        the daemon's version: that attribute (the DeleteEndpoint is then no implicit Leave).
    """

    kind: str
    python: str
    rule: dict[str, Any]
    gets: str
    command: tuple[str, ...] = RUN
    exit: int = 125
    says: str = ""
    seconds: tuple[float, float] = (0.0, 5.0)
    when: str = "at once"
    then: str = ""
    fatal: bool = True
    implicit_leave: bool = False
    held: bool = False
    shown: bool = True
    model: str = ""
    name: str = field(default="")
    says_by: str = ""
    leave_by: str = ""

    @property
    def id(self) -> str:
        return self.name or self.kind

    @property
    def method(self) -> str:
        return str(self.rule["method"])

    def on(self, does: Expect) -> Recipe:
        """This recipe as a daemon that does what ``does`` says answers it."""
        says = getattr(does, self.says_by) if self.says_by else self.says
        leaves = bool(getattr(does, self.leave_by)) if self.leave_by else False
        # where the rules give dockerd's own words, they are this version's words too
        model = says if self.says_by and self.model.strip() == self.says.strip() else self.model
        return replace(
            self, says=says, model=model, implicit_leave=self.implicit_leave and not leaves
        )

    def column(self) -> str:
        """The cookbook's "what dockerd does" cell."""
        verb = " ".join(self.command[:2]) if self.command[0] == "network" else self.command[0]
        told = f" with `{self.says}`" if self.says else ""
        text = f"{self.gets}: `docker {verb}` exits {self.exit} {self.when}{told}"
        return f"{text}; {self.then}" if self.then else text


RECIPES = [
    Recipe(
        "error",
        'fake.fail("Join", message="boom")',
        {"method": "Join", "kind": "error", "message": "boom"},
        gets='HTTP 200 `{"Err": "boom"}` (`{"Error": ...}` on IpamDriver calls)',
        says="remote: boom",
        then="dockerd deletes the endpoint (no Leave: the Join failed)",
        model="remote: boom",
    ),
    Recipe(
        "status",
        'fake.fail("CreateNetwork", status=500, message="boom")',
        {"method": "CreateNetwork", "kind": "status", "status": 500, "message": "boom"},
        gets='HTTP 500 `{"Err": "boom"}` (with `body="text"`, the raw text)',
        command=CREATE,
        exit=1,
        says="NetworkDriver.CreateNetwork: boom",
        then="dockerd releases the pool; never retried",
        model="HTTP 500",
    ),
    Recipe(
        "not_found",
        'fake.fail("ProgramExternalConnectivity", kind="not_found")',
        {"method": "ProgramExternalConnectivity", "kind": "not_found"},
        gets="HTTP 404 `404 page not found`",
        exit=0,
        then="dockerd tolerates a 404 from Program/RevokeExternalConnectivity only",
    ),
    Recipe(
        "empty_body",
        'fake.fail("Leave", kind="empty_body")',
        {"method": "Leave", "kind": "empty_body"},
        gets="HTTP 200, no body",
        exit=0,
        fatal=False,
        implicit_leave=True,
        then="dockerd fails the call with `EOF`; a Leave it only logs (`driver error "
        "disconnecting container ...: EOF`), then sends DeleteEndpoint, an implicit Leave",
        model="EOF",
    ),
    Recipe(
        "invalid_json",
        'fake.fail("Join", kind="invalid_json")',
        {"method": "Join", "kind": "invalid_json"},
        gets="HTTP 200, a body that is not JSON",
        says="invalid character 'h' in literal true (expecting 'r')",
        model="error reading plugin resp",
    ),
    Recipe(
        "truncated",
        'fake.fail("Join", kind="truncated")',
        {"method": "Join", "kind": "truncated"},
        gets="the Join is served (state changes, a veth pair is made), the JSON answer cut "
        "in half",
        says="unexpected EOF",
        implicit_leave=True,
        then="dockerd sends DeleteEndpoint without Leave: an implicit Leave",
        model="error reading plugin resp",
    ),
    Recipe(
        "wrong_key",
        'fake.fail("Leave", kind="wrong_key", message="x")',
        {"method": "Leave", "kind": "wrong_key", "message": "x"},
        gets='HTTP 200 `{"Error": "x"}`: the other dialect\'s key, which dockerd reads as '
        "success (the call is not served)",
        exit=0,
        implicit_leave=True,
        then="the DeleteEndpoint that follows is an implicit Leave",
    ),
    Recipe(
        "wrong_key",
        'fake.fail("RequestPool", kind="wrong_key", message="x")',
        {"method": "RequestPool", "kind": "wrong_key", "message": "x"},
        gets='HTTP 200 `{"Err": "x"}` from IPAM: read as success, with no Pool',
        command=CREATE,
        exit=1,
        says="invalid CIDR address:",
        model="invalid CIDR address: ",
        shown=False,
        name="wrong_key-ipam",
        says_by="bad_pool_error",
    ),
    Recipe(
        "answer",
        'fake.fail("Join", kind="answer", answer={"Gateway": "10.0.0.1/24"})',
        {"method": "Join", "kind": "answer", "answer": {"Gateway": "10.0.0.1/24"}},
        gets="the call is served and `answer` merged into its answer: here a CIDR where "
        "dockerd wants a bare IP",
        says='unable to parse Gateway "10.0.0.1/24"',
        model='unable to parse Gateway "10.0.0.1/24"',
        implicit_leave=True,
        then="dockerd sends DeleteEndpoint without Leave ([from 27.0](dockerd.md) Leave "
        "first)",
        leave_by="join_rollback_leave",
    ),
    Recipe(
        "lost_reply",
        'fake.fail("Join", kind="lost_reply", message="timeout")',
        {"method": "Join", "kind": "lost_reply", "message": "timeout"},
        gets='the Join is served, the answer is `{"Err": "timeout"}`',
        says="remote: timeout",
        implicit_leave=True,
        then="dockerd sends DeleteEndpoint without Leave: an implicit Leave",
        model="remote: timeout",
    ),
    Recipe(
        "latency",
        'fake.fail("Join", kind="latency", seconds=2)',
        {"method": "Join", "kind": "latency", "seconds": 2},
        gets="the answer 2 s later (on the fake's clock: virtual in-process, real in `serve`)",
        exit=0,
        seconds=(2.0, 10.0),
        when="after 2 s more",
    ),
    Recipe(
        "hang",
        'fake.fail("Join", kind="hang")',
        {"method": "Join", "kind": "hang"},
        gets="no answer until `rule.release()` or the client hangs up (in-process, a "
        "`requests` timeout passes on the virtual clock)",
        exit=0,
        seconds=(2.0, 30.0),
        when="once released",
        then="dockerd has no timeout for a v1 plugin: it waits for ever",
        held=True,
    ),
    Recipe(
        "hold",
        'gate = fake.hold("Join")',
        {"method": "Join", "kind": "hold"},
        gets="the call waits until `gate.release()`, then is served; `gate.wait_held()` "
        "tells when one arrived",
        exit=0,
        seconds=(2.0, 30.0),
        when="once released",
        then="dockerd waits for ever",
        held=True,
    ),
    Recipe(
        "drop",
        'fake.fail("CreateEndpoint", kind="drop", times=1)',
        {"method": "CreateEndpoint", "kind": "drop", "times": 1},
        gets="the connection closes before any answer; the call is not served. dockerd "
        "retries 1 s later, with an empty body (`Content-Length: 0`), which the fake "
        "answers 400, as a real driver would",
        says="NetworkDriver.CreateEndpoint: invalid request: empty body, expected a JSON object",
        model="HTTP 400",
        seconds=(0.9, 5.0),
        when="after 1 s",
        then="with no `times`, every try is dropped: dockerd gives up after 15 s (tries "
        'at 0, 1, 3, 7, 15 s) with `Post "http://...sock/NetworkDriver.CreateEndpoint": EOF`',
    ),
    Recipe(
        "drop",
        'fake.fail("CreateEndpoint", kind="drop")',
        {"method": "CreateEndpoint", "kind": "drop"},
        gets="every try dropped",
        says='/NetworkDriver.CreateEndpoint": EOF',
        seconds=(14.0, 25.0),
        when="after 15 s",
        shown=False,
        name="drop-every-try",
    ),
    Recipe(
        "drop_mid_body",
        'fake.fail("Join", kind="drop_mid_body")',
        {"method": "Join", "kind": "drop_mid_body"},
        gets="the Join is served; the connection closes halfway through the answer",
        says="unexpected EOF",
        implicit_leave=True,
        then="dockerd does not retry (it had the headers) and sends DeleteEndpoint without "
        "Leave: an implicit Leave",
        model="error reading plugin resp",
    ),
]


def markdown() -> str:
    """The cookbook table of docs/faults.md."""
    rows = [
        "| kind | recipe | what dockerd 20.10 gets and does (checked on a real daemon) |",
        "|---|---|---|",
    ]
    rows += [f"| `{r.kind}` | `{r.python}` | {r.column()} |" for r in RECIPES if r.shown]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
