"""WebSocket: a session of its own (``upgrades: []``) or the upgrade of a polling session."""

from __future__ import annotations

import logging
from typing import Any

from ..node import node
from ..protocol.engine import Transport
from ..protocol.http import SESSION_ID_UNKNOWN, check_request
from ..sessions import Session
from . import forwarding
from .base import EngineConsumer
from .exchange import SHUTTING_DOWN

logger = logging.getLogger("realtime.engineio")

MESSAGE_TOO_BIG = 1009  # RFC 6455 close code


class WebSocketConsumer(EngineConsumer):
    """One WebSocket connection on the Engine.IO path."""

    def __init__(self, endpoint: Any) -> None:
        super().__init__(endpoint)
        self.session: Session | None = None
        self.relay_id: str | None = None
        self.relayed_sid = ""

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        request = self.engine_request("GET", websocket=True)
        refusal = check_request(
            request, transports=self.endpoint.transports, allowed_origins=self.endpoint.allowed_origins
        )
        sid = request.query.get("sid")
        relayed = False
        if refusal is None and sid is not None and sid not in self.endpoint.sessions:
            route = await forwarding.route(sid)
            if route is forwarding.Route.NOWHERE:  # logged, rate-limited, by route()
                await self.send({"type": "websocket.close", "code": 1008})
                return
            relayed = route is forwarding.Route.FORWARD
            if not relayed:
                refusal = SESSION_ID_UNKNOWN
        if refusal is None and sid is None and node.draining:
            refusal = SHUTTING_DOWN  # a load balancer or the client tries another process
        if refusal is not None:
            logger.warning(
                "WebSocket %s from %s refused: %s (code %d, sid=%s)",
                self.scope["path"],
                self.client_label(),
                refusal.message,
                refusal.code,
                sid,
            )
            await self.send({"type": "websocket.close", "code": 1008})
            return
        await self.send({"type": "websocket.accept"})
        if sid is None:
            self.session = self.endpoint.create(Transport.WEBSOCKET, self.client_request())
            logger.debug("sid=%s opened over websocket from %s", self.session.sid, self.client_label())
            await self.session.start(websocket=self)
            return
        if relayed:
            await self.start_relay(sid)
            return
        session = self.endpoint.sessions[sid]
        if session.attach_probe(self):
            self.session = session
        else:
            # spec: a second WebSocket for an upgraded sid is accepted, then closed
            logger.warning(
                "sid=%s: extra WebSocket from %s closed (already upgraded or probing)", sid, self.client_label()
            )
            await self.shut()

    async def start_relay(self, sid: str) -> None:
        """The session lives in another process: pipe this WebSocket to it through the layer."""
        self.relayed_sid = sid
        self.relay_id = await forwarding.attach_relay(self, self.endpoint.path, sid)
        if self.relay_id is None:
            logger.warning("sid=%s: WebSocket from %s refused by the owning process", sid, self.client_label())
            await self.shut()

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes") or b""
        if _size(frame) > self.endpoint.config.max_payload:
            await self.too_large()
        elif self.relay_id is not None:
            await forwarding.relay_in(self.relayed_sid, self.relay_id, frame)
        elif self.session is not None:
            await self.session.receive_frame(frame, self)

    async def too_large(self) -> None:
        """A frame over MAX_PAYLOAD ends the session; the client sees close code 1009."""
        logger.warning("sid=%s closed: WebSocket frame over MAX_PAYLOAD", self.session.sid if self.session else "?")
        if self.relay_id is not None:
            await forwarding.relay_gone(self.relayed_sid, self.relay_id)
            self.relay_id = None
        elif self.session is not None:
            await self.session.payload_too_large(self)
        await self.shut(MESSAGE_TOO_BIG)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.relay_id is not None:
            await forwarding.relay_gone(self.relayed_sid, self.relay_id)
            self.relay_id = None
        if self.session is not None:
            await self.session.websocket_closed(self)
            self.session = None
        self.stop()

    # -- FrameSink, used by the Session ---------------------------------
    async def write(self, frame: str | bytes) -> None:
        if isinstance(frame, str):
            await self.base_send({"type": "websocket.send", "text": frame})
        else:
            await self.base_send({"type": "websocket.send", "bytes": frame})

    async def shut(self, code: int = 1000) -> None:
        await self.send({"type": "websocket.close", "code": code})


def _size(frame: str | bytes) -> int:
    """Bytes on the wire; text is only encoded when its length alone cannot decide."""
    if isinstance(frame, str) and not frame.isascii():
        return len(frame.encode("utf-8"))
    return len(frame)
