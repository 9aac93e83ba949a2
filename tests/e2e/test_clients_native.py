"""The Java, Go and Rust Socket.IO clients against real daphne and uvicorn processes.

Each client is a small program in tests/clients/<language>/ built from pinned
versions (tests/clients/native.py) that runs the same scenarios and prints one
line per scenario and transport. Every line is a test of its own here, so a
reader sees which scenario failed for which client on which server; what a
library cannot do is an UNSUPPORTED line, expected only where this file and
the README's compatibility table say why (RACY: where the library races itself,
PASS or UNSUPPORTED, never FAIL). Each run's output is kept in
tests/artifacts/native-<client>-<server>.txt.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import socketio

from tests.admin_client import make_token, make_user
from tests.clients import native
from tests.servers import ServerProcess

SERVERS = ("daphne", "uvicorn")
TRANSPORTS = ("websocket", "polling")
SCENARIOS = (
    "connect-auth",
    "connect-refused",
    "connect-error-message",
    "emit-ack",
    "emit-noack",
    "server-ack",
    "binary-up",
    "binary-ack",
    "binary-down",
    "binary-nested",
    "json-types",
    "unicode",
    "room-broadcast",
    "second-namespace",
    "namespace-leave",
    "disconnect-client",
    "disconnect-server",
    "reconnect",
)
# (client, scenario) -> (transports, why the library cannot). Kept in step with the README's table.
BOTH = frozenset(TRANSPORTS)
WS = frozenset({"websocket"})
POLLING = frozenset({"polling"})
UNSUPPORTED = {
    ("go", "connect-error-message"): (BOTH, "needs a data field in CONNECT_ERROR to keep its message"),
    ("go", "namespace-leave"): (BOTH, "disconnecting one namespace removes another socket's listeners"),
    **{
        (client, scenario): why
        for client in ("rust-async", "rust-sync")
        for scenario, why in {
            "server-ack": (BOTH, "no API to answer a server's ack request"),
            "binary-ack": (BOTH, "sends binary with an ack as a BINARY_ACK packet"),
            "binary-down": (WS, "never delivers a server's binary event over WebSocket"),
            "binary-nested": (BOTH, "keeps only a binary event's first attachment"),
            "second-namespace": (BOTH, "one namespace per connection"),
            "namespace-leave": (BOTH, "one namespace per connection"),
        }.items()
    },
    # over WebSocket it reconnects: the server closes the socket without a close packet (as Node does)
    ("rust-sync", "reconnect"): (POLLING, "the sync client does not reconnect after the server's close packet"),
}
# (client, scenario) -> (transports, why): the library races itself, so a run prints PASS or UNSUPPORTED
# (never FAIL) depending on which of its own goroutines wins. Kept in step with the README's table.
RACY = {
    ("go", "disconnect-client"): (WS, "Disconnect() closes the WebSocket without waiting for its queued DISCONNECT"),
}
LINE = re.compile(r"^(PASS|FAIL|UNSUPPORTED) (\w+)/([\w-]+)(?:: (.*))?$")
RUN_TIMEOUT = 180


@dataclass
class Outcome:
    """One program's run against one server: its lines by (transport, scenario), and its output."""

    returncode: int
    lines: dict[tuple[str, str], tuple[str, str]]
    stdout: str
    stderr: str
    tag: str  # RT_TAG: the prefix of every socket tag this run used, to find its sockets in the server's log
    seconds: float

    def tail(self) -> str:
        return f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"


@pytest.fixture(scope="module")
def native_servers(django_db_setup):
    """One daphne and one uvicorn process on the test project, for every client."""
    processes = {
        name: ServerProcess("tests.native_settings", app="tests.asgi:application", asgi_server=name) for name in SERVERS
    }
    for process in processes.values():
        process.start()
    for process in processes.values():
        warm_up(process)
    yield processes
    for process in processes.values():
        process.stop()


def warm_up(process: ServerProcess) -> None:
    """One refused CONNECT to /native over each transport, before any program's 5 s timeouts count.

    A fresh server imports the rest of Django, opens its database and checks its first token on
    its first requests; a program's first scenario would pay for that (several seconds while the
    other programs start too). A refusal walks the whole path: handshake, CONNECT, token lookup.
    """
    for transports in (["polling"], ["websocket"]):
        client = socketio.Client(reconnection=False)
        refusals: list[object] = []
        client.on("connect_error", refusals.append, namespace="/native")
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(
                process.url,
                namespaces=["/native"],
                transports=transports,
                auth={"token": "rt_00000000_" + "A" * 43},
                wait_timeout=30,
            )
        client.disconnect()
        assert refusals == [{"message": "invalid token"}], refusals


@pytest.fixture(scope="module")
def credentials(django_db_blocker) -> dict[str, str]:
    """A real user and access token (realtime.models.AccessToken) for the connect-auth scenario."""
    with django_db_blocker.unblock():
        user = make_user("native")
        token, secret = make_token(user)
    return {"RT_TOKEN": secret, "RT_USER": user.username, "RT_TOKEN_PREFIX": token.prefix}


# Programs run at once: they spend their time waiting on the server (acks, reconnects), not computing.
PARALLEL_RUNS = 5
# The order runs start in: the longest first (Go ~65 s, rust-sync ~45 s, rust-async ~25 s, Java ~15 s
# here), so the last to start are short, and the JVMs, whose start-up is what loads the cores, start
# a few at a time as others finish rather than three at once.
LONGEST_FIRST = ("go", "rust-sync", "rust-async", "java-2.0.1", "java-2.1.2")


