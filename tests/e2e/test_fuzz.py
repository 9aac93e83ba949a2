"""Random and mutated packets on both transports while real clients keep talking (tests/fuzz.py).

For ``REALTIME_FUZZ_SECONDS`` (20 by default) six raw aiohttp connections at a
time throw hostile input at one daphne process, over polling, WebSocket and
the upgrade between them. Meanwhile python-socketio (over WebSocket and over
polling) and socket.io-client in Node (polling upgraded to WebSocket) exchange
acknowledged messages. The spec says a malformed packet ends that client's
session and nobody else's, so afterwards:

- the server log has no traceback, no "Task exception was never retrieved",
  no ERROR line;
- no well-behaved client was disturbed: every ack answered, correct, in order,
  server events in order, no disconnect;
- the server's RSS is back within 10 % of what it was after a warm-up round of
  the same fuzzing, once the fuzzed sessions are gone.

The seed is printed (and named in every failure); ``REALTIME_FUZZ_SEED=N``
replays its inputs. Every input is written to tests/artifacts/fuzz-SEED.log,
and a failure lists the inputs of the sessions its traceback names.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from pathlib import Path

import pytest

from tests.clients.node import NodeAgent
from tests.fuzz import Journal, NodeClient, PythonClient, fuzz
from tests.servers import ROOT, ServerProcess

SECONDS = float(os.environ.get("REALTIME_FUZZ_SECONDS", "20"))
SEED = int(os.environ.get("REALTIME_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
# Measured here: RSS climbs for the first ~15 s of fuzzing (allocator arenas, caches, the first
# megabyte bodies) and then stays flat within a few per cent, so the warm-up is that long.
WARM_UP = float(os.environ.get("REALTIME_FUZZ_WARM_UP", "15"))
# glibc raises its mmap threshold after the first large buffer is freed, so later 1 MB bodies come
# from the heap and their pages stay in RSS after they are freed. A fixed threshold makes RSS follow
# what Python holds, which is what a leak check is about.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
RSS_SLACK = 1.10
ARTIFACTS = ROOT / "tests" / "artifacts"

# Our log lines start with the level; daphne's own with a timestamp, then the level.
_LEVELS = r"^(?:\d{4}-\d\d-\d\d [\d:,]+ +)?"
BAD_LINE = re.compile(
    _LEVELS + r"(ERROR|CRITICAL)\b|Traceback \(most recent call last\)|Task exception was never retrieved"
)
# Where a block ends: the next log line or access-log line (a traceback's own lines are indented or
# are its exception and "During handling ..." lines).
NEXT_LINE = re.compile(_LEVELS + r"(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b|^\d+\.\d+\.\d+\.\d+:\d+ - ")
OPENED = re.compile(r"sid=(\S+) opened over")
CLOSED = re.compile(r"DEBUG realtime\.engineio: sid=(\S+) closed: ")


@pytest.fixture(scope="module")
def fuzz_server(django_db_setup):
    """A server of its own: its log and its memory are this test's measurements."""
    process = ServerProcess("tests.fuzz_settings", app="tests.asgi:application", env=MALLOC_ENV).start()
    yield process
    process.stop()


def cpu_seconds(server: ServerProcess) -> float:
    """User + system CPU time of the server so far: whether the fuzzing kept it busy."""
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(server: ServerProcess) -> int:
    return server.rss() // 1024


async def sessions_gone(server: ServerProcess, keep: set[str], timeout: float = 20.0) -> set[str]:
    """Wait until every session the server opened (but ``keep``) has logged its close; those still open."""
    deadline = time.monotonic() + timeout
    while True:  # another process's log: nothing to await, so it is read until it says so
        log = server.log()
        open_sids = set(OPENED.findall(log)) - set(CLOSED.findall(log)) - keep
        if not open_sids or time.monotonic() > deadline:
            return open_sids
        await asyncio.sleep(0.1)


async def rss_settles(server: ServerProcess, limit: float, timeout: float = 30.0) -> int:
    """Wait for RSS to drop to ``limit`` KiB (closed sessions linger 5 s for their close packet)."""
    deadline = time.monotonic() + timeout
    # another process's memory: polled, bounded
    while (rss := rss_kib(server)) > limit and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.25)
    return rss


def error_blocks(log: str) -> list[str]:
    """Each ERROR line or traceback with the lines that belong to it."""
    blocks: list[list[str]] = []
    lines = log.splitlines()
    context = 3  # lines before: for tracebacks that name no sid, the sessions active just then
    i = 0
    while i < len(lines):
        if BAD_LINE.search(lines[i]):
            block = [f"    (before) {line}" for line in lines[max(0, i - context) : i]] + [lines[i]]
            i += 1
            while i < len(lines) and not NEXT_LINE.match(lines[i]) and len(block) < 3000:
                block.append(lines[i])
                i += 1
            blocks.append(block)
        else:
            i += 1
    return ["\n".join(b) for b in blocks]


