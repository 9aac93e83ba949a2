"""Two (or more) runtimes over one in-memory channel layer in one event loop: a cluster without servers.

Each ``Process`` is a Runtime with an Endpoint and a Socket.IO Server of its
own; ``Client`` is a fake WebSocket (a FrameSink that records every frame)
attached to a real Session of one process, driven with raw Engine.IO and
Socket.IO frames, as h11 tests a client against a server in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from channels.layers import InMemoryChannelLayer

from realtime.protocol.engine import EngineConfig, Transport
from realtime.runtime import Runtime
from realtime.server import Client as SocketIOClient
from realtime.server import Server, io, start_runtime
from realtime.sessions import ClientRequest, Endpoint, Session

PATH = "/socket.io"
WAIT = 2.0  # longest wait for a frame, in seconds (no sleeps: every wait is on an event)


class Process:
    """One runtime, as one server process would have it."""

    def __init__(self, layer: InMemoryChannelLayer) -> None:
        self.server = Server()
        io.load()
        self.server.classes = list(io.classes)  # the project's namespaces (tests/settings.py)
        self.server._loaded = True
        self.runtime: Runtime = start_runtime(self.server, layer=layer, clustered=True)
        config = EngineConfig(ping_interval=25_000, ping_timeout=20_000, max_payload=1_000_000)
        self.endpoint = self.runtime.serve(Endpoint(config, self._client), PATH)

    def _client(self, session: Session) -> SocketIOClient:
        return SocketIOClient(session, self.server)

    async def start(self) -> None:
        await self.runtime.member.start(serving=True)

    async def stop(self) -> None:
        await self.runtime.member.stop()

    async def connect(self, namespace: str = "/", auth: Any = None) -> Client:
        """A WebSocket client with a session here, connected to ``namespace``."""
        client = Client(self)
        await client.open()
        await client.connect(namespace, auth)
        return client


class Client:
    """A client's WebSocket as the Session sees it: every frame written to it lands in ``frames``."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.frames: list[str | bytes] = []
        self.arrived = asyncio.Event()
        self.shut_code: int | None = None
        self.session: Session | None = None
        self.sids: dict[str, str] = {}
        self._acks = 0

    # -- FrameSink ---------------------------------------------------------------
    async def write(self, frame: str | bytes) -> None:
        self.frames.append(frame)
        self.arrived.set()

    async def shut(self, code: int = 1000) -> None:
        self.shut_code = code
        self.arrived.set()

    def buffered(self) -> int:
        return 0

    def abort(self) -> None:
        self.shut_code = 1006

    # -- driving -----------------------------------------------------------------
    async def open(self) -> None:
        request = ClientRequest(PATH, "EIO=4", {"EIO": "4"}, (), "127.0.0.1", False)
        self.session = self.process.endpoint.create(Transport.WEBSOCKET, request)
        await self.session.start(websocket=self)
        await self.next(lambda f: isinstance(f, str) and f.startswith("0"))

    async def send(self, frame: str | bytes) -> None:
        assert self.session is not None
        await self.session.receive_frame(frame, self)

    async def connect(self, namespace: str = "/", auth: Any = None) -> str:
        prefix = "" if namespace == "/" else f"{namespace},"
        await self.send(f"40{prefix}{json.dumps(auth) if auth is not None else ''}")
        frame = await self.next(lambda f: isinstance(f, str) and f.startswith(f"40{prefix}{{"))
        self.sids[namespace] = json.loads(frame[len(f"40{prefix}") :])["sid"]
        return self.sids[namespace]

    @property
    def id(self) -> str:
        return self.sids["/"]

    async def call(self, event: str, *args: Any, namespace: str = "/") -> Any:
        """Emit ``event`` with an ack id and wait for the answer: its arguments."""
        ack = self._acks
        self._acks += 1
        prefix = "" if namespace == "/" else f"{namespace},"
        await self.send(f"42{prefix}{ack}{json.dumps([event, *args])}")
        frame = await self.next(lambda f: isinstance(f, str) and f.startswith(f"43{prefix}{ack}["))
        return json.loads(frame[len(f"43{prefix}{ack}") :])

    async def next(self, wanted: Any) -> str | bytes:
        """The first recorded frame for which ``wanted(frame)`` is true (taken out), waiting for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            for i, frame in enumerate(self.frames):
                if wanted(frame):
                    return self.frames.pop(i)
            self.arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no such frame within {WAIT} s; got {self.frames!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)

    def events(self, name: str) -> list[list[Any]]:
        """Every ``name`` event received so far (taken out): their arguments."""
        found, kept = [], []
        for frame in self.frames:
            if isinstance(frame, str) and frame.startswith("42"):
                body = frame[2:]
                if body.startswith("/"):
                    body = body.split(",", 1)[1]
                packet = json.loads(body[body.index("[") :])
                if packet[0] == name:
                    found.append(packet[1:])
                    continue
            kept.append(frame)
        self.frames = kept
        return found
