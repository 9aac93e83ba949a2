"""What both Engine.IO consumers share: the endpoint, the request checks, no per-message thread hop."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from ..node import node
from ..protocol.http import Request
from ..sessions import ClientRequest, Endpoint

logger = logging.getLogger("realtime.engineio")


class EngineConsumer(AsyncConsumer):
    """A Channels consumer bound to one Endpoint.

    It has no channel-layer channel of its own (sessions get one when they
    need it) and skips Channels' ``close_old_connections`` thread hop before
    every message: nothing here touches the ORM.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' loop without its per-message ``asyncio.wait``: we read only the client.

        AsyncConsumer multiplexes the client and a channel-layer channel with an
        ``asyncio.wait`` and two ``ensure_future`` per message; with no channel
        of our own, one plain await does the same for a tenth of the work.
        """
        self.scope = scope
        self.base_send = send
        self.channel_layer = None
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        if not node.serving:
            await node.start(serving=True)  # the first request makes this process a cluster member
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def engine_request(self, method: str, websocket: bool) -> Request:
        headers = dict(self.scope.get("headers", ()))
        origin = headers.get(b"origin")
        host = headers.get(b"host")
        return Request(
            method=method,
            query=dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1"))),
            origin=origin.decode("latin-1") if origin is not None else None,
            host=host.decode("latin-1") if host is not None else None,
            websocket=websocket,
        )

    def client_request(self) -> ClientRequest:
        """The handshake request as values for the Session (and the Socket.IO handshake)."""
        scope = self.scope
        query_string = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client") or ("", 0)
        return ClientRequest(
            path=scope.get("path", ""),
            query_string=query_string,
            query=dict(parse_qsl(query_string)),
            raw_headers=tuple(scope.get("headers", ())),
            address=client[0],
            secure=scope.get("scheme") in ("https", "wss"),
            user=scope.get("user"),
        )

    def client_label(self) -> str:
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else "?"

    @staticmethod
    def stop() -> None:
        raise StopConsumer()
