"""What the metrics cost (issue 20): server CPU per ack and per delivery with them on, off, and before them.

Three variants of realtime run the same two workloads, interleaved round by round so that
machine noise hits them alike, each pinned to core 0 with the Node generator on core 1:

- ``metrics on``: the defaults (``REALTIME["METRICS"] = True``: every counter, and the handler and
  emit_with_ack timings);
- ``metrics off``: ``REALTIME["METRICS"] = False`` (the counters the admin dashboard reads stay, the
  timings go);
- ``before``: with ``--baseline COMMIT``, that commit checked out in a temporary git worktree and
  run with this venv: realtime as it was before it counted anything.

The figure is the server's CPU µs per operation (per ack for the echo, per delivered message for
the broadcast), the median of the rounds, and its ratio to ``before`` (or to ``metrics off``).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.bench.run import ROOT, Server, loadgen

CASES = (
    ("echo+ack, 10 clients (µs per ack)", {"workload": "echo", "clients": 10, "seconds": 5}),
    ("broadcast to 1,000 (µs per delivery)", {"workload": "broadcast", "clients": 1000, "seconds": 6}),
)


def variants(baseline: Path | None) -> dict[str, tuple[dict[str, str], Path]]:
    found = {
        "metrics on": ({"REALTIME_BENCH_METRICS": "1"}, ROOT),
        "metrics off": ({"REALTIME_BENCH_METRICS": "0"}, ROOT),
    }
    if baseline is not None:
        found["before"] = ({}, baseline)
    return found


def worktree(commit: str) -> Path:
    """``commit`` checked out beside this one (removed by ``drop_worktree``)."""
    path = Path(tempfile.mkdtemp(prefix="realtime-before-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True, capture_output=True)
    return path


def drop_worktree(path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False, capture_output=True)


def measure(asgi_servers: list[str], rounds: int, baseline: str | None) -> str:
    """Run the comparison; the Markdown table of its medians."""
    checkout = worktree(baseline) if baseline else None
    results: dict[tuple[str, str, str], list[float]] = {}
    try:
        for number in range(rounds):
            print(f"metrics cost, round {number + 1}/{rounds}", flush=True)
            for asgi_server in asgi_servers:
                for name, config in CASES:
                    for variant, (env, cwd) in variants(checkout).items():
                        server = Server("realtime", asgi_server, env=env, cwd=cwd)
                        try:
                            time.sleep(1)  # a benchmark, not a test: let the process settle before measuring
                            value = loadgen({**config, "bases": [server.base]}, [server])
                        finally:
                            server.stop()
                        results.setdefault((asgi_server, name, variant), []).append(value["cpu_us"])
                        print(f"  {asgi_server:8} {variant:12} {name:38} {value['cpu_us']:.2f} µs", flush=True)
    finally:
        if checkout is not None:
            drop_worktree(checkout)
    return table(results, asgi_servers, baseline)


def table(results: dict[tuple[str, str, str], list[float]], asgi_servers: list[str], baseline: str | None) -> str:
    reference = "before" if baseline else "metrics off"
    names = list(variants(Path() if baseline else None))
    head = " | ".join(names)
    lines = [
        f"| ASGI server | workload | {head} | on / {reference} (medians) | on / {reference} (median of each round's) "
        "| spread of `metrics on` |",
        "|---|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for asgi_server in asgi_servers:
        for name, _ in CASES:
            medians = {v: statistics.median(results[(asgi_server, name, v)]) for v in names}
            on = results[(asgi_server, name, "metrics on")]
            spread = f"{min(on):.2f} to {max(on):.2f}"
            cells = " | ".join(f"{medians[v]:.2f}" for v in names)
            ratio = medians["metrics on"] / medians[reference]
            # the runs of one round are back to back: their ratio shares the machine's mood of the moment
            paired = statistics.median(a / b for a, b in zip(on, results[(asgi_server, name, reference)], strict=True))
            lines.append(f"| {asgi_server} | {name} | {cells} | {ratio:.3f}x | {paired:.3f}x | {spread} |")
    note = f" (`before` is {baseline})" if baseline else ""
    return "Server CPU µs per operation, medians" + note + ":\n\n" + "\n".join(lines) + "\n"
