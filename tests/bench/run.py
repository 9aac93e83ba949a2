"""`make bench`: realtime against python-socketio on the same ASGI server, measured in one run.

Each round starts every app fresh (realtime, python-socketio, and for broadcasts
a bare ASGI app as the fan-out limit), pinned to core 0 with the Node load
generator on core 1, and runs every workload; rounds interleave the apps so
that machine noise hits them alike. The table gives medians and ratios
(ours / python-socketio); results/ gets the JSON, the table as Markdown, and
the scaling plot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.bench import forwarding

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"

APPS = {
    "realtime": ("tests.bench.asgi:application", "off"),
    "python-socketio": ("tests.bench.peer_app:application", "off"),
    "bare ASGI": ("tests.bench.bare_app:application", "on"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


class Server:
    def __init__(self, app: str, asgi_server: str, env: dict[str, str] | None = None, core: int = 0) -> None:
        self.port = free_port()
        module, lifespan = APPS[app]
        if asgi_server == "daphne":
            command = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), module]
        else:
            command = [
                str(BIN / "uvicorn"),
                module,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--lifespan",
                lifespan,
                "--ws",
                "websockets",
            ]
        full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.bench.settings", **(env or {})}
        self.process = subprocess.Popen(
            pin(core) + command, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{app} on {asgi_server} did not start")

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def loadgen(config: dict, core: int = 1) -> dict:
    result = subprocess.run(
        [*pin(core), "node", str(HERE / "loadgen.mjs"), json.dumps(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=config.get("seconds", 5) + 300,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"load generator failed: {result.stdout[-500:]} {result.stderr[-1500:]}")
    return json.loads(lines[-1])


def idle_memory(server: Server, clients: int) -> float:
    """KiB of server memory per idle connected Socket.IO client."""
    loadgen({"bases": [server.base], "workload": "echo", "clients": 50, "seconds": 1})  # warm the code paths
    time.sleep(1)
    before = server.rss_kib()
    config = {"bases": [server.base], "workload": "idle", "clients": clients, "seconds": 0}
    generator = subprocess.Popen(
        [
            *pin(1),
            "node",
            str(HERE / "loadgen.mjs"),
            json.dumps(config),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert generator.stdout is not None and generator.stdin is not None
    json.loads(generator.stdout.readline())  # {"ready": n}
    time.sleep(2)  # let the server settle (a benchmark, not a test)
    after = server.rss_kib()
    generator.stdin.write("done\n")
    generator.stdin.flush()
    generator.wait(60)
    return (after - before) / clients


def workloads(quick: bool) -> list[tuple[str, dict]]:
    s = 2 if quick else 4
    items = [
        ("WebSocket connects/s", {"workload": "connect", "clients": 10, "seconds": s}),
        ("polling handshakes/s", {"workload": "handshake", "clients": 10, "seconds": s}),
    ]
    for n in (1, 10, 100):
        items.append((f"echo+ack, {n} clients", {"workload": "echo", "clients": n, "seconds": s}))
    for n in (100, 1000) if quick else (100, 1000, 5000):
        items.append((f"broadcast to {n}", {"workload": "broadcast", "clients": n, "seconds": s + 2}))
    for n in (1000,) if quick else (1000, 5000):
        items.append((f"idle KiB/conn at {n}", {"workload": "idle", "clients": n}))
    return items


def run_round(asgi_server: str, quick: bool, results: dict) -> None:
    for app in ("realtime", "python-socketio", "bare ASGI"):
        for name, config in workloads(quick):
            if app == "bare ASGI" and not name.startswith("broadcast"):
                continue
            started = time.monotonic()
            server = Server(app, asgi_server)
            try:
                if config["workload"] == "idle":
                    value = {"rate": idle_memory(server, config["clients"])}
                else:
                    value = loadgen({**config, "bases": [server.base]})
            finally:
                server.stop()
            results.setdefault(asgi_server, {}).setdefault(name, {}).setdefault(app, []).append(value)
            took = time.monotonic() - started
            print(f"  {asgi_server:8} {app:16} {name:26} {fmt(value)}  [{took:.0f} s]", flush=True)


def run_cross_process(quick: bool, results: dict) -> None:
    """1,000 receivers over two processes on one Redis; sender on the first."""
    port = free_port()
    redis = subprocess.Popen(
        [*pin(1), "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    time.sleep(0.5)
    try:
        for app in ("realtime", "python-socketio"):
            servers = [Server(app, "daphne", env), Server(app, "daphne", env)]
            try:
                time.sleep(2)  # heartbeats: the processes know each other
                value = loadgen(
                    {
                        "bases": [s.base for s in servers],
                        "workload": "broadcast",
                        "clients": 1000,
                        "seconds": 4 if quick else 6,
                    }
                )
            finally:
                for server in servers:
                    server.stop()
            results.setdefault("daphne + Redis", {}).setdefault("broadcast to 1000 over 2 processes", {}).setdefault(
                app, []
            ).append(value)
            print(f"  cross-process {app:16} {fmt(value)}", flush=True)
        servers = [Server("realtime", "daphne", env), Server("realtime", "daphne", env)]
        try:
            time.sleep(2)
            cost = forwarding.measure(servers[0].base, servers[1].base)
        finally:
            for server in servers:
                server.stop()
        results.setdefault("forwarding", []).append(cost)
        print(
            f"  polling echo round trip: sticky {cost['sticky_p50_ms']:.2f} ms, "
            f"forwarded {cost['forwarded_p50_ms']:.2f} ms",
            flush=True,
        )
    finally:
        redis.kill()


def fmt(value: dict) -> str:
    extra = f" p50 {value['p50']:.2f} ms p99 {value['p99']:.2f} ms" if value.get("p50") is not None else ""
    cpu = f" (generator CPU {value['generator_cpu']:.0%})" if "generator_cpu" in value else ""
    return f"{value['rate']:,.1f}{extra}{cpu}"


def median(values: list[dict], key: str) -> float | None:
    xs = [v[key] for v in values if v.get(key) is not None]
    return statistics.median(xs) if xs else None


def table(results: dict) -> str:
    lines = [
        "| ASGI server | workload | realtime | python-socketio | ratio | bare ASGI | ours / bare |",
        "|---|---|---|---|---|---|---|",
    ]
    for asgi_server, rows in results.items():
        if asgi_server == "forwarding":
            continue
        for name, apps in rows.items():
            ours, peer, bare = (median(apps.get(a, []), "rate") for a in ("realtime", "python-socketio", "bare ASGI"))
            lower_is_better = name.startswith("idle")
            ratio = (ours / peer) if ours and peer else None
            cell = lambda v: "-" if v is None else f"{v:,.1f}"  # noqa: E731
            lat = ""
            if median(apps.get("realtime", []), "p99") is not None:
                lat = (
                    f" (p50/p99 ms: {median(apps['realtime'], 'p50'):.1f}/{median(apps['realtime'], 'p99'):.1f} vs "
                    f"{median(apps['python-socketio'], 'p50'):.1f}/{median(apps['python-socketio'], 'p99'):.1f})"
                )
            ratio_text = "-" if ratio is None else f"{ratio:.2f}x" + (" (lower is better)" if lower_is_better else "")
            limit = f"{ours / bare:.2f}" if ours and bare else "-"
            lines.append(
                f"| {asgi_server} | {name}{lat} | {cell(ours)} | {cell(peer)} | {ratio_text} | {cell(bare)} | {limit} |"
            )
    return "\n".join(lines)


def plot(results: dict) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for asgi_server, rows in results.items():
        if "Redis" in asgi_server or asgi_server == "forwarding":
            continue
        for app, style in (("realtime", "-o"), ("python-socketio", "--s")):
            points = sorted(
                (int(name.split()[-1]), median(apps.get(app, []), "rate"), median(apps.get(app, []), "p99"))
                for name, apps in rows.items()
                if name.startswith("broadcast to") and apps.get(app)
            )
            if not points:
                continue
            xs = [p[0] for p in points]
            left.plot(xs, [p[1] for p in points], style, label=f"{app} ({asgi_server})")
            right.plot(xs, [p[2] for p in points], style, label=f"{app} ({asgi_server})")
    for axis, title in ((left, "delivered messages/s"), (right, "p99 delivery latency (ms)")):
        axis.set_xscale("log")
        axis.set_xlabel("receivers in the room")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.legend(fontsize=8)
    fig.tight_layout()
    path = RESULTS / "scaling.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", default="daphne,uvicorn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="shorter runs, no 5,000-receiver cases")
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.bench.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    results: dict = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for round_number in range(args.rounds):
        print(f"round {round_number + 1}/{args.rounds}", flush=True)
        for asgi_server in args.servers.split(","):
            run_round(asgi_server, args.quick, results)
        if not args.no_redis:
            run_cross_process(args.quick, results)
    forwarded = results.get("forwarding", [])
    forwarding_note = ""
    if forwarded:
        sticky = statistics.median(f["sticky_p50_ms"] for f in forwarded)
        extra = statistics.median(f["forwarded_p50_ms"] for f in forwarded)
        forwarding_note = (
            f"\n\nPolling without sticky sessions (daphne + Redis, echo round trip = POST + GET, p50): "
            f"{sticky:.2f} ms when the owner answers, {extra:.2f} ms when every request is forwarded.\n"
        )
    markdown = (
        f"Measured {started} on {os.cpu_count()} cores ({os.uname().machine}), "
        f"`make bench` ({args.rounds} rounds, medians):\n\n{table(results)}\n{forwarding_note}"
    )
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "latest.md").write_text(markdown)
    path = plot(results)
    print()
    print(markdown)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
