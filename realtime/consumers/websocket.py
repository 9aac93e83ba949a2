"""WebSocket: a session of its own (``upgrades: []``) or the upgrade of a polling session."""

from __future__ import annotations

import logging
from typing import Any

from ..protocol.engine import Transport
from ..protocol.http import SESSION_ID_UNKNOWN, check_request
from ..sessions import Session
from .base import EngineConsumer

logger = logging.getLogger("realtime.engineio")

MESSAGE_TOO_BIG = 1009  # RFC 6455 close code


class WebSocketConsumer(EngineConsumer):
    """One WebSocket connection on the Engine.IO path."""

    def __init__(self, endpoint: Any) -> None:
        super().__init__(endpoint)
        self.session: Session | None = None

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        request = self.engine_request("GET", websocket=True)
        refusal = check_request(
            request, transports=self.endpoint.transports, allowed_origins=self.endpoint.allowed_origins
        )
        sid = request.query.get("sid")
        if refusal is None and sid is not None and sid not in self.endpoint.sessions:
            refusal = SESSION_ID_UNKNOWN
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
        session = self.endpoint.sessions[sid]
        if session.attach_probe(self):
            self.session = session
        else:
            # spec: a second WebSocket for an upgraded sid is accepted, then closed
            logger.warning(
                "sid=%s: extra WebSocket from %s closed (already upgraded or probing)", sid, self.client_label()
            )
            await self.shut()

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        session = self.session
        if session is None:
            return
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes") or b""
        if _size(frame) > self.endpoint.config.max_payload:
            logger.warning("sid=%s closed: WebSocket frame over MAX_PAYLOAD", session.sid)
            await session.payload_too_large(self)
            await self.shut(MESSAGE_TOO_BIG)
            return
        await session.receive_frame(frame, self)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.session is not None:
            await self.session.websocket_closed(self)
            self.session = None
        self.stop()

    # -- FrameSink, used by the Session ---------------------------------
    async def write(self, frame: str | bytes) -> None:
        if isinstance(frame, str):
            await self.send({"type": "websocket.send", "text": frame})
        else:
            await self.send({"type": "websocket.send", "bytes": frame})

    async def shut(self, code: int = 1000) -> None:
        await self.send({"type": "websocket.close", "code": code})


def _size(frame: str | bytes) -> int:
    """Bytes on the wire; text is only encoded when its length alone cannot decide."""
    if isinstance(frame, str) and not frame.isascii():
        return len(frame.encode("utf-8"))
    return len(frame)
