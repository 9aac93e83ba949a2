"""The Session actor: one Engine.IO sid, its state machine, its transports and its timer.

A handshake creates a Session in the process that received it; the polling
and WebSocket consumers attach to it as transports, so an upgrade is just a
second transport attaching. This module is the only place that keeps time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .limits import KeyedBuckets, Rate
from .logs import redact_frame, throttled
from .metrics import Metrics
from .protocol.engine import EngineConfig, EngineConnection, PollAnswer, State, Transport
from .protocol.engineio import (
    CLOSE,
    EIO4,
    NOOP,
    EnginePacket,
    EnginePacketType,
    EngineProtocol,
    encode_packet,
    encode_packet_v3,
    protocol_of,
)
from .protocol.errors import ProtocolError
from .protocol.events import (
    Closed,
    Event,
    MessageReceived,
    PollRefused,
    PollReleased,
    ProbeAnswered,
    UpgradeAbandoned,
    Upgraded,
)
from .protocol.http import TOO_MANY_CONNECTIONS, TOO_MANY_HANDSHAKES, Refusal

logger = logging.getLogger("realtime.engineio")
packet_logger = logging.getLogger("realtime.engineio.packets")

# How long a session closed by the server over polling waits for the client's
# next GET to collect its close packet before the sid is forgotten.
CLOSE_LINGER = 5.0

# Volatile packets are dropped for a WebSocket client while the server holds
# more than this for it unsent: it is not keeping up, and volatile means "now or never".
VOLATILE_BACKLOG = 64 * 1024

# A client with more than MAX_BUFFERED_BYTES waiting is dropped if it has not caught up
# BACKLOG_GRACE seconds later, and at once past HARD_LIMIT times that.
BACKLOG_GRACE = 1.0
HARD_LIMIT = 4


class SessionHandler(Protocol):
    """What the layer above (Socket.IO, or a test echo) implements."""

    async def on_open(self) -> None: ...
    async def on_message(self, data: str | bytes) -> None: ...
    async def on_close(self, reason: str) -> None: ...


class FrameSink(Protocol):
    """A WebSocket consumer, as the Session sees it. None of its methods raises."""

    async def write(self, frame: str | bytes) -> None: ...
    async def shut(self, code: int = 1000) -> None: ...
    def buffered(self) -> int: ...  # bytes the ASGI server still holds unsent for this client
    def abort(self) -> None: ...  # drop the connection and what it holds, now


class PollSink(Protocol):
    """A held polling GET, as the Session sees it."""

    async def deliver(self, packets: list[EnginePacket], protocol: EngineProtocol) -> None: ...
    async def refuse_upgraded(self) -> None: ...


HandlerFactory = Callable[["Session"], SessionHandler]


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """The handshake request, as plain values: the consumer reads the ASGI scope, nobody else does."""

    path: str
    # repr=False: cookies, Authorization and query-string tokens stay out of any log line or traceback
    query_string: str = field(repr=False)
    query: dict[str, str] = field(repr=False)
    # the ASGI server's own list, not a copy: the scope holds it for the connection's life anyway
    raw_headers: Sequence[tuple[bytes, bytes]] = field(repr=False)
    address: str
    secure: bool
    user: Any = None  # set when an outer ASGI middleware already resolved the user

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names, repeated headers joined with ", " (decoded on demand: read at CONNECT only)."""
        return decode_headers(self.raw_headers)

    @property
    def lazy_headers(self) -> Mapping[str, str]:
        """The headers as a mapping that decodes them when first read (``socket.handshake.headers``)."""
        return RequestHeaders(self.raw_headers)


def decode_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw_headers:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


