"""Socket.IO dispatch: CONNECT and auth, events to handlers, acks, DISCONNECT.

``Client`` is the handler of one Engine.IO session (the seam in
sessions.py); ``Server`` knows the namespaces. ``io`` is the project's
server, which ``@io.on(...)`` registers handlers on.

A client on Engine.IO v3 speaks Socket.IO protocol v4 (socket.io-client@2),
which differs from v5 only at the edges of a connection, all of them here:
it is connected to ``/`` as soon as the session opens (its handshake query
is that namespace's auth), a namespace's CONNECT carries its auth as a query
string (``0/admin?token=x,``), the CONNECT answer has no payload, a refusal's
payload is the plain message, and a socket's id is the Engine.IO sid on
``/`` and ``<namespace>#<sid>`` elsewhere. Events, acks and binary
attachments are the same packets, so rooms and broadcasts mix both.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings

from . import signals
from .auth import authenticate, authorize, user_key
from .broadcast import BroadcastOperator
from .checks import import_namespace_entry
from .cluster import Answers, arooms
from .conf import realtime_settings
from .exceptions import ConnectionRefused, EventRefused
from .handlers import call
from .limits import ClientLimits, TokenBucket
from .logs import redact_packet, throttled
from .metrics import OTHER, EventStats, Metrics
from .namespaces import Handshake, Namespace, Socket, utcnow
from .parsers import JSON, PARSERS
from .policy import RoomPolicies
from .protocol import socketio
from .protocol.errors import ProtocolError
from .recovery import RECOVERABLE_REASONS, Recovery, SocketState
from .recovery_stores import recovery_from_settings
from .runtime import Dispatch, Runtime, current
from .sessions import Session
from .tracing import NO_SPAN, AttributeValue, Span, Tracing

logger = logging.getLogger("realtime.socketio")
packet_logger = logging.getLogger("realtime.socketio.packets")

PT = socketio.PacketType

# A socket refused RATE_LIMIT_STRIKES events within this many seconds is disconnected.
STRIKE_WINDOW = 10.0

# Query parameters of an Engine.IO request that belong to the transport, not to a v2 client's auth.
ENGINE_QUERY = frozenset({"EIO", "transport", "t", "b64", "sid", "j"})


class Server:
    """The namespaces of this process: static ones by name, dynamic ones by matcher.

    ``io`` is the project's (like Django's ``admin.site``: user code registers
    on it at import time); a test that runs two runtimes in one event loop
    gives each a Server of its own with ``runtime=``.
    """

    def __init__(self, runtime: Runtime | None = None) -> None:
        self.runtime = runtime  # None: the process's runtime
        self.classes: list[type[Namespace]] = []
        self.instances: dict[str, Namespace] = {}
        self._decorated: dict[str, type[Namespace]] = {}
        self._loaded = False
        self._limits: ClientLimits | None = None
        self.policies = RoomPolicies(lambda namespace: arooms(namespace, runtime=self.runtime))

    @property
    def limits(self) -> ClientLimits:
        if self._limits is None:
            self._limits = ClientLimits.from_settings()
        return self._limits

    def layer_handlers(self, runtime: Runtime) -> Dispatch:
        """What the Socket.IO layer answers on the channel layer, for ``runtime``'s dispatch table."""
        return Answers(runtime, self.policies.invalidate).table()

    def register(self, cls: type[Namespace]) -> type[Namespace]:
        """Add a Namespace class (also usable as a class decorator)."""
        if cls not in self.classes:
            self.classes.append(cls)
        return cls

    def on(self, event: str, namespace: str = "/") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form: ``@io.on("chat message")`` def handler(socket, *args); also "connect"/"disconnect"."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            cls = self._decorated.get(namespace)
            if cls is None:
                cls = type(f"Decorated{len(self._decorated)}", (Namespace,), {"namespace": namespace})
                self._decorated[namespace] = cls
                self.register(cls)
            hook = {"connect": "on_connect", "disconnect": "on_disconnect"}.get(event)
            if hook is not None:
                setattr(cls, hook, staticmethod(fn))
            else:
                attribute = f"_decorated_{len(cls._events)}"
                setattr(cls, attribute, staticmethod(fn))
                cls._events = {**cls._events, event: attribute}
            self.instances.pop(namespace, None)
            return fn

        return decorate

    def load(self) -> None:
        """Import what REALTIME["NAMESPACES"] names, once."""
        if self._loaded:
            return
        self._loaded = True
        for path in realtime_settings()["NAMESPACES"]:
            entry = import_namespace_entry(path)
            if isinstance(entry, type) and issubclass(entry, Namespace):
                self.register(entry)

    def resolve(self, name: str) -> Namespace | None:
        """The namespace instance for a requested name, created on first use; None when unknown."""
        instance = self.instances.get(name)
        if instance is not None:
            return instance
        self.load()
        for cls in self.classes:
            if cls.matches(name):
                return self._keep(name, cls(name))
        if name == "/":
            return self._keep(name, Namespace("/"))
        return None

    def _keep(self, name: str, instance: Namespace) -> Namespace:
        instance.runtime = self.runtime
        self.instances[name] = instance
        # the metrics' label: a dynamic namespace's instances (/team-1, /team-2, ...) share their class's
        metrics = (self.runtime or current()).metrics
        instance.event_stats = metrics.label_namespace(name, namespace_label(type(instance), name), instance._events)
        return instance

    def of(self, namespace: str) -> BroadcastOperator:
        return BroadcastOperator(namespace, runtime=self.runtime)

    def to(self, *rooms: str) -> BroadcastOperator:
        return self.of("/").to(*rooms)

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        return self.of("/").except_(*rooms)

    async def emit(self, event: str, *args: Any) -> None:
        await self.of("/").emit(event, *args)


