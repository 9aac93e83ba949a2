"""The guide's chat namespace driven by real clients: socket.io-client (Node) and python-socketio.

Both speak to ``/chat`` as README step 4 defines it: ``join`` answers
``{"joined": room}``, ``message`` answers ``"delivered"`` and reaches the room,
and ``announce/`` (step 5) emits ``announcement`` from a view.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.parse
import urllib.request
from typing import Any

import aiohttp
import socketio

from tests.clients.node import NodeAgent, NodeSocket

PYTHON_TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": ["polling", "websocket"]}


class PythonChat:
    """A python-socketio AsyncClient on /chat whose events land in a queue.

    ``source``: the local address its connections are made from (any of 127.0.0.0/8 on Linux),
    so that one test process can be many clients as a server behind a proxy sees them.
    """

    def __init__(self, cafile: str | None = None, source: str | None = None) -> None:
        self.cafile = cafile
        self.source = source
        self.http: aiohttp.ClientSession | None = None
        self.client: socketio.AsyncClient | None = None
        self.events: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()

    async def connect(self, url: str, transport: str, room: str, headers: dict[str, str] | None = None) -> PythonChat:
        """Connect to /chat and join ``room``; closed again if either fails."""
        options: dict[str, Any] = {}
        if self.cafile:
            options["ssl"] = ssl.create_default_context(cafile=self.cafile)
        if self.source:
            options["local_addr"] = (self.source, 0)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(**options) if options else None)
        self.client = socketio.AsyncClient(reconnection=False, http_session=self.http)

        async def anything(event: str, *args: Any) -> None:
            self.events.put_nowait((event, args))

        self.client.on("*", anything, namespace="/chat")
        try:
            await self.client.connect(
                url,
                headers=headers or {},
                namespaces=["/chat"],
                transports=PYTHON_TRANSPORTS[transport],
                wait_timeout=10,
            )
            assert await self.client.call("join", room, namespace="/chat", timeout=10) == {"joined": room}
        except BaseException:
            await self.close()
            raise
        return self

    @property
    def sid(self) -> str:
        assert self.client is not None
        return self.client.eio.sid

    @property
    def socket_id(self) -> str:
        """The id of its socket on /chat (the registry's ``Connection.socket_id``)."""
        assert self.client is not None
        return self.client.get_sid("/chat")

    async def next_event(self, name: str, timeout: float = 10) -> tuple[Any, ...]:
        async with asyncio.timeout(timeout):
            while True:
                event, args = await self.events.get()
                if event == name:
                    return args

    async def close(self) -> None:
        if self.client is not None:
            await self.client.disconnect()
        if self.http is not None:
            await self.http.close()


async def node_chat(agent: NodeAgent, name: str, url: str, transport: str, room: str) -> NodeSocket:
    socket = await agent.socket(name).open(f"{url}/chat", transport)
    # 15 s, not NodeSocket.connect's 5: a freshly started site imports Django on its first requests
    kind, args = await socket.next("connect", "connect_error", timeout=15)
    assert kind == "connect", args
    socket.id, socket.transport = args
    assert await socket.emit_with_ack("join", room) == [{"joined": room}]
    return socket


def announce(url: str, room: str, text: str, cafile: str | None = None) -> dict[str, Any]:
    """POST to the guide's view (from a thread: the event loop keeps serving the clients)."""
    body = urllib.parse.urlencode({"room": room, "text": text}).encode()
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(f"{url}/announce/", data=body, timeout=10, context=context) as answer:
        return json.loads(answer.read())


async def aannounce(url: str, room: str, text: str, cafile: str | None = None) -> None:
    assert await asyncio.to_thread(announce, url, room, text, cafile) == {"sent": room}
