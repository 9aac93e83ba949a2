"""The Namespace base class and the Socket handle: what a Django developer writes against.

A namespace is a class (like a view); the socket plays the part of the
request; a handler's return value is the acknowledgement.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from django.utils import timezone

from . import signals
from .auth import user_key
from .broadcast import BroadcastOperator, event_frames, recorded_event
from .exceptions import AckTimeout, LimitExceeded
from .limits import ClientLimits, Rate, TokenBucket
from .metrics import EventStats
from .policy import RoomPolicies
from .protocol import socketio
from .recovery import SocketState, StoredPacket
from .rooms import SENT, Member, new_socket_id
from .runtime import Runtime, current
from .sessions import Outgoing, Session

auth_logger = logging.getLogger("realtime.auth")

NamespaceMatcher = str | re.Pattern[str] | Callable[[str], bool]

# Seconds emit_with_ack waits for the client's answer unless told otherwise.
ACK_TIMEOUT = 5.0


def event(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a Namespace method as the handler of ``name`` (for names that are not identifiers)."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn._realtime_event = name  # type: ignore[attr-defined]
        return fn

    return mark


def rate_limit(rate: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Limit how often one socket may trigger this handler: ``@rate_limit("5/s")``.

    Over the rate the event is refused (the client's ack gets ``{"error": "rate limited"}``),
    and a socket that keeps going is disconnected (``REALTIME["RATE_LIMIT_STRIKES"]``).
    """
    parsed = Rate.parse(rate)

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn._realtime_rate = parsed  # type: ignore[attr-defined]
        return fn

    return mark


HOOKS = frozenset({"on_connect", "on_disconnecting", "on_disconnect", "on_any", "on_any_outgoing"})


