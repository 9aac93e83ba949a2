"""HTTP long-polling: GET collects packets (or waits for them), POST delivers them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..exchange import JSON, SHUTTING_DOWN, TEXT, PollResponder
from ..logs import throttled
from ..protocol.engine import Transport
from ..protocol.engineio import NOOP, protocol_of
from ..protocol.http import (
    BAD_REQUEST,
    FORBIDDEN,
    SESSION_ID_UNKNOWN,
    Refusal,
    Request,
    accepted_compression,
    cors_headers,
    origin_allowed,
)
from ..protocol.http import compress as compress_body
from ..relays import Route
from .base import EngineConsumer

logger = logging.getLogger("realtime.engineio")

# Answers up to this size are compressed on the event loop (well under a millisecond); larger in a thread.
COMPRESS_INLINE_BYTES = 64 * 1024


class PollingConsumer(EngineConsumer, PollResponder):
    """One HTTP request on the Engine.IO path."""

    def __init__(self, endpoint: Any) -> None:
        super().__init__(endpoint)
        self.body: list[bytes] = []
        self.size = 0
        self.cors: list[tuple[bytes, bytes]] = []
        self.forwarding: asyncio.Task[None] | None = None
        self.forwarded_sid = self.forward_id = ""

    async def http_request(self, message: dict[str, Any]) -> None:
        if self.answered:
            return  # the rest of a body already refused as too large
        chunk = message.get("body", b"")
        self.size += len(chunk)
        bytes_in = self.metrics.bytes_in
        bytes_in["polling"] += len(chunk)
        if self.size > self.endpoint.config.max_payload:
            await self.too_large()
            return
        self.body.append(chunk)
        if not message.get("more_body", False):
            await self.handle(b"".join(self.body))

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        await self.cancelled()
        if self.forwarding is not None and not self.forwarding.done():
            self.forwarding.cancel()
            await self.runtime.relays.cancel_poll(self.forwarded_sid, self.forward_id)
        self.stop()

    async def forward(self, sid: str, method: str, body: bytes) -> None:
        """Another process owns this sid: let it answer (a held GET may wait a whole ping interval)."""
        config = self.endpoint.config
        timeout = (config.ping_interval + config.ping_timeout) / 1000 + 5
        self.forwarded_sid, self.forward_id = sid, self.runtime.member.replies.new_id()
        relays = self.runtime.relays
        answer = await relays.forward_poll(self.endpoint.path, sid, method, body, timeout, self.forward_id)
        headers = (tuple(h) for h in answer["headers"])
        await self.respond(answer["status"], answer["body"], *headers, compress=answer.get("compress") is True)

    async def handle(self, body: bytes) -> None:
        method = self.scope["method"]
        request = self.engine_request(method, websocket=False)
        if method == "OPTIONS":
            await self.preflight(request)
            return
        if "sid" not in request.query and self.runtime.tracing.enabled:
            with self.handshake_span("polling") as span:
                await self.answer(request, body)
                span.set_attribute("realtime.outcome", self.refused_for or "accepted")
            return
        await self.answer(request, body)

    async def answer(self, request: Request, body: bytes) -> None:
        method = request.method
        refusal = await self.admit(request)  # logs its own line
        if refusal is not None:
            await self.respond(refusal.status, refusal.body, JSON)
            return
        self.cors = cors_headers(request, self.endpoint.allowed_origins)
        sid = request.query.get("sid")
        if sid is None:
            await self.handshake()
            return
        session = self.endpoint.sessions.get(sid)
        route = Route.LOCAL if session is not None else await self.runtime.relays.route(sid)
        if route is Route.FORWARD and self.runtime.member.draining and method == "GET":
            noop, _ = protocol_of(request.query).encode_payload([NOOP])
            await self.respond(200, noop, TEXT)  # shutting down: hold nothing; the client polls elsewhere
        elif route is Route.FORWARD:
            self.forwarding = asyncio.get_running_loop().create_task(self.forward(sid, method, body))
        elif route is Route.NOWHERE:  # no live process owns it: at once, logged (rate-limited)
            self.refused("session_unknown")
            await self.respond(SESSION_ID_UNKNOWN.status, SESSION_ID_UNKNOWN.body, JSON)
        elif session is None:
            await self.refuse(SESSION_ID_UNKNOWN, sid, "session_unknown")
        elif method == "GET":
            await self.get(session)
        else:
            await self.post(session, body)

    async def handshake(self) -> None:
        if self.runtime.member.draining:  # shutting down: a load balancer or the client tries another process
            self.refused("shutting_down")
            await self.respond(SHUTTING_DOWN.status, SHUTTING_DOWN.body, JSON, (b"retry-after", b"0"))
            return
        session = self.endpoint.create(Transport.POLLING, self.client_request())
        logger.debug("sid=%s opened over polling from %s", session.sid, self.client_label())
        open_packet = await session.start()
        await self.respond(200, session.protocol.encode_payload([open_packet])[0], TEXT)

    async def preflight(self, request: Request) -> None:
        if request.host is None:
            await self.respond(BAD_REQUEST.status, self.refuse_host(None).body, JSON)
            return
        if not origin_allowed(request.origin, self.endpoint.allowed_origins, scheme=request.scheme, host=request.host):
            await self.refuse(FORBIDDEN, None, "origin")
            return
        headers = dict(self.scope.get("headers", ()))
        requested = headers.get(b"access-control-request-headers")
        self.cors = cors_headers(
            request,
            self.endpoint.allowed_origins,
            preflight=True,
            request_headers=requested.decode("latin-1") if requested else None,
        )
        await self.respond(204, b"")

    async def refuse(self, refusal: Refusal, sid: str | None, reason: str) -> None:
        self.log_refusal(refusal, sid, reason=reason)
        await self.respond(refusal.status, refusal.body, JSON)

    async def too_large(self) -> None:
        sid = self.engine_request(self.scope["method"], websocket=False).query.get("sid")
        session = self.endpoint.sessions.get(sid) if sid else None
        self.refused("payload_too_large")
        throttled(
            logger,
            logging.WARNING,
            "body too large",
            "%s from %s refused: body over MAX_PAYLOAD (sid=%s)",
            self.scope["method"],
            self.client_label(),
            sid,
        )
        await self.respond(413, b"Payload Too Large", TEXT)
        if session is not None:
            await session.payload_too_large()

    async def respond(self, status: int, body: bytes, *headers: tuple[bytes, bytes], compress: bool = False) -> None:
        if self.answered:
            return
        self.answered = True
        threshold = self.endpoint.http_compression_threshold
        if compress and status == 200 and threshold is not None and len(body) >= threshold:
            body, headers = await self.compressed(body, headers)
        bytes_out = self.metrics.bytes_out
        bytes_out["polling"] += len(body)
        try:
            await self.send({"type": "http.response.start", "status": status, "headers": [*headers, *self.cors]})
            await self.send({"type": "http.response.body", "body": body})
        except Exception as exc:  # the client went away: its http.disconnect follows
            throttled(logger, logging.DEBUG, "respond failed", "HTTP answer to a closing client dropped (%r)", exc)

    async def compressed(
        self, body: bytes, headers: tuple[tuple[bytes, bytes], ...]
    ) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
        """``body`` compressed as the client's Accept-Encoding allows, with the headers that say so.

        Large bodies are compressed in a thread (zlib lets go of the GIL), so a megabyte answer does
        not hold up every other client on this event loop for the ~10 ms it takes.
        """
        accepted = [v for k, v in self.scope.get("headers", ()) if k == b"accept-encoding"]
        coding = accepted_compression(b",".join(accepted).decode("latin-1")) if accepted else None
        vary = (b"vary", b"Accept-Encoding")  # a cache must not hand a compressed answer to another client
        if coding is None:
            return body, (*headers, vary)
        if len(body) > COMPRESS_INLINE_BYTES:
            body = await asyncio.to_thread(compress_body, body, coding)
        else:
            body = compress_body(body, coding)
        return body, (*headers, (b"content-encoding", coding.encode()), vary)
