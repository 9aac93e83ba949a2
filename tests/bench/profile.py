"""Where a workload's server CPU goes: py-spy samples one server under the benchmark's load generator.

usage: python -m tests.bench.profile '{"workload": "echo", "clients": 10, "seconds": 4}' [APP] [ASGI_SERVER]
APP is realtime (default), python-socketio or "bare ASGI"; ASGI_SERVER uvicorn (default) or daphne.
Prints the server CPU µs per operation and the functions with the largest own and total share of the
samples taken while a thread held the GIL (py-spy --gil: time the event loop spent, not waits).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from pathlib import Path

from tests.bench.run import BIN, RESULTS, Server, loadgen


def main() -> None:
    workload = json.loads(sys.argv[1])
    app = sys.argv[2] if len(sys.argv) > 2 else "realtime"
    asgi_server = sys.argv[3] if len(sys.argv) > 3 else "uvicorn"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"profile-{workload['workload']}-{app.replace(' ', '-')}-{asgi_server}.txt"
    server = Server(app, asgi_server)
    try:
        loadgen({**workload, "bases": [server.base], "seconds": 1})  # warm the code paths
        command = [str(BIN / "py-spy"), "record", "-p", str(server.process.pid), "-r", "200", "--gil"]
        command += ["-f", "raw", "-o", str(out), "-d", str(workload["seconds"] + 2)]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # py-spy attaches
        result = loadgen({**workload, "bases": [server.base]}, [server])
        spy.wait()
    finally:
        server.stop()
    print(f"{app} on {asgi_server}, {workload}: {result.get('cpu_us', 0):.1f} µs of server CPU per operation")
    report(out)


def report(path: Path, top: int = 30) -> None:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    print(f"{samples} samples; own time:")
    for frame, n in own.most_common(top):
        print(f"  {n / samples:6.1%}  {frame}")
    print("total time (realtime, Channels and Django frames):")
    ours = [(f, n) for f, n in total.most_common() if any(k in f for k in ("realtime/", "channels/", "django/"))]
    for frame, n in ours[:top]:
        print(f"  {n / samples:6.1%}  {frame}")


if __name__ == "__main__":
    main()