class Namespace:
    """Subclass it, set ``namespace``, and write ``on_<event>(self, socket, *args)`` handlers.

    ``namespace`` is a name ("/chat"), a compiled regex, or a callable taking
    the requested name: the last two make a dynamic namespace, and each name
    a client connects to (``/team-42``) gets its own instance.
    """

    namespace: ClassVar[NamespaceMatcher] = "/"
    # Run in order before on_connect: f(socket, auth), sync or async; raise ConnectionRefused to refuse.
    middleware: ClassVar[Sequence[Callable[..., Any]]] = ()
    # Run in order before every incoming event: f(socket, event, args); return False to drop it,
    # raise EventRefused to drop it and tell the client (when it asked for an ack).
    packet_middleware: ClassVar[Sequence[Callable[..., Any]]] = ()
    # Checked at CONNECT, after authentication (realtime.auth.authorize); a client that fails
    # gets CONNECT_ERROR "permission denied". Permissions: all of them; groups: any of them.
    # A subclass may define on_any(self, socket, event, *args): called for every incoming event.
    on_any: ClassVar[Callable[..., Any] | None] = None
    login_required: ClassVar[bool] = False
    permission_required: ClassVar[str | Sequence[str]] = ()
    groups_required: ClassVar[Sequence[str]] = ()
    _events: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        events: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if attr.startswith("on_") and attr not in HOOKS and callable(value):
                    events[attr[3:]] = attr
                name = getattr(value, "_realtime_event", None)
                if name is not None:
                    events[name] = attr
        cls._events = events

    # None: the process's runtime; the Server that creates the instance sets its own (a test may run two)
    runtime: Runtime | None = None
    # what the server counts per event (realtime.metrics), by event name; the Server sets it
    event_stats: dict[str, EventStats]

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def matches(cls, name: str) -> bool:
        pattern = cls.namespace
        if isinstance(pattern, str):
            return pattern == name
        if isinstance(pattern, re.Pattern):
            return pattern.fullmatch(name) is not None
        return bool(pattern(name))

    @classmethod
    def is_dynamic(cls) -> bool:
        return not isinstance(cls.namespace, str)

    def handler(self, event_name: str) -> Callable[..., Any] | None:
        attr = self._events.get(event_name)
        return getattr(self, attr) if attr is not None else None

    # -- hooks (override) -------------------------------------------------
    async def on_connect(self, socket: Socket, auth: dict[str, Any]) -> None:
        """Accept by returning; refuse by raising ConnectionRefused(message, data)."""

    async def on_disconnecting(self, socket: Socket, reason: str) -> None:
        """Called while ``socket.rooms`` still lists the rooms it is leaving."""

    async def on_disconnect(self, socket: Socket, reason: str) -> None:
        """``reason`` is Socket.IO's: client namespace disconnect, transport close, ping timeout, ..."""

    # -- broadcasting -------------------------------------------------------
    @property
    def broadcast(self) -> BroadcastOperator:
        return BroadcastOperator(self.name, runtime=self.runtime)

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.except_(*rooms)

    async def emit(self, event_name: str, *args: Any) -> None:
        await self.broadcast.emit(event_name, *args)

    @property
    def sockets(self) -> dict[str, Socket]:
        """This process's sockets in the namespace, by id."""
        runtime = self.runtime or current()
        return {member.id: member.handle for member in runtime.rooms.members(self.name)}


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the client's first request carried, as Socket.IO's ``socket.handshake``."""

    # repr=False: cookies, tokens and auth payloads stay out of any log line or traceback;
    # headers are decoded when first read (few handlers do), not kept twice for every socket
    headers: Mapping[str, str] = field(repr=False)
    query: dict[str, str] = field(repr=False)
    address: str
    auth: dict[str, Any] = field(repr=False)
    time: datetime
    url: str = field(repr=False)
    secure: bool = False
    issued: float = field(default=0.0)


class SocketOwner(Protocol):
    """The Socket.IO client holding a socket (``server.Client``), as the socket sees it."""

    session: Session
    protocol: int  # Socket.IO's: 5, or 4 for a v2 client
    limits: ClientLimits
    runtime: Runtime
    policies: RoomPolicies
    sockets: dict[str, Socket]

    async def socket_closed(self, socket: Socket, reason: str) -> None: ...
    def spawn(self, coro: Any) -> None: ...


class Socket:
    """One client connected to one namespace."""

    # one per connected socket: slots save about 1 KiB each (make bench, idle memory per connection);
    # "__dict__" keeps ``socket.anything = ...`` working for code that sets attributes of its own
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_acks",
        "_next_ack",
        "answering",
        "any_listeners",
        "buckets",
        "client",
        "credential",
        "data",
        "expiry",
        "handshake",
        "id",
        "member",
        "messages_in",
        "namespace",
        "nsp",
        "packet_middleware",
        "pid",
        "recovered",
        "runtime",
        "strikes",
        "user",
    )
    sync_wrapped = True  # a def handler gets it with blocking methods (handlers.py)

    def __init__(
        self, client: SocketOwner, nsp: Namespace, handshake: Handshake, user: Any, socket_id: str | None = None
    ) -> None:
        self.client = client
        self.runtime = client.runtime
        self.member = Member(socket_id or new_socket_id(self.runtime.key), nsp.name, client.session, self)
        self.id = self.member.id
        self.nsp = nsp
        self.namespace = nsp.name
        self.handshake = handshake
        self.user = user
        self.credential: Any = None  # what authenticated the user: an AccessToken, or None for a session
        self.data: dict[str, Any] = {}
        # connection state recovery (realtime.recovery): the private id the client holds, and whether
        # this socket took back the state of one that lost its transport (Node's socket.recovered)
        self.pid: str | None = None
        self.recovered = False
        # tuples until something is added: most sockets never get a listener of their own
        self.packet_middleware: Sequence[Callable[..., Any]] = nsp.packet_middleware
        self.any_listeners: Sequence[Callable[..., Any]] = ()
        self.messages_in = 0  # read by the live-connection registry
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._next_ack = 0
        # limits (realtime.server): acks this socket still owes the client, rate buckets, refusals
        self.answering = 0
        self.buckets: dict[str, TokenBucket] | None = None
        self.strikes: tuple[float, int] = (0.0, 0)
        self.expiry: asyncio.TimerHandle | None = None  # when the credential expires (server.arm_expiry)

    def __repr__(self) -> str:
        return f"<Socket {self.id} {self.namespace}>"

    @property
    def session(self) -> Session:
        """The Engine.IO session under this socket (shared by the client's other namespaces)."""
        return self.client.session

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this socket is in, its own id's included (the process's Rooms holds them)."""
        return frozenset(self.member.rooms)

    @property
    def connected(self) -> bool:
        return self.member.connected

    @property
    def messages_out(self) -> int:
        return self.member.messages_out

    @property
    def any_outgoing_listeners(self) -> Sequence[Callable[..., Any]]:
        return self.member.outgoing_listeners

    # -- sending ------------------------------------------------------------
    async def emit(self, event_name: str, *args: Any, compress: bool = True) -> None:
        """Send an event to this client (``compress=False``, or ``socket.compress(False)``: see BroadcastOperator)."""
        if socketio.is_reserved_event(event_name):
            raise ValueError(f"{event_name!r} is a reserved event name")
        runtime = self.runtime
        if runtime.recovery is None:
            frames = event_frames(runtime.parser, self.namespace, event_name, args, compress=compress)
        else:  # kept for recovery, as Node does it: a broadcast to the socket's own room
            frames = await recorded_event(runtime, self.namespace, event_name, args, (self.id,), compress=compress)
        if await self.member.deliver(frames, event=event_name, args=args) == SENT:
            self._delivered()

    def _delivered(self) -> None:
        metrics = self.runtime.metrics
        label = metrics.namespace_label(self.namespace)
        metrics.deliveries[label] = metrics.deliveries.get(label, 0) + 1

    async def emit_with_ack(
        self, event_name: str, *args: Any, timeout: float = ACK_TIMEOUT, compress: bool = True
    ) -> list[Any]:
        """Send an event and return the arguments of the client's answer, always as a list.

        One shape whatever the client sends: ``cb("x")`` gives ``["x"]``, ``cb(["a", "b"])``
        gives ``[["a", "b"]]``, ``cb("a", "b")`` gives ``["a", "b"]``, ``cb()`` gives ``[]``.
        Raises ``LimitExceeded`` past MAX_PENDING_ACKS calls still waiting on this socket.
        """
        limit = self.client.limits.max_pending_acks
        if len(self._acks) >= limit:
            raise LimitExceeded(f"{self} has {limit} acknowledgements pending (MAX_PENDING_ACKS)")
        runtime = self.runtime
        label = runtime.metrics.namespace_label(self.namespace)
        if not runtime.tracing.enabled:
            return await self._emit_with_ack(event_name, args, timeout, compress, label)
        attributes = {"realtime.namespace": label, "realtime.socket_id": self.id}
        with runtime.tracing.span(f"realtime emit_with_ack {label}", "client", attributes):
            return await self._emit_with_ack(event_name, args, timeout, compress, label)

    async def _emit_with_ack(
        self, event_name: str, args: tuple[Any, ...], timeout: float, compress: bool, label: str
    ) -> list[Any]:
        ack_id = self._next_ack
        self._next_ack += 1
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        metrics = self.runtime.metrics
        started = time.perf_counter()
        try:
            frames = event_frames(self.runtime.parser, self.namespace, event_name, args, ack_id, compress)
            if await self.member.deliver(frames, event=event_name, args=args) == SENT:
                self._delivered()
            answer = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            metrics.ack_timeouts[label] = metrics.ack_timeouts.get(label, 0) + 1
            raise AckTimeout(f"{self} did not acknowledge {event_name!r} within {timeout} s") from None
        finally:
            self._acks.pop(ack_id, None)
        if metrics.timed:
            metrics.ack_answered(label, time.perf_counter() - started)
        return answer

    async def send_packet(self, packet: socketio.Packet) -> None:
        parts = self.runtime.parser.encode(packet)
        member = self.member
        if len(parts) == 1 and member.held is None and member.connected:
            # an ack or a control packet: one message, no Outgoing to build (Session.send picks the transport)
            member.messages_out += 1
            await self.client.session.send(parts[0])
            return
        await member.deliver(Outgoing.of(parts))

    # -- rooms --------------------------------------------------------------
    async def join(self, *rooms: str | Iterable[str]) -> None:
        """Join rooms; raises ``LimitExceeded`` past MAX_ROOMS_PER_SOCKET (the rooms before it are joined)."""
        member = self.member
        for room in _flatten(rooms):
            if room in member.rooms:
                continue
            if len(member.rooms) >= self.client.limits.max_rooms:
                raise LimitExceeded("too many rooms")
            await self.runtime.join(member, room)
            if member.connected:
                await signals.room_joined.asend(sender=type(self.nsp), socket=self, room=room)
        await self.keep_state()

    async def join_checked(self, *rooms: str | Iterable[str]) -> None:
        """Join rooms a *client* asked for: declared rooms' policies apply (raises ``RoomRefused``).

        ``join`` stays unchecked for server code; a handler that lets
        ``RoomRefused`` propagate answers the client's ack with ``{"error": ...}``.
        """
        names = _flatten(rooms)
        for room in names:
            if room not in self.member.rooms:
                await self.client.policies.check_join(self.namespace, room, self.user)
        await self.join(names)

    async def leave(self, *rooms: str | Iterable[str]) -> None:
        member = self.member
        for room in _flatten(rooms):
            if room not in member.rooms:
                continue
            await self.runtime.leave(member, room)
            if member.connected:
                await signals.room_left.asend(sender=type(self.nsp), socket=self, room=room)
        await self.keep_state()

    # -- broadcasting from this socket (the sender is left out) ---------------
    @property
    def broadcast(self) -> BroadcastOperator:
        return BroadcastOperator(self.namespace, except_ids=(self.id,), runtime=self.runtime)

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        """``socket.volatile.emit(...)``: to this client only, dropped if it cannot take it now."""
        return BroadcastOperator(
            self.namespace, rooms=(self.id,), is_volatile=True, is_local=True, runtime=self.runtime
        )

    def timeout(self, seconds: float) -> TimedEmit:
        """``socket.timeout(s).emit_with_ack(...)``: to this client, answered within ``s`` (as in Node)."""
        return TimedEmit(self, seconds)

    def compress(self, value: bool = True) -> TimedEmit:
        """``socket.compress(False).emit(...)``: that emit's polling answer goes out uncompressed (as in Node)."""
        return TimedEmit(self, ACK_TIMEOUT, compress=value)

    # -- the Engine.IO connection under the socket ------------------------------
    @property
    def conn(self) -> Conn:
        """Node's ``socket.conn``: the Engine.IO connection's id and transport, and ``close()``."""
        return Conn(self.client.session)

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``: the transport carrying this socket now (changes on upgrade)."""
        return self.client.session.transport.value

    # -- listeners ------------------------------------------------------------
    def use(self, middleware: Callable[..., Any]) -> None:
        """Add a packet middleware for this socket: f(socket, event, args)."""
        self.packet_middleware = [*self.packet_middleware, middleware]

    def on_any(self, listener: Callable[..., Any]) -> None:
        """Call ``listener(event, *args)`` for every incoming event."""
        self.any_listeners = [*self.any_listeners, listener]

    def on_any_outgoing(self, listener: Callable[..., Any]) -> None:
        """Call ``listener(event, *args)`` for every event sent to this client (broadcasts too)."""
        self.member.outgoing_listeners = [*self.member.outgoing_listeners, listener]

    # -- ending ---------------------------------------------------------------
    async def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace (the client sees ``io server disconnect``); ``close`` ends the session."""
        if self.member.connected:
            await self.send_packet(socketio.Packet(socketio.PacketType.DISCONNECT, self.namespace))
            await self.client.socket_closed(self, "server namespace disconnect")
        if close:
            for other in list(self.client.sockets.values()):  # as in Node: every namespace, then the session
                await other.disconnect()
            await self.client.session.close("forced close")

    # -- a credential that expires --------------------------------------------
    def arm_expiry(self) -> None:
        """Disconnect when the credential's ``expires`` passes (re-arming replaces the timer)."""
        if self.expiry is not None:
            self.client.session.cancel_later(self.expiry)
            self.expiry = None
        expires = getattr(self.credential, "expires", None)
        if expires is None or not self.member.connected:
            return
        delay = max(0.0, (expires - timezone.now()).total_seconds())
        self.expiry = self.client.session.call_later(delay, lambda: self.client.spawn(self._expire()))

    async def _expire(self) -> None:
        self.expiry = None
        if self.member.connected:
            auth_logger.info("socket %s disconnected: its credential expired", self.id)
            await self.disconnect()

    # -- connection state recovery ---------------------------------------------
    def state(self) -> SocketState:
        """What a reconnecting client would take back: id, rooms (its own aside), data, and who it is."""
        assert self.pid is not None
        rooms = tuple(sorted(self.member.rooms - {self.id}))
        return SocketState(self.pid, self.id, self.namespace, rooms, self.data, user_key(self.user))

    async def keep_state(self, live: bool = True) -> None:
        """Write this socket's state to the recovery store (a connected one: in case its process dies)."""
        recovery = self.runtime.recovery
        if recovery is not None and self.pid is not None and self.member.connected:
            await recovery.save(self.state(), live)
            self.runtime.metrics.recovery_saved += 1

    # -- called by the server -------------------------------------------------
    async def opened(self, restored: SocketState | None = None, offset: str = "") -> None:
        """CONNECT accepted: register, join the own room, then release what on_connect emitted.

        A recovered socket joins its rooms while its deliveries are still held, reads what it
        missed only then (so nothing falls in between), and gets the CONNECT answer, what it
        missed in order, and then what was held, each packet once.
        """
        member = self.member
        missed: list[StoredPacket] = []
        if restored is not None and self.runtime.recovery is not None:
            await self.runtime.add(member)
            for room in (self.id, *restored.rooms):
                if room not in member.rooms:
                    await self.runtime.join(member, room)
            missed = await self.runtime.recovery.missed(restored, offset)
            held = member.release()
        else:
            held = member.release()
            await self.runtime.add(member)
            await self.join(self.id)
        # a Socket.IO v2 client's CONNECT answer carries nothing (its parser refuses a payload)
        answer: dict[str, str] | None = None
        if self.client.protocol == 5:
            answer = {"sid": self.id} if self.pid is None else {"sid": self.id, "pid": self.pid}
        await self.send_packet(socketio.Packet(socketio.PacketType.CONNECT, self.namespace, answer))
        replayed = {packet.offset for packet in missed}
        for packet in missed:
            await member.deliver(Outgoing.of(packet.frames, packet.compress, packet.offset))
        for frames in held:
            if frames.offset is None or frames.offset not in replayed:
                await member.deliver(frames)
        if restored is not None:
            await self.keep_state()

    async def closed(self) -> None:
        """Forget the socket everywhere: rooms, groups, pending acks, its expiry timer."""
        member = self.member
        for room in list(member.rooms) if member.connected else ():
            await signals.room_left.asend(sender=type(self.nsp), socket=self, room=room)
        member.connected = False
        await self.runtime.remove(member)
        if self.expiry is not None:
            self.client.session.cancel_later(self.expiry)
            self.expiry = None
        for future in self._acks.values():
            if not future.done():
                future.set_exception(AckTimeout(f"{self} disconnected before acknowledging"))

    def acked(self, ack_id: int | None, args: list[Any]) -> None:
        future = self._acks.get(ack_id) if ack_id is not None else None
        if future is not None and not future.done():
            future.set_result(args)


