"""What both Engine.IO consumers share: the endpoint, the request checks, no per-message thread hop."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import parse_qsl

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from ..auth import allow_request
from ..logs import RateLimitedLogger, clip
from ..protocol.http import BAD_REQUEST, FORBIDDEN, Refusal, Request, check_request
from ..runtime import current
from ..security import RequestSite, request_site
from ..sessions import ClientRequest, Endpoint
from ..tracing import Span

logger = logging.getLogger("realtime.engineio")
refusals = RateLimitedLogger(logger)


class EngineConsumer(AsyncConsumer):  # type: ignore[misc]  # channels ships no type hints
    """A Channels consumer bound to one Endpoint.

    It has no channel-layer channel of its own (sessions get one when they
    need it) and skips Channels' ``close_old_connections`` thread hop before
    every message: nothing here touches the ORM.
    """

    # why this request was refused (realtime.metrics.REFUSAL_REASONS), for its handshake span
    refused_for: str | None = None

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.runtime = current()
        self.metrics = self.runtime.metrics
        self._site: RequestSite | None = None
        self._query: dict[str, str] | None = None

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
        if not self.runtime.member.serving:
            await self.runtime.start_serving()  # the first request makes this process a cluster member
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    @property
    def site(self) -> RequestSite:
        """Scheme and validated Host, as Django reads them (computed once per request)."""
        if self._site is None:
            scope = self.scope
            self._site = request_site(scope.get("headers", ()), scope.get("scheme"), scope.get("server"))
        return self._site

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (parsed once per request: the checks and the handshake read it)."""
        if self._query is None:
            self._query = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))
        return self._query

    def engine_request(self, method: str, websocket: bool) -> Request:
        origin = next((value for name, value in self.scope.get("headers", ()) if name == b"origin"), None)
        return Request(
            method=method,
            query=self.query,
            origin=origin.decode("latin-1") if origin is not None else None,
            host=self.site.host,
            websocket=websocket,
            scheme=self.site.scheme,
        )

    async def admit(self, request: Request) -> Refusal | None:
        """Every check a request passes before any session is looked up or created; logs its refusal.

        In Django's order: the Host first (a view answers 400 before anything
        else), then the Engine.IO rules and the Origin, then, for a handshake
        only, ``REALTIME["ALLOW_REQUEST"]`` (as Node's ``allowRequest``).
        """
        sid = request.query.get("sid")
        if request.host is None:
            return self.refuse_host(sid)
        endpoint = self.endpoint
        refusal = check_request(
            request,
            transports=endpoint.transports,
            allowed_origins=endpoint.allowed_origins,
            allow_eio3=endpoint.allow_eio3,
        )
        if refusal is FORBIDDEN:
            self.log_refusal(refusal, sid, "origin", f"Origin {clip(request.origin)} not allowed", reason="origin")
            return refusal
        if refusal is not None:
            self.log_refusal(refusal, sid, reason="bad_request")
            return refusal
        if sid is None:
            address = self.client_request().address
            self.runtime.proxies.handshake(address, self.scope.get("headers", ()))
            if (limited := endpoint.admit(address)) is not None:
                refusal, reason = limited  # MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP, HANDSHAKE_RATE_PER_IP: logged
                self.refused(reason)
                return refusal
            if not await allow_request(self.client_request()):
                self.log_refusal(FORBIDDEN, sid, "allow-request", "ALLOW_REQUEST said no", reason="allow_request")
                return FORBIDDEN
        return None

    def refused(self, reason: str) -> None:
        """Count a refusal by its reason (realtime.metrics.REFUSAL_REASONS) and remember it for the span."""
        self.refused_for = reason
        self.metrics.refused(reason)

    def refuse_host(self, sid: str | None) -> Refusal:
        """A Host that ALLOWED_HOSTS refuses: Django's view would answer 400, so do we (Engine.IO code 3)."""
        self.log_refusal(
            BAD_REQUEST, sid, "bad-host", f"Host {clip(self.site.presented_host)} not in ALLOWED_HOSTS", reason="host"
        )
        return BAD_REQUEST

    def log_refusal(
        self, refusal: Refusal, sid: str | None, kind: str | None = None, why: str = "", *, reason: str
    ) -> None:
        """The one (rate-limited) WARNING line a refused request earns, and its count.

        ``kind`` is its rate-limit key; ``reason`` the metrics' (realtime.metrics.REFUSAL_REASONS).
        """
        self.refused(reason)
        websocket = self.scope.get("type") == "websocket"
        label = "WebSocket" if websocket else self.scope.get("method", "?")
        refusals.warning(
            kind or f"{'websocket' if websocket else 'http'} code {refusal.code}",  # never request data
            "%s %s from %s refused: %s (code %d, sid=%s)%s",
            label,
            self.scope.get("path", ""),
            self.client_label(),
            refusal.message,
            refusal.code,
            _sid_label(sid),
            f": {why}" if why else "",
        )

    def handshake_span(self, transport: str) -> AbstractContextManager[Span]:
        """The span of a handshake (tracing on): a child of the client's own ``traceparent``, if it sent one."""
        parent = next((v.decode("latin-1") for k, v in self.scope.get("headers", ()) if k == b"traceparent"), None)
        eio = self.query.get("EIO", "")
        # the client's query string: only a version we know is recorded, never what a client made up
        attributes = {"realtime.transport": transport, "realtime.eio": eio if eio in ("3", "4") else "other"}
        return self.runtime.tracing.span("realtime handshake", "server", attributes, parent)

    def client_request(self) -> ClientRequest:
        """The handshake request as values for the Session (and the Socket.IO handshake)."""
        scope = self.scope
        query_string = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client") or ("", 0)
        return ClientRequest(
            path=scope.get("path", ""),
            query_string=query_string,
            query=self.query,
            raw_headers=scope.get("headers", ()),
            address=client[0],
            secure=self.site.scheme == "https",  # SECURE_PROXY_SSL_HEADER honoured, as request.is_secure()
            user=scope.get("user"),
        )

    def client_label(self) -> str:
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else "?"

    @staticmethod
    def stop() -> None:
        raise StopConsumer()


def _sid_label(sid: str | None) -> str | None:
    """A sid as sent, for the log: real sids are short and URL-safe; anything else is quoted and cut."""
    if sid is None or (len(sid) <= 40 and sid.isprintable() and " " not in sid):
        return sid
    return clip(sid, 40)