io = Server()


def start_runtime(server: Server | None = None, **options: Any) -> Runtime:
    """A runtime with ``server``'s answers (``io``'s by default) in its dispatch table; ready() installs it."""
    server = server or io
    name = realtime_settings()["PARSER"]
    options.setdefault("parser", PARSERS.get(name, JSON) if isinstance(name, str) else JSON)  # else realtime.E012
    interval = realtime_settings()["MALLOC_TRIM_INTERVAL"]
    options.setdefault("trim_interval", interval / 1000 if isinstance(interval, int) and interval > 0 else None)
    options.setdefault("metrics", Metrics(timed=realtime_settings()["METRICS"] is not False))
    options.setdefault("tracing", tracing_from_settings())
    runtime = Runtime(handlers=server.layer_handlers, **options)
    recovery = realtime_settings()["CONNECTION_STATE_RECOVERY"]
    runtime.recovery = recovery_from_settings(recovery, settings.CHANNEL_LAYERS, runtime.key)
    if server is not io:
        server.runtime = runtime
    return runtime


def tracing_from_settings() -> Tracing:
    """REALTIME["TRACING"]: spans when True and opentelemetry-api imports (else realtime.E016 says why)."""
    if realtime_settings()["TRACING"] is not True:
        return Tracing()
    try:
        return Tracing(enabled=True)
    except ImportError as exc:
        logger.error("REALTIME['TRACING'] is True but OpenTelemetry cannot be imported (%s); no spans", exc)
        return Tracing()