class TimedEmit:
    """What ``socket.timeout(seconds)`` and ``socket.compress(value)`` return: flags for the next emit."""

    __slots__ = ("compressed", "seconds", "socket")
    sync_wrapped = True

    def __init__(self, socket: Socket, seconds: float, compress: bool = True) -> None:
        self.socket = socket
        self.seconds = seconds
        self.compressed = compress

    def timeout(self, seconds: float) -> TimedEmit:
        return TimedEmit(self.socket, seconds, self.compressed)

    def compress(self, value: bool = True) -> TimedEmit:
        return TimedEmit(self.socket, self.seconds, value)

    async def emit(self, event_name: str, *args: Any) -> None:
        await self.socket.emit(event_name, *args, compress=self.compressed)

    async def emit_with_ack(self, event_name: str, *args: Any) -> list[Any]:
        return await self.socket.emit_with_ack(event_name, *args, timeout=self.seconds, compress=self.compressed)


class Conn:
    """``socket.conn``: the Engine.IO session one client's sockets share (one per sid)."""

    __slots__ = ("_session",)
    sync_wrapped = True  # a def handler gets its coroutine methods as blocking calls (handlers.py)

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def id(self) -> str:
        """The Engine.IO sid (``socket.io.engine.id`` in the JS client), not ``socket.id``."""
        return self._session.sid

    @property
    def transport(self) -> str:
        return self._session.transport.value

    async def close(self) -> None:
        """Drop the connection without a Socket.IO DISCONNECT: the client reconnects by itself.

        Every socket of the client sees ``on_disconnect`` with ``"forced close"``.
        """
        await self._session.close("forced close")


def _flatten(rooms: Iterable[str | Iterable[str]]) -> list[str]:
    out: list[str] = []
    for room in rooms:
        out.extend([room] if isinstance(room, str) else room)
    return out


def utcnow() -> datetime:
    return datetime.now(UTC)
