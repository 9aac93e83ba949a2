"""Python handle on tests/js/sio_agent.mjs: real socket.io-client@4 sockets driven from async tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import subprocess
import threading
from collections import defaultdict
from typing import Any

from tests.servers import ROOT

AGENT = ROOT / "tests" / "js" / "sio_agent.mjs"

TRANSPORT_OPTIONS = {
    "polling": {"transports": ["polling"], "upgrade": False},
    "websocket": {"transports": ["websocket"]},
    "upgrade": {"transports": ["polling", "websocket"]},
}


def to_wire(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(value: Any) -> Any:
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        return {k: from_wire(v) for k, v in value.items()}
    return value


class NodeAgent:
    """One Node process holding any number of named sockets."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env  # e.g. NODE_EXTRA_CA_CERTS for a test certificate authority
        self.process: asyncio.subprocess.Process | None = None
        self.ids = itertools.count()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.events: dict[str, asyncio.Queue[tuple[str, list[Any]]]] = defaultdict(asyncio.Queue)
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> NodeAgent:
        self.process = await asyncio.create_subprocess_exec(
            "node",
            str(AGENT),
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self._dispatch(json.loads(line))

    def _dispatch(self, message: dict[str, Any]) -> None:
        """A command's answer resolves its future; anything else is something a socket observed."""
        if "id" in message:
            future = self.pending.pop(message["id"], None)
            if future is None or future.done():
                return
            if "error" in message:
                future.set_exception(RuntimeError(message["error"]))
            else:
                future.set_result(from_wire(message["result"]))
        else:
            self.events[message["socket"]].put_nowait((message["event"], from_wire(message["args"])))

    def _command(self, cmd: str, fields: dict[str, Any]) -> tuple[asyncio.Future[Any], bytes]:
        """A command line for the agent, and the future its answer resolves."""
        command_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[command_id] = future
        return future, (json.dumps({"id": command_id, "cmd": cmd, **fields}) + "\n").encode()

    async def call(self, cmd: str, **fields: Any) -> Any:
        assert self.process is not None and self.process.stdin is not None
        future, line = self._command(cmd, fields)
        self.process.stdin.write(line)
        await self.process.stdin.drain()
        return await asyncio.wait_for(future, 20)

    def socket(self, name: str) -> NodeSocket:
        return NodeSocket(self, name)

    async def close(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call("exit"), 2)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
        if self.reader is not None:
            self.reader.cancel()


class SharedNodeAgent(NodeAgent):
    """One Node process for the whole session, lent to each test (the ``agent`` fixture).

    Starting a Node process per test cost about 0.4 s of a core each, some two minutes of a run.
    Each test has its own event loop (pytest-asyncio), so the process is a plain subprocess read by
    a thread that hands each line to the loop of the test holding the agent. Between tests,
    ``reset`` silences and disconnects every socket; since the agent answers only after that, and
    stdout is one ordered stream, nothing a previous test's socket said can reach the next test.
    """

    def __init__(self) -> None:
        super().__init__()
        self.popen: subprocess.Popen[bytes] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def lend(self, loop: asyncio.AbstractEventLoop) -> SharedNodeAgent:
        """Start the process if it is not running, and deliver to ``loop`` from now on."""
        with self.lock:
            self.loop = loop
            self.pending = {}
            self.events = defaultdict(asyncio.Queue)
        if not self.alive:
            self.popen = subprocess.Popen(
                ["node", str(AGENT)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
            )
            threading.Thread(target=self._read_lines, args=(self.popen,), daemon=True).start()
        return self

    def _read_lines(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            with self.lock:
                loop = self.loop
            if loop is None:
                continue
            with contextlib.suppress(RuntimeError):  # that test's loop is closed: nobody is listening
                loop.call_soon_threadsafe(self._dispatch, json.loads(line))

    async def call(self, cmd: str, **fields: Any) -> Any:
        assert self.popen is not None and self.popen.stdin is not None
        future, line = self._command(cmd, fields)
        self.popen.stdin.write(line)
        return await asyncio.wait_for(future, 20)

    async def give_back(self) -> None:
        """After a test: every socket gone; a process that cannot say so is replaced next time."""
        if not self.alive:
            return
        try:
            await asyncio.wait_for(self.call("reset"), 5)
        except Exception:
            self.stop()
        with self.lock:
            self.loop = None

    def stop(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait()
            self.popen = None


class NodeSocket:
    def __init__(self, agent: NodeAgent, name: str) -> None:
        self.agent = agent
        self.name = name
        self.id: str | None = None
        self.transport: str | None = None

    @property
    def queue(self) -> asyncio.Queue[tuple[str, list[Any]]]:
        return self.agent.events[self.name]

    async def open(self, url: str, transport: str = "websocket", **options: Any) -> NodeSocket:
        await self.agent.call("open", socket=self.name, url=url, options={**TRANSPORT_OPTIONS[transport], **options})
        return self

    async def connect(self, url: str, transport: str = "websocket", **options: Any) -> NodeSocket:
        """Open and wait for the connect event (raises on connect_error)."""
        await self.open(url, transport, **options)
        kind, args = await self.next("connect", "connect_error")
        if kind == "connect_error":
            raise ConnectionError(*args)
        self.id, self.transport = args
        return self

    async def next(self, *kinds: str, timeout: float = 5.0) -> tuple[str, list[Any]]:
        """The next observation of one of ``kinds`` (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                kind, args = await self.queue.get()
                if kind in kinds:
                    return kind, args

    async def next_event(self, name: str, timeout: float = 5.0) -> list[Any]:
        """The arguments of the next server event called ``name``."""
        async with asyncio.timeout(timeout):
            while True:
                kind, args = await self.queue.get()
                if kind == "event" and args[0] == name:
                    return args[1:]

    def drain(self) -> list[tuple[str, list[Any]]]:
        seen = []
        while not self.queue.empty():
            seen.append(self.queue.get_nowait())
        return seen

    async def emit(self, event: str, *args: Any) -> None:
        await self.agent.call("emit", socket=self.name, event=event, args=to_wire(list(args)))

    async def emit_with_ack(self, event: str, *args: Any, timeout: int = 5000) -> list[Any]:
        """Every argument the server acknowledged with, as a list."""
        return await self.agent.call(
            "emitWithAck", socket=self.name, event=event, args=to_wire(list(args)), timeout=timeout
        )

    async def reply(self, event: str, *answer: Any) -> None:
        await self.agent.call("reply", socket=self.name, event=event, **{"with": to_wire(list(answer))})

    async def silent(self, event: str) -> None:
        await self.agent.call("silent", socket=self.name, event=event)

    async def disconnect(self) -> None:
        await self.agent.call("disconnect", socket=self.name)

    async def break_transport(self) -> None:
        await self.agent.call("break", socket=self.name)

    async def state(self) -> dict[str, Any]:
        return await self.agent.call("state", socket=self.name)