class RequestHeaders(Mapping[str, str]):
    """A request's headers, decoded on first use: most sockets never read theirs, and each kept
    decoded cost about 0.6 KiB per connection (make bench, idle memory per connection)."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw_headers: Sequence[tuple[bytes, bytes]]) -> None:
        self._raw = raw_headers
        self._decoded: dict[str, str] | None = None

    def _headers(self) -> dict[str, str]:
        if self._decoded is None:
            self._decoded = decode_headers(self._raw)
        return self._decoded

    def __getitem__(self, key: str) -> str:
        return self._headers()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """One header without decoding (and keeping) all of them: the registry reads the user agent."""
        if self._decoded is not None:
            return self._decoded.get(key, default)
        wanted = key.lower().encode("latin-1", "replace")
        values = [value.decode("latin-1") for name, value in self._raw if name.lower() == wanted]
        return ", ".join(values) if values else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return len(self._headers())

    def __repr__(self) -> str:
        return f"<RequestHeaders: {len(self._raw)} headers>"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Engine.IO messages encoded once: packets for buffers, wire frames for WebSockets.

    A broadcast builds one and hands it to every recipient, so each of them
    only writes frames (the measured cost of a broadcast is per recipient).
    Engine.IO v3 frames binary messages differently, so those get a second
    set of frames (``wire_v3``), also built once; text frames are the same.
    """

    packets: tuple[EnginePacket, ...]
    wire: tuple[str | bytes, ...]
    wire_v3: tuple[str | bytes, ...]
    offset: str | None = None  # connection state recovery: the offset the event carries (realtime.recovery)

    @classmethod
    def of(cls, payloads: Iterable[str | bytes], compress: bool = True, offset: str | None = None) -> Outgoing:
        packets = tuple(EnginePacket(EnginePacketType.MESSAGE, p, compress) for p in payloads)
        wire = tuple(encode_packet(p) for p in packets)
        binary = any(isinstance(frame, bytes) for frame in wire)
        return cls(packets, wire, tuple(encode_packet_v3(p) for p in packets) if binary else wire, offset)

    @property
    def payloads(self) -> tuple[str | bytes, ...]:
        """The Engine.IO message payloads, as another process needs them to frame its own copy."""
        return tuple(p.data for p in self.packets)


class Endpoint:
    """One Engine.IO URL: its configuration, its handler factory and its live sessions."""

    path = ""
    # this process's key (the runtime sets it when the endpoint is served): every sid starts with it
    key = ""

    def __init__(
        self,
        config: EngineConfig,
        handler_factory: HandlerFactory,
        *,
        transports: tuple[str, ...] = ("polling", "websocket"),
        allowed_origins: tuple[str, ...] = (),
        max_connections: int | None = None,
        max_connections_per_ip: int | None = None,
        handshake_rate: str | None = None,
        http_compression_threshold: int | None = 1024,
        allow_eio3: bool = False,
    ) -> None:
        self.config = config
        # Engine.IO v3 handshakes (Socket.IO v2 clients) are accepted, as Node's allowEIO3
        self.allow_eio3 = allow_eio3
        # polling answers of at least this many bytes are compressed for clients that accept it; None: never
        self.http_compression_threshold = http_compression_threshold
        self.handler_factory = handler_factory
        self.transports = transports
        self.allowed_origins = allowed_origins
        self.sessions: dict[str, Session] = {}
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.handshakes = KeyedBuckets(Rate.parse(handshake_rate)) if handshake_rate else None
        self.per_address: dict[str, int] = {}
        self.metrics = Metrics()  # the runtime's, once it serves this endpoint

    def admit(self, address: str) -> tuple[Refusal, str] | None:
        """None when a new session from ``address`` is within the limits; else the refusal and its reason.

        Checked before the session exists; the reason is the metrics' (realtime.metrics.REFUSAL_REASONS).
        """
        if self.max_connections is not None and len(self.sessions) >= self.max_connections:
            refusal, limit, reason = TOO_MANY_CONNECTIONS, f"MAX_CONNECTIONS={self.max_connections}", "max_connections"
        elif (
            self.max_connections_per_ip is not None and self.per_address.get(address, 0) >= self.max_connections_per_ip
        ):
            refusal, limit = TOO_MANY_CONNECTIONS, f"MAX_CONNECTIONS_PER_IP={self.max_connections_per_ip}"
            reason = "max_connections_per_ip"
        elif self.handshakes is not None and not self.handshakes.take(address, asyncio.get_running_loop().time()):
            refusal, limit, reason = TOO_MANY_HANDSHAKES, "HANDSHAKE_RATE_PER_IP", "handshake_rate"
        else:
            return None
        throttled(logger, logging.WARNING, limit, "handshake from %s refused: %s (%s)", address, refusal.message, limit)
        return refusal, reason

    def create(self, transport: Transport, request: ClientRequest) -> Session:
        # the owning process's key, then 120 random bits: any process can route the sid to its owner
        sid = self.key + secrets.token_urlsafe(15)
        session = Session(self, sid, transport, request, protocol_of(request.query))
        self.sessions[sid] = session
        handshakes = self.metrics.handshakes
        handshakes[transport.value] = handshakes.get(transport.value, 0) + 1
        address = request.address
        self.per_address[address] = self.per_address.get(address, 0) + 1
        return session

    def forget(self, session: Session) -> None:
        if self.sessions.get(session.sid) is not session:
            return
        del self.sessions[session.sid]
        address = session.request.address
        left = self.per_address.get(address, 1) - 1
        if left > 0:
            self.per_address[address] = left
        else:
            self.per_address.pop(address, None)


