"""Socket.IO v5 dispatch: CONNECT and auth, events to handlers, acks, DISCONNECT.

``Connection`` is the handler of one Engine.IO session (the seam in
sessions.py); ``Server`` knows the namespaces. ``io`` is the process's
server, which ``@io.on(...)`` registers handlers on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from . import signals
from .auth import arm_expiry, authenticate, authorize
from .broadcast import BroadcastOperator
from .checks import import_namespace_entry
from .conf import realtime_settings
from .exceptions import ConnectionRefused, EventRefused
from .handlers import call
from .namespaces import Handshake, Namespace, Socket, utcnow
from .protocol import socketio
from .protocol.errors import ProtocolError
from .sessions import Session

logger = logging.getLogger("realtime.socketio")
packet_logger = logging.getLogger("realtime.socketio.packets")

PT = socketio.PacketType

# Engine.IO close reasons as Socket.IO reports them to on_disconnect.
# "forced close" stays itself (socket.conn.close()); socket.disconnect(close=True) has already
# disconnected every namespace with "server namespace disconnect" before it closes the session.
DISCONNECT_REASONS = {"transport error": "transport error"}


class Server:
    """The namespaces of this process: static ones by name, dynamic ones by matcher."""

    def __init__(self) -> None:
        self.classes: list[type[Namespace]] = []
        self.instances: dict[str, Namespace] = {}
        self._decorated: dict[str, type[Namespace]] = {}
        self._loaded = False

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
                instance = self.instances[name] = cls(name)
                return instance
        if name == "/":
            instance = self.instances[name] = Namespace("/")
            return instance
        return None

    def of(self, namespace: str) -> BroadcastOperator:
        return BroadcastOperator(namespace)

    def to(self, *rooms: str) -> BroadcastOperator:
        return BroadcastOperator("/").to(*rooms)

    in_ = to

    def except_(self, *rooms: str) -> BroadcastOperator:
        return BroadcastOperator("/").except_(*rooms)

    async def emit(self, event: str, *args: Any) -> None:
        await BroadcastOperator("/").emit(event, *args)


io = Server()


class Connection:
    """The Socket.IO side of one Engine.IO session: its sockets, one per namespace."""

    def __init__(self, session: Session, server: Server | None = None) -> None:
        self.session = session
        self.server = server or io
        self.decoder = socketio.Decoder()
        self.sockets: dict[str, Socket] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.ever_connected = False

    # -- Engine.IO seam -------------------------------------------------------
    async def on_open(self) -> None:
        timeout = realtime_settings()["CONNECT_TIMEOUT"] / 1000
        self.session.call_later(timeout, self._connect_timeout)

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
            logger.warning("sid=%s closed: parse error (%s)", self.session.sid, exc)
            await self.session.close("parse error")
            return
        if packet is None:
            return
        if packet_logger.isEnabledFor(logging.DEBUG):
            packet_logger.debug("sid=%s <- %r", self.session.sid, packet)
        if packet.type is PT.CONNECT:
            await self._connect(packet)
            return
        socket = self.sockets.get(packet.namespace)
        if socket is None:
            logger.debug("sid=%s: packet for unconnected namespace %s dropped", self.session.sid, packet.namespace)
        elif packet.type in (PT.EVENT, PT.BINARY_EVENT):
            self._spawn(self._event(socket, packet))
        elif packet.type in (PT.ACK, PT.BINARY_ACK):
            socket.acked(packet.id, packet.data)
        elif packet.type is PT.DISCONNECT:
            await self.socket_closed(socket, "client namespace disconnect")

    async def on_close(self, reason: str) -> None:
        reason = DISCONNECT_REASONS.get(reason, reason)
        for socket in list(self.sockets.values()):
            await self.socket_closed(socket, reason)

    # -- CONNECT --------------------------------------------------------------
    async def _connect(self, packet: socketio.Packet) -> None:
        name = packet.namespace
        if name in self.sockets:
            logger.debug("sid=%s: second CONNECT to %s ignored", self.session.sid, name)
            return
        nsp = self.server.resolve(name)
        if nsp is None:
            logger.info("sid=%s: CONNECT to unknown namespace %s refused", self.session.sid, name)
            await self._send_connect_error(name, "Invalid namespace")
            return
        auth = packet.data if isinstance(packet.data, dict) else {}
        try:
            # REALTIME["AUTHENTICATORS"], then the namespace's and the credential's requirements,
            # then the namespace's own middleware and on_connect
            identity = await authenticate(self.session.request, auth)
            socket = Socket(self, nsp, self._handshake(auth), identity.user)
            socket.credential = identity.credential
            await authorize(socket)
            for middleware in nsp.middleware:
                await call(middleware, socket, auth)
            await call(nsp.on_connect, socket, auth)
        except ConnectionRefused as refusal:
            logger.info("sid=%s: CONNECT to %s refused: %s", self.session.sid, name, refusal.message)
            await self._send_connect_error(name, refusal.message, refusal.data)
            return
        except Exception:
            logger.exception("sid=%s: on_connect of %s raised", self.session.sid, name)
            await self._send_connect_error(name, "Internal server error")
            return
        self.sockets[name] = socket
        self.ever_connected = True
        await socket.opened()
        arm_expiry(socket)
        await signals.client_connected.asend(sender=type(nsp), socket=socket)

    async def _send_connect_error(self, namespace: str, message: str, data: Any = None) -> None:
        body: dict[str, Any] = {"message": message}
        if data is not None:
            body["data"] = data
        for frame in socketio.encode(socketio.Packet(PT.CONNECT_ERROR, namespace, body)):
            await self.session.send(frame)

    def _handshake(self, auth: dict[str, Any]) -> Handshake:
        request = self.session.request
        return Handshake(
            headers=request.headers,
            query=request.query,
            address=request.address,
            auth=auth,
            time=utcnow(),
            url=f"{request.path}?{request.query_string}",
            secure=request.secure,
            issued=time.time() * 1000,
        )

    def _connect_timeout(self) -> None:
        if not self.ever_connected and not self.session.conn.closed:
            logger.info("sid=%s closed: no namespace connected within CONNECT_TIMEOUT", self.session.sid)
            self._spawn(self.session.close("connect timeout"))

    # -- events ---------------------------------------------------------------
    async def _event(self, socket: Socket, packet: socketio.Packet) -> None:
        socket.messages_in += 1
        event, *args = packet.data
        try:
            for middleware in socket.packet_middleware:
                if await call(middleware, socket, event, args) is False:
                    return
        except EventRefused as refusal:
            if packet.id is not None:
                refused = socketio.Packet(PT.ACK, socket.namespace, [{"error": refusal.message}], packet.id)
                await socket.send_packet(refused)
            return
        for listener in socket.any_listeners:
            listener(event, *args)
        nsp = socket.nsp
        caught = None
        if nsp.on_any is not None:
            caught = await call(nsp.on_any, socket, event, *args)
        handler = nsp.handler(event)
        if handler is None:
            logger.debug("sid=%s: no handler for %r in %s", self.session.sid, event, socket.namespace)
            if nsp.on_any is not None and packet.id is not None and socket.connected:
                # no handler of its own: on_any's return value is the ack (Node's onAny gets the callback)
                await socket.send_packet(socketio.Packet(PT.ACK, socket.namespace, _ack_args(caught), packet.id))
            return
        try:
            result = await call(handler, socket, *args)
        except EventRefused as refusal:  # e.g. RoomRefused from socket.join_checked
            if packet.id is not None:
                refused = socketio.Packet(PT.ACK, socket.namespace, [{"error": refusal.message}], packet.id)
                await socket.send_packet(refused)
            return
        if packet.id is not None and socket.connected:
            await socket.send_packet(socketio.Packet(PT.ACK, socket.namespace, _ack_args(result), packet.id))

    def _spawn(self, coro: Any) -> None:
        """Run handler code beside the receive path, so a handler awaiting an ack cannot block it."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        """A handler task ended: log what it raised (the session goes on), forget it."""
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error(
                "sid=%s: handler raised; the session goes on",
                self.session.sid,
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    # -- DISCONNECT -----------------------------------------------------------
    async def socket_closed(self, socket: Socket, reason: str) -> None:
        if self.sockets.get(socket.namespace) is not socket:
            return
        del self.sockets[socket.namespace]
        await self._hook(socket.nsp.on_disconnecting, socket, reason)
        await socket.closed()
        await self._hook(socket.nsp.on_disconnect, socket, reason)
        await signals.client_disconnected.asend(sender=type(socket.nsp), socket=socket, reason=reason)

    async def _hook(self, hook: Callable[..., Any], socket: Socket, reason: str) -> None:
        try:
            await call(hook, socket, reason)
        except Exception:
            logger.exception("sid=%s: %s of %s raised", self.session.sid, hook.__name__, socket.namespace)


def _ack_args(result: Any) -> list[Any]:
    """A handler's return value as ack arguments: a tuple spreads, None sends none."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]
