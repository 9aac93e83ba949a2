"""Instructions per operation of realtime's own code, counted by valgrind: what the metrics cost, without noise.

``make bench`` measures server CPU time, which on a shared 2-core machine moves by 10-20 %
between runs: too much to see a few per cent. This drives realtime's real code path (the
router, the WebSocket consumer, the session, the Socket.IO server, a real handler) in one
process, through an ASGI ``receive``/``send`` pair instead of a server, and has
``valgrind --tool=callgrind`` count the instructions. Each workload runs twice, with N and
5N operations; the difference divided by 4N is the count per operation, start-up and
warm-up cancelled out. With a fixed hash seed the counts repeat to a fraction of a per cent.

The count covers realtime and Python under it, not the ASGI server (uvicorn's or daphne's
own work per frame), so the share the metrics take of it is an upper bound of their share of
the server's CPU.

    python -m tests.bench.instructions                       # this checkout
    python -m tests.bench.instructions --baseline 98dd630    # and a commit before, side by side
    python -m tests.bench.instructions --drive echo 2000     # (what valgrind runs)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORKLOADS = {"echo": 1000, "broadcast": 40}  # operations of the short run (acks; broadcasts to RECEIVERS)
RECEIVERS = 1000


async def drive(workload: str, count: int) -> None:
    """Run ``count`` operations of ``workload`` against realtime's ASGI app, in this process."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")
    django.setup()
    from django.conf import settings

    settings.REALTIME = {**settings.REALTIME, "REGISTRY": False}
    from realtime.broadcast import BroadcastOperator
    from realtime.routing import SocketIORouter

    app = SocketIORouter(None)
    gc.disable()  # a collection lands at a different operation in each run: counted, it is noise
    if workload == "echo":
        client = await Connection.open(app)
        for i in range(count):
            await client.send(f'42{i}["echo",{i}]')
            await client.expect(f"43{i}[{i}]")
    else:
        clients = [await Connection.open(app) for _ in range(RECEIVERS)]
        operator = BroadcastOperator("/")
        for i in range(count):
            await operator.emit("tick", i, "a message of some forty characters or so")
            for client in clients:
                client.sent.clear()


class Connection:
    """A WebSocket client as the ASGI app sees it: a receive queue, and a send that records frames."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.sent: list[str] = []
        self.arrived = asyncio.Event()

    @classmethod
    async def open(cls, app: object) -> Connection:
        connection = cls()
        scope = {
            "type": "websocket",
            "path": "/socket.io/",
            "query_string": b"EIO=4&transport=websocket",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "scheme": "ws",
        }
        connection.task = asyncio.get_running_loop().create_task(app(scope, connection.inbox.get, connection.record))  # type: ignore[operator]
        await connection.inbox.put({"type": "websocket.connect"})
        await connection.expect_prefix("0{")
        await connection.send("40")
        await connection.expect_prefix("40{")
        return connection

    async def record(self, message: dict[str, object]) -> None:
        if message["type"] == "websocket.send":
            self.sent.append(str(message.get("text")))
            self.arrived.set()

    async def send(self, text: str) -> None:
        await self.inbox.put({"type": "websocket.receive", "text": text})

    async def expect(self, frame: str) -> None:
        await self.expect_prefix(frame)

    async def expect_prefix(self, prefix: str) -> None:
        while True:
            for i, text in enumerate(self.sent):
                if text.startswith(prefix):
                    del self.sent[: i + 1]
                    return
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 30)


def count(checkout: Path, workload: str, operations: int) -> int:
    """Instructions valgrind counted for one run of ``workload`` in ``checkout``."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={scratch}/out",
            sys.executable,
            "-m",
            "tests.bench.instructions",
            "--drive",
            workload,
            str(operations),
        ]
        # a fixed hash seed: with a random one, dict and set layouts (and so the counts) differ run to run
        env = {
            **os.environ,
            "PYTHONPATH": str(checkout),
            "PYTHONHASHSEED": "0",
            "DJANGO_SETTINGS_MODULE": "tests.bench.settings",
        }
        done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", done.stderr)[1])  # type: ignore[index]


def per_operation(checkout: Path, workload: str) -> float:
    short = WORKLOADS[workload]
    return (count(checkout, workload, 5 * short) - count(checkout, workload, short)) / (4 * short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drive", nargs=2, metavar=("WORKLOAD", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help="a commit to count beside this checkout")
    args = parser.parse_args()
    if args.drive:
        asyncio.run(drive(args.drive[0], int(args.drive[1])))
        return
    trees = {"this checkout": ROOT}
    worktree = None
    if args.baseline:
        worktree = Path(tempfile.mkdtemp(prefix="realtime-before-"))
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True)
        trees[args.baseline] = worktree
        (worktree / "tests" / "bench" / "instructions.py").write_text(Path(__file__).read_text())
    try:
        print("| workload | " + " | ".join(trees) + (" | ratio |" if worktree else " |"))
        print("|---|" + "---|" * len(trees) + ("---|" if worktree else ""))
        for workload in WORKLOADS:
            counts = {name: per_operation(tree, workload) for name, tree in trees.items()}
            unit = "per ack" if workload == "echo" else "per delivery"
            values = list(counts.values())
            if workload == "broadcast":
                values = [v / RECEIVERS for v in values]
            ratio = f" | {values[0] / values[1]:.4f}x" if worktree else ""
            print(f"| {workload} ({unit}) | " + " | ".join(f"{v:,.0f}" for v in values) + ratio + " |", flush=True)
    finally:
        if worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