class Session:
    """Carries out what the EngineConnection decides, on whichever transport is attached."""

    # one per connected client: no per-instance __dict__
    __slots__ = (
        "_backlog_check",
        "_closing",
        "_inbound",
        "_loop",
        "_poll",
        "_ticking",
        "_timer",
        "_timer_at",
        "_timers",
        "conn",
        "endpoint",
        "handler",
        "probe",
        "request",
        "sid",
        "websocket",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        sid: str,
        transport: Transport,
        request: ClientRequest,
        protocol: EngineProtocol = EIO4,
    ) -> None:
        self.endpoint = endpoint
        self.sid = sid
        self.request = request
        self._loop = asyncio.get_running_loop()
        self.conn = EngineConnection(sid, endpoint.config, transport, self._loop.time(), protocol)
        self.websocket: FrameSink | None = None
        self.probe: FrameSink | None = None
        self._poll: PollSink | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._ticking: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._backlog_check: asyncio.TimerHandle | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._inbound: asyncio.Task[None] | None = None  # the last POST's packets, being acted on
        self.handler = endpoint.handler_factory(self)

    @property
    def transport(self) -> Transport:
        return self.conn.transport

    @property
    def closed(self) -> bool:
        return self.conn.closed

    @property
    def protocol(self) -> EngineProtocol:
        """How this session's packets are framed (Engine.IO v4, or v3 for a Socket.IO v2 client)."""
        return self.conn.protocol

    # -- public seam for the layer above ---------------------------------
    async def send(self, data: str | bytes) -> None:
        """Send one Engine.IO message to the client."""
        websocket = self.websocket
        if isinstance(data, str) and websocket is not None and self.conn.streaming:
            frame = "4" + data  # the common case (every ack) without building a EnginePacket
            if packet_logger.isEnabledFor(logging.DEBUG):
                packet_logger.debug("sid=%s ws -> %r", self.sid, frame)
            await websocket.write(frame)
            if websocket.buffered() > self.conn.config.max_buffered_bytes:
                self._backlogged()
            return
        await self.send_packet(EnginePacket(EnginePacketType.MESSAGE, data))

    @property
    def can_send_now(self) -> bool:
        """Whether a packet would leave at once (volatile packets are dropped otherwise)."""
        conn = self.conn
        if conn.streaming:
            websocket = self.websocket
            return websocket is not None and websocket.buffered() < VOLATILE_BACKLOG
        return self._poll is not None and conn.state is not State.UPGRADING

    def call_later(self, delay: float, callback: Callable[[], Any]) -> asyncio.TimerHandle:
        """A timer that dies with the session (the Socket.IO connect timeout uses it)."""
        handle = self._loop.call_later(delay, callback)
        self._timers.append(handle)
        return handle

    def cancel_later(self, handle: asyncio.TimerHandle) -> None:
        """Cancel a ``call_later`` timer and forget it (a timer kept after its use is memory on every client)."""
        handle.cancel()
        with contextlib.suppress(ValueError):
            self._timers.remove(handle)

    async def close(self, reason: str = "forced close") -> None:
        """Close from the server side.

        A WebSocket is closed without an Engine.IO close packet, as Node does: a
        client takes a close packet for a deliberate goodbye and does not
        reconnect. A polling client has no connection to lose, so its next GET
        collects a close packet.
        """
        if self.conn.closed:
            return
        if self.conn.transport is Transport.POLLING:
            self.conn.queue(CLOSE)
        await self._apply(self.conn.close(reason))

    async def abort(self, reason: str) -> None:
        """Close without a close packet, as a lost transport: clients reconnect by themselves (shutdown).

        A held GET is answered with a noop; the sid is then forgotten, so the
        client's next request gets 400 "Session ID unknown". A WebSocket is
        closed with no Engine.IO close packet before it.
        """
        if self.conn.closed:
            return
        if self._poll is not None:
            self.conn.queue(NOOP)
        await self._apply(self.conn.close(reason))

    async def release_poll(self, sink: PollSink) -> None:
        """Answer the held GET ``sink`` now with a noop (its forwarding process is going away)."""
        if self._poll is sink:
            self._poll = None
            self.conn.poll_gone()
            await self._answer(sink, [NOOP])

    # -- transports attaching -------------------------------------------
    async def start(self, websocket: FrameSink | None = None) -> EnginePacket:
        """Right after the handshake: arm the timer and tell the handler."""
        self.websocket = websocket
        self._schedule()
        open_packet = self.conn.open_packet()
        if websocket is not None:
            await websocket.write(self.conn.protocol.encode_frame(open_packet))
        await self.handler.on_open()
        return open_packet

    def attach_probe(self, websocket: FrameSink) -> bool:
        if not self.conn.attach_probe(self._loop.time()):
            return False
        self.probe = websocket
        self._schedule()
        return True

    # -- inbound ---------------------------------------------------------
    async def receive_frame(self, frame: str | bytes, source: FrameSink) -> None:
        """A WebSocket frame from either the active WebSocket or the probe."""
        if source is self.websocket and self.conn.streaming:
            # the hot path: a message on an open WebSocket changes no state, so skip the machinery
            if isinstance(frame, bytes) and self.conn.protocol is EIO4:
                await self.handler.on_message(frame)
                return
            if frame[:1] == "4":
                if packet_logger.isEnabledFor(logging.DEBUG):
                    packet_logger.debug("sid=%s ws <- %r", self.sid, redact_frame(frame))
                await self.handler.on_message(frame[1:])
                return
        try:
            packet = self.conn.protocol.decode_frame(frame)
            if packet_logger.isEnabledFor(logging.DEBUG):
                packet_logger.debug("sid=%s ws <- %r", self.sid, redact_frame(frame))
            if source is self.websocket:
                events = self.conn.receive(packet, self._loop.time())
            else:
                events = self.conn.receive_probe(packet, self._loop.time())
        except ProtocolError as exc:
            self.endpoint.metrics.refused("parse_error")
            throttled(
                logger, logging.WARNING, "parse error", "sid=%s closed: parse error on WebSocket (%s)", self.sid, exc
            )
            events = self.conn.close("parse error")
        await self._apply(events)

    async def read_payload(self, body: bytes) -> list[EnginePacket] | None:
        """Decode a polling POST body; None when it was malformed (the session is then closed).

        Decoding comes apart from handling (``receive_packets``) so that the
        POST is answered before what it carried is acted on, as Node does: a
        client that queues a packet right after its CONNECT must not find the
        answer to the CONNECT in a GET before its POST has returned.
        """
        try:
            packets = self.conn.protocol.decode_payload(body)
        except ProtocolError as exc:
            await self._polling_parse_error(exc)
            return None
        if packet_logger.isEnabledFor(logging.DEBUG):
            packet_logger.debug("sid=%s poll <- %r", self.sid, redact_frame(body))
        return packets

    async def _polling_parse_error(self, exc: ProtocolError) -> None:
        self.endpoint.metrics.refused("parse_error")
        throttled(
            logger, logging.WARNING, "parse error", "sid=%s closed: parse error in polling payload (%s)", self.sid, exc
        )
        await self._apply(self.conn.close("parse error"))

    async def inbound_done(self) -> None:
        """Wait until the previous POST's packets have been acted on (so POSTs apply in order).

        This is also the backpressure of polling: a client's next POST is answered only once the
        server has caught up with the last one, so a fast sender cannot queue work without bound.
        """
        task = self._inbound
        if task is not None and not task.done():
            await asyncio.shield(task)  # a client giving up on its POST does not cancel the previous one's work

    def receive_later(self, packets: list[EnginePacket]) -> None:
        """Act on an answered POST's packets in a task of the session's, not in the request's.

        The request's ASGI call returns as soon as it has answered, and the packets of successive
        POSTs are acted on strictly in order: the next POST waits in ``inbound_done`` for this task.
        Acted on inside each request, two POSTs could interleave wherever a packet's handling awaits
        (the client sends its next POST as soon as it has the "ok").
        """
        self._inbound = self._loop.create_task(self._receive_logged(packets))

    async def _receive_logged(self, packets: list[EnginePacket]) -> None:
        try:
            await self.receive_packets(packets)
        except Exception:
            logger.exception("sid=%s: acting on a polling POST's packets failed; the session is closed", self.sid)
            await self.close("transport error")

    async def receive_packets(self, packets: list[EnginePacket]) -> None:
        """Act on the packets of a POST that has been answered already."""
        for packet in packets:
            try:
                events = self.conn.receive(packet, self._loop.time())
            except ProtocolError as exc:
                await self._polling_parse_error(exc)
                return
            await self._apply(events)

    async def poll(self, sink: PollSink) -> PollAnswer:
        """A polling GET: answered now, held, or refused."""
        await self.catch_up()
        answer, packets, events = self.conn.poll(self._loop.time())
        if answer is PollAnswer.RESPOND:
            await self._answer(sink, packets)
            if self.conn.closed and not self.conn.outbox:
                self._forget()
        elif answer is PollAnswer.WAIT:
            self._poll = sink
            logger.debug("sid=%s: GET held", self.sid)
        await self._apply(events)
        return answer

    async def poll_cancelled(self, sink: PollSink) -> None:
        """The client gave up on a held GET: the transport is gone."""
        if self._poll is sink:
            self._poll = None
            self.conn.poll_gone()
            await self._apply(self.conn.close("transport close"))

    async def websocket_closed(self, websocket: FrameSink) -> None:
        if websocket is self.probe:
            self.probe = None
            self.conn.probe_lost()
        elif websocket is self.websocket:
            self.websocket = None
            await self._apply(self.conn.close("transport close"))

    async def payload_too_large(self, websocket: FrameSink | None = None) -> None:
        """A body or frame over MAX_PAYLOAD ends the session (the consumer answers 413 or 1009)."""
        if websocket is not None and websocket is self.websocket:
            self.websocket = None
        elif websocket is not None and websocket is self.probe:
            self.probe = None
        await self._apply(self.conn.close("transport error"))

    # -- outbound --------------------------------------------------------
    async def send_outgoing(self, outgoing: Outgoing) -> None:
        """Send messages encoded beforehand (see Outgoing).

        Never waits on the client and never raises: a broadcast calls this
        for every recipient in turn, and one slow or vanishing client must
        not hold up or cut short the others.
        """
        conn = self.conn
        if conn.closed:
            return
        websocket = self.websocket
        if conn.streaming and websocket is not None:
            if packet_logger.isEnabledFor(logging.DEBUG):
                packet_logger.debug("sid=%s ws -> %r", self.sid, outgoing.wire)
            for frame in outgoing.wire if conn.protocol is EIO4 else outgoing.wire_v3:
                await websocket.write(frame)
            if websocket.buffered() > conn.config.max_buffered_bytes:
                self._backlogged()
            return
        if conn.queue(*outgoing.packets):
            self._backlogged()
            if conn.closed:
                return
        await self._flush()

    async def send_packet(self, packet: EnginePacket) -> None:
        conn = self.conn
        if conn.closed:
            return
        websocket = self.websocket
        if conn.streaming and websocket is not None:
            await self._write(websocket, packet)
            if websocket.buffered() > conn.config.max_buffered_bytes:
                self._backlogged()
            return
        if conn.queue(packet):
            self._backlogged()
            if conn.closed:
                return
        await self._flush()

    def _backlog(self) -> int:
        """Bytes waiting for this client: in the ASGI server (WebSocket) or in our buffer (polling)."""
        websocket = self.websocket
        if websocket is not None and self.conn.streaming:
            return websocket.buffered()
        return self.conn.outbox_bytes

    def _backlogged(self) -> None:
        """More than MAX_BUFFERED_BYTES (or _PACKETS) waits for the client.

        A burst written faster than one turn of the event loop can hand to the
        kernel looks just like a client that stopped reading, so the client
        gets BACKLOG_GRACE to catch up; past HARD_LIMIT times the limit it is
        dropped at once, which bounds what any client can make us hold.
        """
        config = self.conn.config
        packets = len(self.conn.outbox)
        if (
            self._backlog() > HARD_LIMIT * config.max_buffered_bytes
            or packets > HARD_LIMIT * config.max_buffered_packets
        ):
            self._overflowed()
        elif self._backlog_check is None:
            self._backlog_check = self._loop.call_later(BACKLOG_GRACE, self._recheck_backlog)

    def _recheck_backlog(self) -> None:
        self._backlog_check = None
        conn = self.conn
        if conn.closed:
            return
        config = conn.config
        if self._backlog() > config.max_buffered_bytes or len(conn.outbox) > config.max_buffered_packets:
            self._overflowed()

    def _overflowed(self) -> None:
        """The client does not read what it is sent: drop it and what it left behind.

        The close itself (handlers, rooms) runs in a task of its own, so a
        broadcast that found this client over its limit goes straight on.
        """
        conn = self.conn
        websocket = self.websocket
        backlog = websocket.buffered() if websocket is not None and conn.streaming else conn.outbox_bytes
        self.endpoint.metrics.slow_clients += 1
        throttled(
            logger,
            logging.WARNING,
            "slow reader",
            "sid=%s closed: the client does not keep up (%d bytes or %d packets waiting; "
            "MAX_BUFFERED_BYTES=%d, MAX_BUFFERED_PACKETS=%d)",
            self.sid,
            backlog,
            len(conn.outbox),
            conn.config.max_buffered_bytes,
            conn.config.max_buffered_packets,
        )
        if websocket is not None:
            self.websocket = None
            websocket.abort()
        self._closing = self._loop.create_task(self._apply(conn.overflow()))

    async def _answer(self, sink: PollSink, packets: list[EnginePacket]) -> None:
        """A polling GET gets ``packets``, framed as this session's protocol frames them."""
        await sink.deliver(packets, self.conn.protocol)

    async def _write(self, websocket: FrameSink, packet: EnginePacket) -> None:
        frame = self.conn.protocol.encode_frame(packet)
        if packet_logger.isEnabledFor(logging.DEBUG):
            packet_logger.debug("sid=%s ws -> %r", self.sid, frame)
        await websocket.write(frame)

    async def _flush(self) -> None:
        """Move buffered packets to the transport that can take them now."""
        if not self.conn.outbox:
            return
        if self.conn.streaming and self.websocket is not None:
            for packet in self.conn.drain():
                await self._write(self.websocket, packet)
        elif self._poll is not None and self.conn.poll_flushable:
            sink, self._poll = self._poll, None
            await self._answer(sink, self.conn.take_poll())

    # -- events and time -------------------------------------------------
    async def _apply(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, MessageReceived):
                await self.handler.on_message(event.data)
            elif isinstance(event, ProbeAnswered):
                await self._answer_probe(event.packet)
            elif isinstance(event, PollReleased) and self._poll is not None:
                sink, self._poll = self._poll, None
                await self._answer(sink, event.packets)
            elif isinstance(event, PollRefused) and self._poll is not None:
                sink, self._poll = self._poll, None
                await sink.refuse_upgraded()
            elif isinstance(event, Upgraded):
                self.websocket, self.probe = self.probe, None
                logger.debug("sid=%s upgraded to websocket", self.sid)
            elif isinstance(event, UpgradeAbandoned) and self.probe is not None:
                probe, self.probe = self.probe, None
                await probe.shut()
            elif isinstance(event, Closed):
                await self._finish(event.reason)
                return
        await self._flush()
        self._schedule()

    async def _answer_probe(self, packet: EnginePacket) -> None:
        if self.probe is not None:
            await self._write(self.probe, packet)

    async def _finish(self, reason: str) -> None:
        logger.debug("sid=%s closed: %s", self.sid, reason)
        disconnects = self.endpoint.metrics.disconnects
        disconnects[reason] = disconnects.get(reason, 0) + 1
        self._cancel_timer()
        for handle in self._timers:
            handle.cancel()
        if self._backlog_check is not None:
            self._backlog_check.cancel()
        try:
            if self._poll is not None:
                sink, self._poll = self._poll, None
                await self._answer(sink, self.conn.take_poll())
            if CLOSE in self.conn.outbox and self.websocket is None and self.probe is None:
                # closed by the server: the close packet waits, briefly, for the client's next GET
                self._loop.call_later(CLOSE_LINGER, self._forget)
            else:
                if self.websocket is None:
                    self.conn.discard()  # nobody is left to collect it
                self._forget()
            for websocket in (self.websocket, self.probe):
                if websocket is not None:
                    for packet in self.conn.drain():
                        await self._write(websocket, packet)
                    await websocket.shut()
        finally:
            # whatever the transports did, the layer above hears of the close (rooms, acks, handlers)
            self._forget_unless_lingering()
            self.websocket = self.probe = None
            await self.handler.on_close(reason)

    def _forget_unless_lingering(self) -> None:
        if CLOSE not in self.conn.outbox:
            self._forget()

    def _forget(self) -> None:
        self.endpoint.forget(self)

    def _schedule(self) -> None:
        due = self.conn.deadline()
        if due == self._timer_at:
            return
        self._cancel_timer()
        if due is not None:
            self._timer_at = due
            self._timer = self._loop.call_at(due, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._ticking = self._loop.create_task(self._tick())

    async def catch_up(self) -> None:
        """Apply a deadline that has passed but whose timer has not run yet (a busy loop runs timers late)."""
        due = self.conn.deadline()
        if due is not None and due <= self._loop.time():
            await self._apply(self.conn.tick(self._loop.time()))

    async def _tick(self) -> None:
        try:
            await self._apply(self.conn.tick(self._loop.time()))
        except Exception:
            # a bug, not the client: the timer must survive it, or the session never times out
            throttled(logger, logging.ERROR, "tick", "sid=%s: timer raised", self.sid, exc_info=True)
        finally:
            self._ticking = None  # a finished task keeps its coroutine: 0.2 KiB on every idle session
            self._schedule()