def signature(block: str) -> str:
    """What kind of failure a block is: its exception line and the deepest frame in realtime/."""
    frames = re.findall(r'File "([^"]*realtime/[^"]+)", line (\d+), in (\S+)', block)
    where = f"{frames[-1][0].split('realtime/', 1)[-1]}:{frames[-1][1]} in {frames[-1][2]}" if frames else "?"
    exception = next((line.strip() for line in reversed(block.splitlines()) if re.match(r"\s*\w+(\.\w+)*: ", line)), "")
    return f"{exception[:160]} at realtime/{where}"


def report(blocks: list[str], journal: Journal) -> str:
    """Failures grouped by signature, each with one full example and the inputs of the sessions it names."""
    groups: dict[str, list[str]] = {}
    for block in blocks:
        groups.setdefault(signature(block), []).append(block)
    parts = []
    for sig, members in groups.items():
        example = members[0]
        lines = example.splitlines()
        shown = lines if len(lines) <= 60 else [*lines[:40], f"    ... {len(lines) - 55} lines ...", *lines[-15:]]
        parts.append(f"--- {len(members)} x {sig}\n" + "\n".join(shown))
        for sid in dict.fromkeys(re.findall(r"sid=([\w-]{10,})", example)):
            inputs = journal.sent.get(sid)
            if inputs:
                parts.append(f"    inputs of sid={sid}:\n      " + "\n      ".join(inputs[-12:]))
    return "\n".join(parts)


async def test_fuzzing_disturbs_nobody_logs_no_traceback_and_returns_memory(fuzz_server):
    server = fuzz_server
    print(f"\nfuzz seed {SEED}: REALTIME_FUZZ_SEED={SEED} replays it; {SECONDS:.0f} s after a {WARM_UP:.0f} s warm-up")
    ARTIFACTS.mkdir(exist_ok=True)
    journal = Journal(ARTIFACTS / f"fuzz-{SEED}.log")
    base = f"{server.url}/socket.io/"
    agent = await NodeAgent().start()
    clients = [
        PythonClient(server.url, "websocket", SEED),
        PythonClient(server.url, "polling", SEED),
        NodeClient(agent, server.url, "upgrade", SEED),
    ]
    stop = asyncio.Event()
    try:
        for client in clients:
            await client.start()
        talking = [asyncio.create_task(client.run(stop)) for client in clients]
        keep = {c.sid for c in clients if c.sid}

        # warm-up: the same fuzzing, so every code path, cache and arena is in use before the baseline
        warm_runs = await fuzz(base, SEED, WARM_UP, journal)
        lingering_warm = await sessions_gone(server, keep)
        baseline = rss_kib(server)

        cpu_before = cpu_seconds(server)
        runs = await fuzz(base, SEED + 1, SECONDS, journal)
        busy = (cpu_seconds(server) - cpu_before) / SECONDS
        lingering = await sessions_gone(server, keep)
        after = await rss_settles(server, baseline * RSS_SLACK)

        stop.set()
        await asyncio.gather(*talking)
        for client in clients:
            await client.finish()
    finally:
        stop.set()
        journal.close()
        await agent.close()

    blocks = error_blocks(server.log())
    exchanged = {c.name: c.acked for c in clients}
    print(
        f"fuzz seed {SEED}: {warm_runs} + {runs} hostile sessions, {journal.count} inputs; acks {exchanged}; "
        f"RSS {baseline} KiB after warm-up, {after} KiB after ({after / baseline - 1:+.1%}); "
        f"{len(blocks)} error blocks in the server log; server CPU {busy:.0%} while fuzzing"
    )
    failures = []
    if blocks:
        failures.append(f"{len(blocks)} tracebacks / ERROR lines in the server log:\n{report(blocks, journal)}")
    for client in clients:
        if client.problems or not client.acked:
            failures.append(f"{client.name} disturbed after {client.acked} acks: {client.problems[:5]}")
    if lingering_warm:
        failures.append(f"{len(lingering_warm)} sessions never closed after the warm-up: {sorted(lingering_warm)[:10]}")
    if lingering:
        failures.append(f"{len(lingering)} fuzzed sessions never closed: {sorted(lingering)[:10]}")
    if after > baseline * RSS_SLACK:
        failures.append(f"RSS {after} KiB is {after / baseline - 1:+.1%} over the {baseline} KiB baseline")
    assert not failures, f"fuzz seed {SEED} (REALTIME_FUZZ_SEED={SEED} replays it):\n" + "\n".join(failures)
