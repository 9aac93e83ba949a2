"""`make soak`: thousands of clients on two daphne processes and Redis, for minutes, with exact accounting.

    python -m tests.soak.run --seconds 600 --connections 5000

A private redis-server, two daphne processes on it (tests/soak/settings.py),
and the round-robin proxy of the cluster tests; one Node process
(tests/soak/loadgen.mjs) holds the socket.io-client sockets, most over
WebSocket straight to either server, a share over polling through the proxy
(so requests are forwarded between the processes). At fixed rates it sends
acked echoes, room broadcasts, joins, leaves and reconnects. Beside it two
well-behaved python-socketio clients from tests/fuzz.py check order and acks.

Targets, each making the exit status non-zero when missed: every connection
made; 0 errors (connect errors, unexpected disconnects, ack timeouts, wrong
answers, duplicates, deliveries to non-members, tracebacks or ERROR lines in
the server logs); 0 messages lost (every broadcast has an expected recipient
set, every receipt is checked); each server's RSS at the end under 10 % above
its RSS at the start of the measured period (after the warm-up).

In the middle of the measured period Redis is killed for ``--outage`` seconds (5 by default) and
restarted on its port: nothing may be lost, since broadcasts wait in each process's outbox and are
delivered within the load generator's 10 s. The clients polling through the proxy, whose requests
are forwarded between the processes through the channel layer, are dropped meanwhile and counted
apart; that is allowed then, and only then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster import Proxy, RedisServer, ensure_redis_installed
from tests.fuzz import PythonClient
from tests.servers import ROOT, ServerProcess

HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "tests" / "artifacts"
SETTINGS = "tests.soak.settings"
BAD_LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d [\d:,]+ +)?(ERROR|CRITICAL)\b|Traceback \(most recent call last\)|Task exception was never"
)
WARNING_LINE = re.compile(r"^(?:\d{4}-\d\d-\d\d [\d:,]+ +)?WARNING\b")
RSS_GROWTH_LIMIT = 0.10
ERROR_COUNTS = (
    "connectErrors",
    "unexpectedDisconnects",
    "echoWrong",
    "echoTimeout",
    "roomAckTimeouts",
    "roomAckWrong",
    "shoutAckTimeouts",
    "duplicates",
    "misdelivered",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600, help="measured period, after the warm-up")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--warmup", type=float, default=None, help="seconds of load before the start sample")
    parser.add_argument("--rooms", type=int, default=None, help="default: one per 50 connections")
    parser.add_argument("--rooms-per-client", type=int, default=2)
    parser.add_argument("--polling-share", type=float, default=0.02, help="clients on polling through the proxy")
    parser.add_argument("--echo-rate", type=float, default=400, help="acked echoes per second, all clients")
    parser.add_argument("--shout-rate", type=float, default=10, help="room broadcasts per second")
    parser.add_argument("--join-rate", type=float, default=20, help="joins per second (and as many leaves)")
    parser.add_argument("--reconnect-rate", type=float, default=5, help="disconnect + reconnect per second")
    parser.add_argument("--connect-concurrency", type=int, default=200)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds Redis is down mid-run; 0: none")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 30.0 if args.seconds >= 300 else 20.0
    if args.rooms is None:
        args.rooms = max(1, args.connections // 50)
    return args


def rss_kib(server: ServerProcess) -> int:
    return server.rss() // 1024


def raise_fd_limit() -> None:
    """Thousands of sockets in the load generator and the servers (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def migrate(env: dict[str, str]) -> None:
    database = Path(env["REALTIME_SOAK_DB"])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": SETTINGS},
        check=True,
    )


