"""WebSocket: a session of its own (``upgrades: []``) or the upgrade of a polling session."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..exchange import SHUTTING_DOWN
from ..logs import throttled
from ..protocol.engine import Transport
from ..protocol.http import SESSION_ID_UNKNOWN, Request
from ..relays import Route
from ..sessions import Session
from .base import EngineConsumer
from .wire import Wire, wire_of

logger = logging.getLogger("realtime.engineio")

MESSAGE_TOO_BIG = 1009  # RFC 6455 close code


class WebSocketConsumer(EngineConsumer):
    """One WebSocket connection on the Engine.IO path."""

    def __init__(self, endpoint: Any) -> None:
        super().__init__(endpoint)
        self.session: Session | None = None
        self.relay_id: str | None = None
        self.relayed_sid = ""
        self.wire: Wire | None = None
        # frames waiting behind a send that blocked (uvicorn, a client that stopped reading)
        self.pending: list[str | bytes] | None = None
        self.pending_bytes = 0
        self.drainer: asyncio.Task[None] | None = None

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        request = self.engine_request("GET", websocket=True)
        if "sid" not in request.query and self.runtime.tracing.enabled:
            with self.handshake_span("websocket") as span:
                await self.open(request)
                span.set_attribute("realtime.outcome", self.refused_for or "accepted")
            return
        await self.open(request)

    async def open(self, request: Request) -> None:
        refusal = await self.admit(request)  # logs its own line
        sid = request.query.get("sid")
        relayed = False
        if refusal is None and sid is not None and sid not in self.endpoint.sessions:
            route = await self.runtime.relays.route(sid)
            if route is Route.NOWHERE:  # logged, rate-limited, by route()
                self.refused("session_unknown")
                await self.send({"type": "websocket.close", "code": 1008})
                return
            relayed = route is Route.FORWARD
            if not relayed:
                refusal = SESSION_ID_UNKNOWN
                self.log_refusal(refusal, sid, reason="session_unknown")
        if refusal is None and sid is None and self.runtime.member.draining:
            refusal = SHUTTING_DOWN  # a load balancer or the client tries another process
            self.refused("shutting_down")
        if refusal is not None:
            await self.send({"type": "websocket.close", "code": 1008})  # before accept: daphne answers 403
            return
        await self.send({"type": "websocket.accept"})
        self.wire = wire_of(self.base_send)
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
        self.relay_id = await self.runtime.relays.attach(self, self.endpoint.path, sid)
        if self.relay_id is None:
            throttled(
                logger,
                logging.WARNING,
                "relay refused",
                "sid=%s: WebSocket from %s refused by the owning process",
                sid,
                self.client_label(),
            )
            await self.shut()

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes") or b""
        size = _size(frame)
        bytes_in = self.metrics.bytes_in
        bytes_in["websocket"] += size
        if size > self.endpoint.config.max_payload:
            await self.too_large()
        elif self.relay_id is not None:
            await self.runtime.relays.relay_in(self.relayed_sid, self.relay_id, frame)
        elif self.session is not None:
            await self.session.receive_frame(frame, self)

    async def too_large(self) -> None:
        """A frame over MAX_PAYLOAD ends the session; the client sees close code 1009."""
        self.refused("payload_too_large")
        throttled(
            logger,
            logging.WARNING,
            "frame too large",
            "sid=%s closed: WebSocket frame over MAX_PAYLOAD",
            self.session.sid if self.session else "?",
        )
        if self.relay_id is not None:
            await self.runtime.relays.relay_gone(self.relayed_sid, self.relay_id)
            self.relay_id = None
        elif self.session is not None:
            await self.session.payload_too_large(self)
        await self.shut(MESSAGE_TOO_BIG)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.relay_id is not None:
            await self.runtime.relays.relay_gone(self.relayed_sid, self.relay_id)
            self.relay_id = None
        if self.session is not None:
            await self.session.websocket_closed(self)
            self.session = None
        self.stop()

    # -- FrameSink, used by the Session ---------------------------------
    async def write(self, frame: str | bytes) -> None:
        """Hand a frame to the ASGI server; a connection that is going away only drops it.

        The server raises when the client has just gone (daphne: autobahn's
        ``Disconnected``, uvicorn: ``ClientDisconnected``); the disconnect
        event follows and ends the session, so the frame is simply lost, as
        it would be a moment later. Raising here would cut short whatever
        broadcast or handler was writing.
        """
        if self.pending is not None or (self.wire is not None and self.wire.paused()):
            # the server would make us wait for the client: queue it, and let a task of its own wait
            if self.pending is None:
                self.pending = []
                self.drainer = asyncio.get_running_loop().create_task(self._drain())
            self.pending.append(frame)
            self.pending_bytes += len(frame)
            return
        await self._send_frame(frame)

    async def _send_frame(self, frame: str | bytes) -> None:
        bytes_out = self.metrics.bytes_out
        # _size inlined: this runs for every frame of every broadcast
        bytes_out["websocket"] += len(frame) if isinstance(frame, bytes) or frame.isascii() else len(frame.encode())
        try:
            if isinstance(frame, str):
                await self.base_send({"type": "websocket.send", "text": frame})
            else:
                await self.base_send({"type": "websocket.send", "bytes": frame})
        except Exception as exc:
            throttled(logger, logging.DEBUG, "write failed", "WebSocket write to a closing client dropped (%r)", exc)

    async def _drain(self) -> None:
        """Send what queued up behind a blocked send, in order; the Session counts it as buffered."""
        pending = self.pending
        try:
            while pending:
                frame = pending.pop(0)
                self.pending_bytes -= len(frame)
                await self._send_frame(frame)
        finally:
            self.pending, self.pending_bytes, self.drainer = None, 0, None

    async def shut(self, code: int = 1000) -> None:
        if self.pending is not None or (self.wire is not None and self.wire.paused()):
            self.abort()  # a clean close would wait behind what the client is not reading
            return
        try:
            await self.send({"type": "websocket.close", "code": code})
        except Exception as exc:
            throttled(logger, logging.DEBUG, "close failed", "WebSocket close of a closing client dropped (%r)", exc)

    def buffered(self) -> int:
        wire = self.wire
        return (wire.buffered() if wire is not None else 0) + self.pending_bytes

    def abort(self) -> None:
        if self.pending is not None:
            self.pending.clear()
            self.pending_bytes = 0
        if self.wire is not None:
            self.wire.abort()


def _size(frame: str | bytes) -> int:
    """Bytes on the wire; text is only encoded when its length alone cannot decide."""
    if isinstance(frame, str) and not frame.isascii():
        return len(frame.encode("utf-8"))
    return len(frame)