@pytest.fixture(scope="module")
def outcomes(request, native_servers, credentials):
    """Run every (client, server) pair once, several at a time; the tests read the outcomes.

    Built first, one after another (a build is what loads the cores), then run
    side by side, each with its own tag so that their rooms never meet.
    """
    selected = {
        (item.callspec.params["client"], item.callspec.params["server"])
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    rank = {client: i for i, client in enumerate(LONGEST_FIRST)}
    pairs = sorted(selected, key=lambda pair: (rank.get(pair[0], len(rank)), pair))
    commands = {client: command_of(client) for client in {client for client, _ in pairs}}
    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        futures = {
            pair: pool.submit(run_client, commands[pair[0]], native_servers[pair[1]], credentials) for pair in pairs
        }
        cache = {pair: future.result() for pair, future in futures.items()}
    for (client, server), outcome in cache.items():
        if isinstance(outcome, Outcome):
            # what each program printed, next to the server's log, for reading a failure afterwards
            log = native_servers[server].log_path
            head = f"server log: {log.name}, tag {outcome.tag}, {outcome.seconds:.1f} s"
            text = f"{head}\nstdout:\n{outcome.stdout}\nstderr:\n{outcome.stderr}"
            (log.parent / f"native-{client}-{server}.txt").write_text(text)

    def get(client: str, server: str) -> Outcome:
        outcome = cache[client, server]
        if isinstance(outcome, str):
            pytest.skip(outcome)
        return outcome

    return get


def built(program: str) -> native.Program:
    """The built program, or a skip (a failure when REALTIME_REQUIRE_NATIVE_CLIENTS=1) if its toolchain is missing."""
    prog = native.PROGRAMS[program]
    try:
        prog.build()
    except native.ToolchainMissing as exc:
        if native.required():
            pytest.fail(f"{exc}, and {native.REQUIRE_ENV}=1 requires every native client")
        pytest.skip(str(exc))
    return prog


def command_of(client: str) -> list[str] | str:
    """The command that runs ``client``, or why it cannot be built here (a skip)."""
    program, mode = native.CLIENTS[client]
    try:
        return built(program).command(mode)
    except pytest.skip.Exception as skipped:
        return str(skipped)


def run_client(command: list[str] | str, server: ServerProcess, credentials: dict[str, str]) -> Outcome | str:
    if isinstance(command, str):
        return command  # the toolchain is missing: every test of this client skips with this reason
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        **credentials,
        "RT_URL": server.url,
        "RT_TAG": tag,
        "RT_TRANSPORTS": ",".join(TRANSPORTS),
    }
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    lines = {}
    for raw in result.stdout.splitlines():
        if match := LINE.match(raw):
            status, transport, scenario, why = match.groups()
            lines[transport, scenario] = (status, why or "")
    return Outcome(result.returncode, lines, result.stdout, result.stderr, tag, time.monotonic() - started)


CASES = [
    pytest.param(client, server, transport, scenario, id=f"{client}-{server}-{transport}-{scenario}")
    for client in native.CLIENTS
    for server in SERVERS
    for transport in TRANSPORTS
    for scenario in SCENARIOS
]


@pytest.mark.parametrize(("client", "server", "transport", "scenario"), CASES)
def test_scenario(outcomes, client, server, transport, scenario):
    """One scenario line: PASS, or UNSUPPORTED where the library is known (and documented) not to manage it."""
    outcome = outcomes(client, server)
    assert (transport, scenario) in outcome.lines, (
        f"{client} printed no line for {transport}/{scenario}\n{outcome.tail()}"
    )
    status, why = outcome.lines[transport, scenario]
    transports, known = UNSUPPORTED.get((client, scenario), (frozenset(), ""))
    racy, race = RACY.get((client, scenario), (frozenset(), ""))
    if transport in racy:
        assert status in ("PASS", "UNSUPPORTED"), (
            f"{client} on {server}, {transport}/{scenario}: {status} {why} ({race})"
        )
        assert status == "PASS" or why, "an unsupported line says why"
    elif transport in transports:
        assert status == "UNSUPPORTED", (
            f"{client} {transport}/{scenario}: {status} {why} (documented as unsupported: "
            f"{known}; update UNSUPPORTED and the README if the library learnt it)"
        )
        assert why, "an unsupported line says why"
    else:
        assert status == "PASS", f"{client} on {server}, {transport}/{scenario}: {status} {why}\n{outcome.tail()}"


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("client", list(native.CLIENTS))
def test_run_is_complete(outcomes, client, server):
    """The program ran every scenario, nothing more, and its summary and exit status agree with its lines."""
    outcome = outcomes(client, server)
    expected = {(t, s) for t in TRANSPORTS for s in SCENARIOS}
    assert set(outcome.lines) == expected, outcome.tail()
    counts = {
        status: sum(1 for s, _ in outcome.lines.values() if s == status) for status in ("PASS", "FAIL", "UNSUPPORTED")
    }
    summary = f"SUMMARY {counts['PASS']} passed, {counts['FAIL']} failed, {counts['UNSUPPORTED']} unsupported"
    assert summary in outcome.stdout.splitlines(), outcome.tail()
    assert outcome.returncode == (1 if counts["FAIL"] else 0), outcome.tail()