class Soak:
    """The processes of one run and what was measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.redis = RedisServer()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.env = {"REALTIME_SOAK_DB": str(ARTIFACTS / f"soak-{stamp}.sqlite3")}
        self.servers: list[ServerProcess] = []
        self.proxy: Proxy | None = None
        self.rss: dict[str, list[int]] = {}
        self.loadgen: dict[str, Any] = {}
        self.report_path = ARTIFACTS / f"soak-{stamp}.json"
        self.outage: dict[str, Any] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        ensure_redis_installed()
        ARTIFACTS.mkdir(exist_ok=True)
        migrate(self.env)
        self.redis.start()
        env = {**self.env, "REDIS_URL": self.redis.url, "CELERY_BROKER_URL": self.redis.url}
        self.servers = [ServerProcess(SETTINGS, app="tests.asgi:application", env=env).start() for _ in range(2)]
        for server in self.servers:  # a first request makes each process join the cluster
            urllib.request.urlopen(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=30).read()
        for server in self.servers:
            server.wait_for_log(r"peer \S+ joined", timeout=30)
        self.proxy = Proxy([s.url for s in self.servers]).start()

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for server in self.servers:
            server.stop()
        self.redis.stop()

    def sample(self, label: str) -> None:
        self.rss[label] = [rss_kib(s) for s in self.servers]
        print(f"soak: RSS at {label}: " + ", ".join(f"{kib / 1024:.1f} MiB" for kib in self.rss[label]), flush=True)

    def loadgen_config(self) -> dict[str, Any]:
        a = self.args
        assert self.proxy is not None
        return {
            "bases": [s.url for s in self.servers],
            "proxy": self.proxy.url,
            "connections": a.connections,
            "rooms": a.rooms,
            "roomsPerClient": a.rooms_per_client,
            "pollingShare": a.polling_share,
            "connectConcurrency": a.connect_concurrency,
            "warmup": a.warmup,
            "seconds": a.seconds,
            "rates": {
                "echo": a.echo_rate,
                "shout": a.shout_rate,
                "join": a.join_rate,
                "leave": a.join_rate,
                "reconnect": a.reconnect_rate,
            },
        }

    async def redis_outage(self) -> None:
        """Kill Redis (SIGKILL) for --outage seconds and start it again on its port."""
        seconds = self.args.outage
        print(f"soak: Redis killed for {seconds:.0f} s", flush=True)
        down = time.monotonic()
        self.redis.stop()
        await asyncio.sleep(seconds)  # the outage itself
        await asyncio.to_thread(self.redis.start)
        self.outage = {"seconds": round(time.monotonic() - down, 1)}
        print(f"soak: Redis back after {self.outage['seconds']} s", flush=True)

    async def run(self) -> None:
        """The load generator's phases; RSS sampled as it announces them; the good clients beside it."""
        # the well-behaved polling client goes through the proxy unless Redis goes away (see the docstring)
        polling = self.servers[1].url if self.args.outage else (self.proxy.url if self.proxy else "")
        good = [
            PythonClient(self.servers[0].url, "websocket", seed=1),
            PythonClient(polling, "polling", seed=2),
        ]
        for client in good:
            await client.start()
        stop = asyncio.Event()
        talking = [asyncio.create_task(c.run(stop)) for c in good]
        process = await asyncio.create_subprocess_exec(
            "node",
            str(HERE / "loadgen.mjs"),
            json.dumps(self.loadgen_config()),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        assert process.stdout is not None
        budget = self.args.warmup + self.args.seconds + self.args.connections / 20 + 180
        try:
            async with asyncio.timeout(budget):
                async for line in process.stdout:
                    self.on_line(json.loads(line))
                await process.wait()
        except TimeoutError:
            self.loadgen["crash"] = f"no result within {budget:.0f} s"
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            stop.set()
            await asyncio.gather(*talking)
            for client in good:
                with contextlib.suppress(Exception):
                    await client.finish()
        self.good = {c.name: {"acked": c.acked, "problems": c.problems[:10]} for c in good}

    def on_line(self, message: dict[str, Any]) -> None:
        kind = message["event"]
        counts = message.get("counts", {})
        if kind == "ready":
            print(f"soak: {message['connected']} connected in {message['seconds']:.1f} s", flush=True)
            self.loadgen["ready"] = message
            self.sample("ready")
        elif kind in ("warm", "middle", "end"):
            self.sample({"warm": "start", "middle": "middle", "end": "end"}[kind])
            print(f"soak: {kind}: {brief(counts)}", flush=True)
            if kind == "middle" and self.args.outage:
                task = asyncio.get_running_loop().create_task(self.redis_outage())
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        elif kind == "connecting":
            print(f"soak: connecting: {message['connected']} connected {brief(counts)}", flush=True)
        elif kind == "progress":
            print(f"soak: t={message['t']} s connected={message['connected']} {brief(counts)}", flush=True)
        elif kind in ("result", "crash"):
            self.loadgen[kind] = message

    def verdict(self) -> tuple[dict[str, Any], list[str]]:
        result = self.loadgen.get("result")
        failures: list[str] = []
        if result is None:
            failures.append(f"the load generator did not finish: {self.loadgen.get('crash')}")
            result = {"counts": {}, "errors": [], "connected": 0}
        counts = result["counts"]
        logs = [s.log() for s in self.servers]
        log_errors = [sum(1 for line in log.splitlines() if BAD_LINE.search(line)) for log in logs]
        log_warnings = [sum(1 for line in log.splitlines() if WARNING_LINE.search(line)) for log in logs]
        errors = sum(counts.get(k, 0) for k in ERROR_COUNTS) + sum(log_errors)
        polling_clients = round(self.args.connections * self.args.polling_share)
        dropped = counts.get("pollingDisconnects", 0)
        if not self.outage or dropped > polling_clients:  # dropped while Redis was down: nobody else, never more
            errors += dropped
        if not self.outage:
            errors += counts.get("pollingConnectErrors", 0) + counts.get("droppedAcks", 0)
        errors += sum(len(g["problems"]) for g in self.good.values())
        lost = counts.get("lost", 0) + counts.get("echoTimeout", 0)
        ready = self.loadgen.get("ready", {}).get("connected", 0)
        starts, ends = self.rss.get("start", []), self.rss.get("end", [])
        growth = [end / start - 1 for start, end in zip(starts, ends, strict=False)]
        summary = {
            "args": vars(self.args),
            "connected": ready,
            "connected_at_end": result.get("connected"),
            "counts": counts,
            "errors": errors,
            "lost": lost,
            "server_log_errors": log_errors,
            "server_log_warnings": log_warnings,
            "rss_kib": self.rss,
            "rss_growth": growth,
            "latency_ms": result.get("latency"),
            "well_behaved": self.good,
            "first_errors": result.get("errors", []),
            "server_logs": [str(s.log_path) for s in self.servers],
            "outage": self.outage,
        }
        if self.args.outage and not self.outage:
            failures.append("the Redis outage did not happen")
        if ready < self.args.connections:
            failures.append(f"only {ready} of {self.args.connections} clients connected")
        if errors:
            failures.append(f"{errors} errors")
        if lost:
            failures.append(f"{lost} messages lost")
        if not growth or any(g >= RSS_GROWTH_LIMIT for g in growth):
            failures.append(f"RSS growth {[f'{g:+.1%}' for g in growth]} (limit {RSS_GROWTH_LIMIT:.0%})")
        return summary, failures


def brief(counts: dict[str, int]) -> str:
    keys = ("echoOk", "shouts", "delivered", "lost", "joins", "leaves", "reconnects", "skipped")
    bad = {k: counts[k] for k in ERROR_COUNTS if counts.get(k)}
    return " ".join(f"{k}={counts.get(k, 0)}" for k in keys) + (f" ERRORS {bad}" if bad else "")


def print_report(summary: dict[str, Any], failures: list[str], path: Path) -> None:
    counts = summary["counts"]
    rss = summary["rss_kib"]
    print("\nsoak results")
    print(f"  connections: {summary['connected']} connected, {summary['connected_at_end']} at the end")
    print(
        f"  echoes: {counts.get('echoOk', 0)} acked of {counts.get('echoSent', 0)}; broadcasts: "
        f"{counts.get('shouts', 0)} to rooms, {counts.get('delivered', 0)} of {counts.get('expectedDeliveries', 0)} "
        f"expected deliveries; joins {counts.get('joins', 0)}, leaves {counts.get('leaves', 0)}, "
        f"reconnects {counts.get('reconnects', 0)}"
    )
    print(f"  errors: {summary['errors']} (server log ERROR/traceback lines: {summary['server_log_errors']}; "
          f"warnings: {summary['server_log_warnings']})")  # fmt: skip
    print(f"  messages lost: {summary['lost']}")
    if summary["outage"]:
        print(
            f"  Redis outage: {summary['outage']['seconds']} s mid-run; polling clients dropped meanwhile: "
            f"{counts.get('pollingDisconnects', 0)} (with {counts.get('droppedAcks', 0)} acks they awaited), "
            f"their reconnects refused: {counts.get('pollingConnectErrors', 0)} "
            "(their requests are forwarded through the layer)"
        )
    print(f"  latency (ms): {summary['latency_ms']}")
    for label in ("ready", "start", "middle", "end"):
        if label in rss:
            print(f"  RSS {label:6}: " + ", ".join(f"{kib / 1024:.1f} MiB" for kib in rss[label]))
    print(f"  RSS growth start -> end: {', '.join(f'{g:+.1%}' for g in summary['rss_growth'])}")
    print(f"  well-behaved python-socketio clients: {summary['well_behaved']}")
    if summary["first_errors"]:
        print(f"  first errors: {summary['first_errors']}")
    print(f"  report: {path}")
    print("soak: PASS" if not failures else f"soak: FAIL: {'; '.join(failures)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    soak = Soak(args)
    print(
        f"soak: {args.connections} connections for {args.seconds:.0f} s after a {args.warmup:.0f} s warm-up; "
        f"2 daphne processes on Redis" + (f", Redis killed for {args.outage:.0f} s mid-run" if args.outage else ""),
        flush=True,
    )
    try:
        soak.start()
        asyncio.run(soak.run())
        summary, failures = soak.verdict()
    finally:
        soak.stop()
    soak.report_path.write_text(json.dumps({**summary, "failures": failures}, indent=1))
    print_report(summary, failures, soak.report_path)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
