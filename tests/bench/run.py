"""`make bench`: realtime against python-socketio, a bare ASGI app and Node's socket.io, in one run.

Each round starts every app fresh, pinned to core 0 with the Node load generator on core 1, and
runs every workload; rounds interleave the apps so that machine noise hits them alike:

- realtime and python-socketio on daphne and on uvicorn;
- the bare ASGI app (bare_app.py: the same frames, no Socket.IO logic) on both, every workload:
  what the ASGI server itself costs;
- Node's socket.io 4.8 (node_server.mjs), once per round (no ASGI server under it);
- two processes on one Redis (daphne and uvicorn; Node with @socket.io/redis-adapter).

The primary figure is the server's CPU time per operation (µs of user + system time of the server
processes, read from /proc at the load generator's start and end marks, divided by the operations
done): it survives machine noise and a load generator that saturates its core, which rates do not.
A run whose generator used over 85 % of its core is flagged: its rate measures the generator too.
The table gives medians; results/ gets the JSON, the table as Markdown, and the scaling plot.
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
from collections.abc import Sequence
from pathlib import Path

from tests.bench import forwarding

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GENERATOR_BOUND = 0.85  # a generator over this share of its core measures itself as much as the server

APPS = {
    "realtime": ("tests.bench.asgi:application", "off"),
    "python-socketio": ("tests.bench.peer_app:application", "off"),
    "bare ASGI": ("tests.bench.bare_app:application", "on"),
}
NODE = "Node socket.io"
COLUMNS = ("realtime", "python-socketio", "bare ASGI", NODE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


class Server:
    """One server process (``taskset`` execs it, so the Popen pid is the server's own)."""

    def __init__(
        self, app: str, asgi_server: str, env: dict[str, str] | None = None, core: int = 0, cwd: Path = ROOT
    ) -> None:
        self.port = free_port()
        if app == NODE:
            command = ["node", str(HERE / "node_server.mjs"), str(self.port)]
            if env and env.get("REDIS_URL"):
                command.append(env["REDIS_URL"])
        elif asgi_server == "daphne":
            command = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), APPS[app][0]]
        else:
            module, lifespan = APPS[app]
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
            pin(core) + command, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (its threads included)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def loadgen(config: dict, servers: Sequence[Server] = (), core: int = 1) -> dict:
    """Run the generator; with ``servers``, add their CPU µs per operation between its phase marks."""
    generator = subprocess.Popen(
        [*pin(core), "node", str(HERE / "loadgen.mjs"), json.dumps(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert generator.stdout is not None
    cpu: list[float] = []
    last = ""
    for line in generator.stdout:
        last = line.strip() or last
        if line.startswith('{"phase"'):
            cpu.append(sum(s.cpu_seconds() for s in servers))
    generator.wait(config.get("seconds", 5) + 300)
    if generator.returncode != 0 or not last:
        raise RuntimeError(f"load generator failed: {last[-500:]} {generator.stderr.read()[-1500:]}")
    result = json.loads(last)
    operations = result.get("delivered", result.get("count"))
    if servers and len(cpu) == 2 and operations:
        result["cpu_us"] = (cpu[1] - cpu[0]) * 1e6 / operations
        result["server_cpu"] = (cpu[1] - cpu[0]) / result["elapsed"]
    return result


def idle_memory(server: Server, clients: int) -> float:
    """KiB of server memory per idle connected Socket.IO client."""
    loadgen({"bases": [server.base], "workload": "echo", "clients": 50, "seconds": 1})  # warm the code paths
    time.sleep(1)
    before = server.rss_kib()
    config = {"bases": [server.base], "workload": "idle", "clients": clients, "seconds": 0}
    generator = subprocess.Popen(
        [*pin(1), "node", str(HERE / "loadgen.mjs"), json.dumps(config)],
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


def measure_one(app: str, asgi_server: str, config: dict) -> dict:
    server = Server(app, asgi_server)
    try:
        if config["workload"] == "idle":
            return {"rate": idle_memory(server, config["clients"])}
        return loadgen({**config, "bases": [server.base]}, [server])
    finally:
        server.stop()


def run_round(asgi_servers: list[str], quick: bool, results: dict, node: bool) -> None:
    apps = [(app, asgi_server) for asgi_server in asgi_servers for app in APPS]
    if node:
        apps.append((NODE, "node"))
    for app, asgi_server in apps:
        for name, config in workloads(quick):
            started = time.monotonic()
            value = measure_one(app, asgi_server, config)
            results.setdefault(asgi_server, {}).setdefault(name, {}).setdefault(app, []).append(value)
            took = time.monotonic() - started
            print(f"  {asgi_server:8} {app:16} {name:26} {fmt(value)}  [{took:.0f} s]", flush=True)


def run_cross_process(asgi_servers: list[str], quick: bool, results: dict, node: bool) -> None:
    """1,000 and 5,000 receivers over two processes on one Redis; the sender on the first."""
    port = free_port()
    redis = subprocess.Popen(
        [*pin(1), "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    time.sleep(0.5)
    sizes = (1000,) if quick else (1000, 5000)
    cases = [(app, asgi_server) for asgi_server in asgi_servers for app in ("realtime", "python-socketio")]
    if node:
        cases.append((NODE, "node"))
    try:
        for app, asgi_server in cases:
            for clients in sizes:
                servers = [Server(app, asgi_server, env), Server(app, asgi_server, env)]
                try:
                    time.sleep(2)  # heartbeats: the processes know each other
                    config = {"workload": "broadcast", "clients": clients, "seconds": 4 if quick else 6}
                    value = loadgen({**config, "bases": [s.base for s in servers]}, servers)
                finally:
                    for server in servers:
                        server.stop()
                row = f"broadcast to {clients} over 2 processes"
                results.setdefault(f"{asgi_server} + Redis", {}).setdefault(row, {}).setdefault(app, []).append(value)
                print(f"  {asgi_server} + Redis {app:16} {row:34} {fmt(value)}", flush=True)
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
    cpu = f" cpu {value['cpu_us']:.1f} µs/op" if value.get("cpu_us") is not None else ""
    gen = f" (generator CPU {value['generator_cpu']:.0%})" if "generator_cpu" in value else ""
    return f"{value['rate']:,.1f}{cpu}{extra}{gen}"


def median(values: list[dict], key: str) -> float | None:
    xs = [v[key] for v in values if v.get(key) is not None]
    return statistics.median(xs) if xs else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def table(results: dict) -> str:
    """One row per server and workload: rates, CPU per operation, ratios, latency, generator load."""
    lines = [
        "| ASGI server | workload | realtime | python-socketio | bare ASGI | Node 4.8 | ours / python-socketio | "
        "ours / bare | ours / Node | server CPU µs/op: ours, bare, Node (ours / bare) | p50 / p99 ms: ours, Node |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    node_rows = results.get("node", {})
    node_redis = results.get("node + Redis", {})
    for asgi_server, rows in results.items():
        if asgi_server in ("forwarding", "node", "node + Redis"):
            continue
        node_source = node_redis if asgi_server.endswith("Redis") else node_rows
        for name, apps in rows.items():
            apps = {**apps, NODE: node_source.get(name, {}).get(NODE, [])}
            rate = {app: median(apps.get(app, []), "rate") for app in COLUMNS}
            cpu = {app: median(apps.get(app, []), "cpu_us") for app in COLUMNS}
            idle = name.startswith("idle")
            cell = lambda v: "-" if v is None else f"{v:,.1f}"  # noqa: E731
            bound = [
                app
                for app in COLUMNS
                if (g := median(apps.get(app, []), "generator_cpu")) is not None and g > GENERATOR_BOUND
            ]
            flag = f" ⚠ generator > 85 % for {', '.join(bound)}" if bound else ""
            ours = rate["realtime"]
            cpu_cell = "-"
            if cpu["realtime"] is not None:
                cpu_cell = f"{cell(cpu['realtime'])}, {cell(cpu['bare ASGI'])}, {cell(cpu[NODE])} " + (
                    f"({_ratio(cpu['realtime'], cpu['bare ASGI'])})"
                )
            latency = "-"
            if median(apps.get("realtime", []), "p99") is not None:
                p = {app: (median(apps.get(app, []), "p50"), median(apps.get(app, []), "p99")) for app in COLUMNS}
                (ours50, ours99), (node50, node99) = p["realtime"], p[NODE]
                latency = f"{cell(ours50)} / {cell(ours99)}, {cell(node50)} / {cell(node99)}"
            lower = " (lower is better)" if idle else ""
            lines.append(
                f"| {asgi_server} | {name}{flag} | {cell(ours)} | {cell(rate['python-socketio'])} | "
                f"{cell(rate['bare ASGI'])} | {cell(rate[NODE])} | {_ratio(ours, rate['python-socketio'])}{lower} | "
                f"{_ratio(ours, rate['bare ASGI'])}{lower} | {_ratio(ours, rate[NODE])}{lower} | "
                f"{cpu_cell} | {latency} |"
            )
    return "\n".join(lines)


def plot(results: dict) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    series = [(server, app) for server in ("daphne", "uvicorn") for app in ("realtime", "python-socketio", "bare ASGI")]
    series.append(("node", NODE))
    for asgi_server, app in series:
        rows = results.get(asgi_server, {})
        points = sorted(
            (int(name.split()[-1]), median(apps.get(app, []), "rate"), median(apps.get(app, []), "p99"))
            for name, apps in rows.items()
            if name.startswith("broadcast to") and apps.get(app)
        )
        if not points:
            continue
        style = {"realtime": "-o", "python-socketio": "--s", "bare ASGI": ":^", NODE: "-.d"}[app]
        label = app if app == NODE else f"{app} ({asgi_server})"
        xs = [p[0] for p in points]
        left.plot(xs, [p[1] for p in points], style, label=label)
        right.plot(xs, [p[2] for p in points], style, label=label)
    for axis, title in ((left, "delivered messages/s"), (right, "p99 delivery latency (ms)")):
        axis.set_xscale("log")
        axis.set_xlabel("receivers in the room")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.legend(fontsize=7)
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
    parser.add_argument("--no-node", action="store_true")
    parser.add_argument("--no-metrics-cost", action="store_true", help="skip the metrics on/off comparison")
    parser.add_argument("--metrics-only", action="store_true", help="only the metrics on/off comparison")
    parser.add_argument("--baseline", help="a commit to measure beside the metrics on/off runs (e.g. one before them)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.bench.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    results: dict = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    servers = args.servers.split(",")
    metrics_cost = ""
    if not args.no_metrics_cost:
        from tests.bench import metrics_cost as cost

        metrics_cost = cost.measure(servers, max(args.rounds, 3), args.baseline)
        (RESULTS / "metrics-cost.md").write_text(f"Measured {started}, `make bench`.\n\n{metrics_cost}")
        print(metrics_cost)
        if args.metrics_only:
            return
    for round_number in range(args.rounds):
        print(f"round {round_number + 1}/{args.rounds}", flush=True)
        run_round(servers, args.quick, results, node=not args.no_node)
        if not args.no_redis:
            run_cross_process(servers, args.quick, results, node=not args.no_node)
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
        f"`make bench` ({args.rounds} rounds, medians; server CPU is user + system time per operation, "
        f"per delivered message for broadcasts):\n\n{table(results)}\n{forwarding_note}"
    )
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "latest.md").write_text(markdown)
    path = plot(results)
    print()
    print(markdown)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