class Client:
    """A Socket.IO client: the Socket.IO side of one Engine.IO session, its sockets one per namespace."""

    # one per connection: slots, as Socket's ("__dict__" for attributes code may add)
    __slots__ = (
        "__dict__",
        "_attachments_due",
        "_connect_due",
        "decoder",
        "ever_connected",
        "limits",
        "policies",
        "protocol",
        "runtime",
        "server",
        "session",
        "sockets",
        "tasks",
    )

    def __init__(self, session: Session, server: Server | None = None) -> None:
        self.session = session
        self.server = server or io
        self.runtime = self.server.runtime or current()
        self.policies = self.server.policies
        self.limits = limits = self.server.limits
        self.decoder = self.runtime.parser.decoder(
            max_attachments=limits.max_attachments, max_bytes=limits.max_attachment_bytes
        )
        self.sockets: dict[str, Socket] = {}
        # the Socket.IO protocol: 5, or 4 for a Socket.IO v2 client on Engine.IO v3 (see the module docstring)
        self.protocol = 4 if session.protocol.version == 3 else 5
        self.tasks: set[asyncio.Task[Any]] = set()
        self.ever_connected = False
        self._attachments_due: asyncio.TimerHandle | None = None
        self._connect_due: asyncio.TimerHandle | None = None  # CONNECT_TIMEOUT, until the first namespace connects

    # -- Engine.IO seam -------------------------------------------------------
    async def on_open(self) -> None:
        timeout = realtime_settings()["CONNECT_TIMEOUT"] / 1000
        self._connect_due = self.session.call_later(timeout, self._connect_timeout)
        if self.protocol == 4:
            # connected to "/" without asking, its handshake query as auth; in a task, so the
            # handshake is answered first (and the open packet goes out before the CONNECT)
            query = {k: v for k, v in self.session.request.query.items() if k not in ENGINE_QUERY}
            self.spawn(self._connect(socketio.Packet(PT.CONNECT, "/", query)))

    async def on_message(self, data: str | bytes) -> None:
        try:
            packet = self.decoder.feed(data)
            if (
                packet is not None
                and packet.type in (PT.EVENT, PT.BINARY_EVENT)
                and socketio.is_reserved_event(packet.data[0])
            ):
                raise ProtocolError(f"reserved event name {packet.data[0]!r}")
            if packet is not None and packet.type is PT.CONNECT_ERROR:
                raise ProtocolError("clients do not send CONNECT_ERROR")
        except ProtocolError as exc:
            self.runtime.metrics.refused("parse_error")
            throttled(logger, logging.WARNING, "parse error", "sid=%s closed: parse error (%s)", self.session.sid, exc)
            await self.session.close("parse error")
            return
        if packet is not None and self.protocol == 4 and "?" in packet.namespace:
            packet = _v4_namespace_query(packet)
        if packet is None:
            if self.decoder.waiting and self._attachments_due is None:
                self._attachments_due = asyncio.get_running_loop().call_later(
                    self.limits.attachment_timeout, self._attachments_late
                )
            return
        if self._attachments_due is not None:
            self._attachments_due.cancel()
            self._attachments_due = None
        if packet_logger.isEnabledFor(logging.DEBUG):
            packet_logger.debug("sid=%s <- %r", self.session.sid, redact_packet(packet))
        if packet.type is PT.CONNECT:
            await self._connect(packet)
            return
        socket = self.sockets.get(packet.namespace)
        if socket is None:
            logger.debug("sid=%s: packet for unconnected namespace %s dropped", self.session.sid, packet.namespace)
        elif packet.type in (PT.EVENT, PT.BINARY_EVENT):
            name = packet.data[0]
            handler = socket.nsp.handler(name)
            # counted by name only when declared: a client's made-up names all count as "other"
            table = socket.nsp.event_stats
            stats = table.get(name) if handler is not None else None
            if stats is None:
                stats = table[OTHER]
            stats.received += 1
            refusal = self._event_refusal(socket, packet, handler)
            if refusal is None:
                if packet.id is not None:
                    socket.answering += 1
                self.spawn(self._event(socket, packet, handler, stats))
            else:
                await self._refuse(socket, packet, *refusal)
                if refusal[1] == "RATE_LIMITS":
                    await self._strike(socket, self.limits)
        elif packet.type in (PT.ACK, PT.BINARY_ACK):
            socket.acked(packet.id, packet.data)
        elif packet.type is PT.DISCONNECT:
            await self.socket_closed(socket, "client namespace disconnect")

    async def on_close(self, reason: str) -> None:
        if self._attachments_due is not None:
            self._attachments_due.cancel()
        for socket in list(self.sockets.values()):
            await self.socket_closed(socket, reason)

    def _attachments_late(self) -> None:
        """A binary packet's attachments did not all come within ATTACHMENT_TIMEOUT: drop the client."""
        self._attachments_due = None
        if self.decoder.waiting and not self.session.closed:
            throttled(
                logger, logging.WARNING, "attachments late", "sid=%s closed: binary attachments late", self.session.sid
            )
            self.spawn(self.session.close("parse error"))

    async def _refuse(self, socket: Socket, packet: socketio.Packet, message: str, limit: str, reason: str) -> None:
        """An event over a limit: an error ack when the client waits for one, one log line, one count."""
        self.runtime.metrics.refused(reason)
        throttled(
            logger,
            logging.WARNING,
            limit,
            "sid=%s: event refused in %s: %s (%s)",
            self.session.sid,
            socket.namespace,
            message,
            limit,
        )
        if packet.id is not None:
            await socket.send_packet(socketio.Packet(PT.ACK, socket.namespace, [{"error": message}], packet.id))

    # -- CONNECT --------------------------------------------------------------
    async def _connect(self, packet: socketio.Packet) -> None:
        """A namespace CONNECT: in a span of its own when tracing (its outcome and the auth result on it)."""
        tracing = self.runtime.tracing
        if not tracing.enabled:
            await self._connect_socket(packet, NO_SPAN)
            return
        # never the name as the client wrote it: a dynamic namespace is its pattern, an unknown one "unknown"
        known = self.server.resolve(packet.namespace) is not None
        label = self.runtime.metrics.namespace_label(packet.namespace) if known else "unknown"
        attributes: dict[str, AttributeValue] = {"realtime.namespace": label, "realtime.sid": self.session.sid}
        with tracing.span(f"realtime connect {label}", "server", attributes) as span:
            await self._connect_socket(packet, span)

    async def _connect_socket(self, packet: socketio.Packet, span: Span) -> None:
        name = packet.namespace
        metrics = self.runtime.metrics
        if name in self.sockets:
            logger.debug("sid=%s: second CONNECT to %s ignored", self.session.sid, name)
            return
        if len(self.sockets) >= self.limits.max_namespaces:
            metrics.refused("max_namespaces")
            span.set_attribute("realtime.outcome", "max_namespaces")
            throttled(
                logger,
                logging.WARNING,
                "MAX_NAMESPACES",
                "sid=%s: CONNECT to %s refused: MAX_NAMESPACES=%d",
                self.session.sid,
                name,
                self.limits.max_namespaces,
            )
            await self._send_connect_error(name, "Too many namespaces")
            return
        nsp = self.server.resolve(name)
        if nsp is None:
            metrics.refused("invalid_namespace")
            span.set_attribute("realtime.outcome", "invalid_namespace")
            throttled(
                logger,
                logging.INFO,
                "unknown namespace",
                "sid=%s: CONNECT to unknown namespace %s refused",
                self.session.sid,
                name,
            )
            await self._send_connect_error(name, "Invalid namespace")
            return
        auth = packet.data if isinstance(packet.data, dict) else {}
        socket: Socket | None = None
        recovery = self.runtime.recovery if self.protocol == 5 else None
        restored = await self._restorable(recovery, name, auth) if recovery is not None else None
        stage = "auth"  # what refused, if something does (realtime.metrics.REFUSAL_REASONS)
        try:
            # REALTIME["AUTHENTICATORS"], then the namespace's and the credential's requirements,
            # then the namespace's own middleware and on_connect
            identity = await authenticate(self.session.request, auth)
            if restored is not None and restored.user != user_key(identity.user):
                restored = None  # the state of someone else: never handed over
            socket_id = restored.sid if restored is not None else self._v4_socket_id(name)
            socket = Socket(self, nsp, self._handshake(auth), identity.user, socket_id)
            socket.credential = identity.credential
            if recovery is not None:
                socket.pid = restored.pid if restored is not None else recovery.new_pid()
            if restored is not None:
                socket.recovered = True
                socket.data = restored.data
            await authorize(nsp, name, socket.user, socket.credential)
            authenticated = getattr(socket.user, "is_authenticated", False)
            span.set_attribute("realtime.auth", "user" if authenticated else "anonymous")
            stage = "connect_refused"
            if restored is None or recovery is None or not recovery.settings.skip_middlewares:
                for middleware in nsp.middleware:
                    await call(middleware, socket, auth)
            await call(nsp.on_connect, socket, auth)
        except ConnectionRefused as refusal:
            metrics.refused(stage)
            span.set_attribute("realtime.outcome", stage)
            if stage == "auth":
                span.set_attribute("realtime.auth", "refused")
            throttled(
                logger,
                logging.INFO,
                "connect refused",
                "sid=%s: CONNECT to %s refused: %s",
                self.session.sid,
                name,
                refusal.message,
            )
            await self._abandon(socket)
            await self._send_connect_error(name, refusal.message, refusal.data)
            return
        except Exception:
            metrics.refused("connect_error")
            span.set_attribute("realtime.outcome", "connect_error")
            throttled(
                logger,
                logging.ERROR,
                f"on_connect {name}",
                "sid=%s: on_connect of %s raised",
                self.session.sid,
                name,
                exc_info=True,
            )
            await self._abandon(socket)
            await self._send_connect_error(name, "Internal server error")
            return
        if self.session.closed:  # the client left while on_connect ran
            span.set_attribute("realtime.outcome", "client_gone")
            await self._abandon(socket)
            return
        label = metrics.namespace_label(name)
        metrics.connects[label] = metrics.connects.get(label, 0) + 1
        if restored is not None:
            metrics.recovery_restored += 1
        span.set_attribute("realtime.outcome", "accepted")
        span.set_attribute("realtime.recovered", restored is not None)
        self.sockets[name] = socket
        self.ever_connected = True
        if self._connect_due is not None:
            self.session.cancel_later(self._connect_due)
            self._connect_due = None
        await socket.opened(restored, auth.get("offset", "") if restored is not None else "")
        socket.arm_expiry()
        await signals.client_connected.asend(sender=type(nsp), socket=socket)

    @staticmethod
    async def _abandon(socket: Socket | None) -> None:
        """A socket that never connected gives back whatever on_connect made it join."""
        if socket is not None:
            await socket.closed()

    async def _restorable(self, recovery: Recovery, name: str, auth: dict[str, Any]) -> SocketState | None:
        """The state a reconnecting client asks back with ``{pid, offset}`` in its auth, if it may have it.

        Not while a socket with that id is still connected here (the client came back before the
        server noticed it had gone): that one must time out first, or two sockets would share an id.
        """
        pid, offset = auth.get("pid"), auth.get("offset")
        if not isinstance(pid, str) or not isinstance(offset, str):
            return None
        state = await recovery.find(pid, offset, name)
        if state is None:
            self.runtime.metrics.recovery_expired += 1
        if state is not None and self.runtime.rooms.member(name, state.sid) is not None:
            return None
        return state

    def _v4_socket_id(self, namespace: str) -> str | None:
        """A Socket.IO v2 client's socket id, as Node gives it (None: a fresh id, as for v5 clients)."""
        if self.protocol != 4:
            return None
        return self.session.sid if namespace == "/" else f"{namespace}#{self.session.sid}"

    async def _send_connect_error(self, namespace: str, message: str, data: Any = None) -> None:
        body: dict[str, Any] | str
        if self.protocol == 4:
            body = message  # socket.io-client@2 gives an "error" listener the payload as is
        else:
            body = {"message": message} if data is None else {"message": message, "data": data}
        for frame in self.runtime.parser.encode(socketio.Packet(PT.CONNECT_ERROR, namespace, body)):
            await self.session.send(frame)

    def _handshake(self, auth: dict[str, Any]) -> Handshake:
        request = self.session.request
        return Handshake(
            headers=request.lazy_headers,
            query=request.query,
            address=request.address,
            auth=auth,
            time=utcnow(),
            url=f"{request.path}?{request.query_string}",
            secure=request.secure,
            issued=time.time() * 1000,
        )

    def _connect_timeout(self) -> None:
        if not self.ever_connected and not self.session.closed:
            logger.info("sid=%s closed: no namespace connected within CONNECT_TIMEOUT", self.session.sid)
            self.spawn(self.session.close("connect timeout"))

    # -- events ---------------------------------------------------------------
    def _event_refusal(
        self, socket: Socket, packet: socketio.Packet, handler: Callable[..., Any] | None
    ) -> tuple[str, str, str] | None:
        """(message, limit, metrics reason) when an event is over a limit; checked before a task exists for it."""
        limits = self.limits
        limited = limits.rate_limits or (handler is not None and hasattr(handler, "_realtime_rate"))
        if limited and not self._rate_allows(socket, packet.data[0], handler, limits):
            return "rate limited", "RATE_LIMITS", "rate_limit"
        if len(self.tasks) >= limits.max_running_handlers:
            return "too many events in progress", "MAX_RUNNING_HANDLERS", "max_running_handlers"
        if packet.id is not None and socket.answering >= limits.max_pending_acks:
            return "too many pending acks", "MAX_PENDING_ACKS", "max_pending_acks"
        return None

    async def _event(
        self, socket: Socket, packet: socketio.Packet, handler: Callable[..., Any] | None, stats: EventStats
    ) -> None:
        socket.messages_in += 1
        event, *args = packet.data
        runtime = self.runtime
        timed = handler is not None and runtime.metrics.timed
        started = time.perf_counter() if timed else 0.0
        try:
            if runtime.tracing.enabled:
                await self._traced(socket, packet, event, args, handler, stats)
            else:
                await self._handle(socket, packet, event, args, handler, stats)
        finally:
            if packet.id is not None:
                socket.answering -= 1
            if timed:
                stats.duration.observe(time.perf_counter() - started)

    async def _traced(
        self,
        socket: Socket,
        packet: socketio.Packet,
        event: str,
        args: list[Any],
        handler: Callable[..., Any] | None,
        stats: EventStats,
    ) -> None:
        """``_handle`` inside a span: the handler's own spans (the ORM, an emit) are its children."""
        attributes: dict[str, AttributeValue] = {
            "realtime.namespace": stats.namespace,
            "realtime.event": stats.event,
            "realtime.socket_id": socket.id,
            "realtime.ack": packet.id is not None,
        }
        with self.runtime.tracing.span(f"realtime event {stats.namespace} {stats.event}", "server", attributes):
            await self._handle(socket, packet, event, args, handler, stats)

    def _rate_allows(
        self, socket: Socket, event: str, handler: Callable[..., Any] | None, limits: ClientLimits
    ) -> bool:
        """Every rate that applies to this event (its own, "*", its handler's) still has a token."""
        rates = [(key, limits.rate_limits[key]) for key in (event, "*") if key in limits.rate_limits]
        decorated = getattr(handler, "_realtime_rate", None)
        if decorated is not None:
            rates.append((f"@{event}", decorated))
        now = asyncio.get_running_loop().time()
        buckets = socket.buckets
        if buckets is None:
            buckets = socket.buckets = {}
        allowed = True
        for key, rate in rates:
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = TokenBucket(rate, now)
            allowed = bucket.take(now) and allowed
        return allowed

    async def _strike(self, socket: Socket, limits: ClientLimits) -> None:
        """Count a refusal; a socket that keeps going past its rate is disconnected."""
        now = asyncio.get_running_loop().time()
        since, count = socket.strikes
        if now - since > STRIKE_WINDOW:
            since, count = now, 0
        count += 1
        socket.strikes = (since, count)
        if count >= limits.strikes and socket.connected:
            self.runtime.metrics.refused("strikes")
            throttled(
                logger,
                logging.WARNING,
                "strikes",
                "sid=%s: %s disconnected: over its rate %d times in %.0f s",
                self.session.sid,
                socket.namespace,
                count,
                STRIKE_WINDOW,
            )
            await socket.disconnect()

    async def _handle(
        self,
        socket: Socket,
        packet: socketio.Packet,
        event: str,
        args: list[Any],
        handler: Callable[..., Any] | None,
        stats: EventStats,
    ) -> None:
        try:
            for middleware in socket.packet_middleware:
                if await call(middleware, socket, event, args) is False:
                    return
        except EventRefused as refusal:
            await self._refused_by_code(socket, packet, refusal)
            return
        for listener in socket.any_listeners:
            listener(event, *args)
        nsp = socket.nsp
        caught = None
        if nsp.on_any is not None:
            caught = await call(nsp.on_any, socket, event, *args)
        if handler is None:
            logger.debug("sid=%s: no handler for %r in %s", self.session.sid, event, socket.namespace)
            if nsp.on_any is not None and packet.id is not None and socket.connected:
                # no handler of its own: on_any's return value is the ack (Node's onAny gets the callback)
                stats.acks += 1
                await socket.send_packet(socketio.Packet(PT.ACK, socket.namespace, _ack_args(caught), packet.id))
            return
        try:
            result = await call(handler, socket, *args)
        except EventRefused as refusal:  # e.g. RoomRefused from socket.join_checked
            await self._refused_by_code(socket, packet, refusal)
            return
        except TypeError:
            if _binds(handler, len(args) + 1):
                raise  # a bug inside the handler, not the client's arguments
            # the client sent a number of arguments the handler does not take: its fault, not a bug
            where = f"arguments {socket.namespace} {event}"
            await self._refuse(socket, packet, "invalid arguments", where, "invalid_arguments")
            return
        if packet.id is not None and socket.connected:
            stats.acks += 1  # the handler's return value is the ack
            await socket.send_packet(socketio.Packet(PT.ACK, socket.namespace, _ack_args(result), packet.id))

    async def _refused_by_code(self, socket: Socket, packet: socketio.Packet, refusal: EventRefused) -> None:
        """Code (packet middleware, the handler) refused the event: counted, and the ack says why."""
        self.runtime.metrics.refused("event_refused")
        if packet.id is not None:
            refused = socketio.Packet(PT.ACK, socket.namespace, [{"error": refusal.message}], packet.id)
            await socket.send_packet(refused)

    def spawn(self, coro: Any) -> None:
        """Run handler code beside the receive path, so a handler awaiting an ack cannot block it."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        """A handler task ended: log what it raised (the session goes on), forget it.

        One traceback per handler per interval: a client can make a buggy
        handler raise on every packet, and must not fill the log by doing so.
        """
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            where = exc.__traceback__.tb_frame.f_code.co_qualname if exc.__traceback__ is not None else "?"
            throttled(
                logger,
                logging.ERROR,
                f"handler raised {type(exc).__name__} {where}",
                "sid=%s: handler raised; the session goes on",
                self.session.sid,
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    # -- DISCONNECT -----------------------------------------------------------
    async def socket_closed(self, socket: Socket, reason: str) -> None:
        if self.sockets.get(socket.namespace) is not socket:
            return
        del self.sockets[socket.namespace]
        recovery = self.runtime.recovery
        if recovery is not None and socket.pid is not None:
            if reason in RECOVERABLE_REASONS:
                await socket.keep_state(live=False)  # it may come back within the window
            else:
                await recovery.drop(socket.pid)  # a deliberate disconnect is never recovered
        await self._hook(socket.nsp.on_disconnecting, socket, reason)
        await socket.closed()
        await self._hook(socket.nsp.on_disconnect, socket, reason)
        await signals.client_disconnected.asend(sender=type(socket.nsp), socket=socket, reason=reason)

    async def _hook(self, hook: Callable[..., Any], socket: Socket, reason: str) -> None:
        try:
            await call(hook, socket, reason)
        except Exception:
            throttled(
                logger,
                logging.ERROR,
                f"{hook.__qualname__} raised",
                "sid=%s: %s of %s raised",
                self.session.sid,
                hook.__name__,
                socket.namespace,
                exc_info=True,
            )


def namespace_label(cls: type[Namespace], name: str) -> str:
    """The metrics' and spans' name of a namespace: its own, or for a dynamic one its class's pattern."""
    pattern = cls.namespace
    if isinstance(pattern, str):
        return name
    if isinstance(pattern, re.Pattern):
        return pattern.pattern
    return f"{cls.__module__}.{cls.__qualname__}"


def _v4_namespace_query(packet: socketio.Packet) -> socketio.Packet:
    """``/admin?token=x`` as namespace ``/admin``; a CONNECT's query becomes its auth (Socket.IO v4)."""
    name, _, query = packet.namespace.partition("?")
    if packet.type is PT.CONNECT:
        return replace(packet, namespace=name, data=dict(parse_qsl(query)))
    return replace(packet, namespace=name)


def _ack_args(result: Any) -> list[Any]:
    """A handler's return value as ack arguments: a tuple spreads, None sends none."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


def _binds(handler: Callable[..., Any], count: int) -> bool:
    """Whether ``handler`` takes ``count`` positional arguments (asked only after a TypeError)."""
    try:
        inspect.signature(handler).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): give the benefit of the doubt
        return True
    return True
