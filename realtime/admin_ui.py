"""The official Socket.IO admin UI (``@socket.io/admin-ui``) on this server, for Django staff users.

The UI is a static single-page app (served by admin.socket.io, or from the npm
package's ``ui/dist``) that connects to the ``/admin`` namespace and speaks a
small event protocol: the server sends ``config``, ``server_stats`` (every two
seconds, one per process), ``all_sockets`` and the live updates
``socket_connected``, ``socket_updated``, ``socket_disconnected``,
``room_joined``, ``room_left``, ``event_received`` and ``event_sent``; the UI
sends the commands ``emit``, ``join``, ``leave`` and ``_disconnect``. This
module implements that protocol on realtime's own pieces:

* **Who may look.** The UI's ``auth: {username, password}`` is checked with
  ``django.contrib.auth.authenticate`` and the user must be active staff: no
  shared password in the settings. A successful login is answered with a
  ``session`` id (signed, tied to the user's password hash, valid
  ``SESSION_TTL``), which the UI stores and presents after a page reload; a
  browser already logged in to this site's Django admin is let in by its
  session cookie. Refusals are ``invalid credentials``, the message the UI shows.
* **Cluster-wide, pulled only while someone looks.** The process that holds
  an admin socket asks every process for its stats every two seconds
  (``server_side_emit``), which also tells each of them that a UI is
  watching, for three intervals. Only while watched does a process turn its
  socket lifecycle (the ``client_connected``/``client_disconnected``/
  ``room_joined``/``room_left`` signals and each socket's any-listeners)
  into broadcasts on the admin namespace: with no UI open the cost is a
  clock comparison per event. ``all_sockets`` is one ``server_side_emit``
  answered by every process; the commands go through ``BroadcastOperator``
  and ``realtime.cluster`` (``sockets_join``, ``sockets_leave``,
  ``disconnect_sockets``), so they reach sockets on any process.

Enabled by ``REALTIME["ADMIN_UI"]`` (``RealtimeConfig.ready`` calls ``install``
once per process); see README, "The official admin UI".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from django.contrib.auth import authenticate, get_user_model
from django.core import signing
from django.core.exceptions import ValidationError

from . import cluster, signals
from .broadcast import BroadcastOperator
from .conf import AdminUISettings
from .exceptions import ClusterUnavailable, ConnectionRefused
from .logs import RateLimitedLogger
from .namespaces import Namespace, Socket, event
from .protocol import socketio
from .protocol.engine import Transport
from .runtime import current
from .server import io

logger = logging.getLogger("realtime.admin_ui")
limited = RateLimitedLogger(logger)

INVALID_CREDENTIALS = "invalid credentials"  # the UI shows its own translation of exactly this message
STATS_INTERVAL = 2.0  # seconds between server_stats, as the Node server sends them
LEASE = 3 * STATS_INTERVAL  # a process relays its sockets' lifecycle this long after the last stats request
STATS_EVENT = "realtime.admin_ui.stats"
SOCKETS_EVENT = "realtime.admin_ui.sockets"
# Failed logins per client address: past this many in FAILURE_WINDOW seconds, passwords are not even checked.
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0
SALT = "realtime.admin_ui.session"
WRITE_FEATURES = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
# Handshake headers that would let a staff member act as the client: never shown.
SECRET_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})


def utc_iso() -> str:
    """A timestamp as the UI expects one (JSON of a JS Date)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """``value`` with only JSON types (and bytes, sent as binary): socket.data may hold anything."""
    if isinstance(value, (str, int, float, bool, bytes)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return str(value)


def client_id(socket: Socket) -> str:
    """The UI groups sockets by client; a digest of the sid, because the sid itself opens the session."""
    return hashlib.sha256(socket.session.sid.encode()).hexdigest()[:12]


def transport_of(socket: Socket) -> str:
    return str(socket.session.transport.value)


def serialize(socket: Socket) -> dict[str, Any]:
    """A socket as the UI's ``SerializedSocket``: id, clientId, transport, nsp, data, handshake, rooms."""
    h = socket.handshake
    headers = {name: value for name, value in h.headers.items() if name not in SECRET_HEADERS}
    return {
        "id": socket.id,
        "clientId": client_id(socket),
        "transport": transport_of(socket),
        "nsp": socket.namespace,
        "data": plain(socket.data),
        "handshake": {
            "address": h.address,
            "headers": headers,
            "query": dict(h.query),
            "issued": h.issued,
            "secure": h.secure,
            "time": h.time.isoformat(),
            "url": h.url,
            "xdomain": "origin" in h.headers,
        },
        "rooms": sorted(socket.rooms),
    }


class Monitor:
    """This process's part: the watch lease, the relays of its sockets' lifecycle, its stats and sockets.

    One per process, made by ``install`` at start-up; it owns the admin UI's
    mutable state (the lease, the sockets still on polling, failed logins).
    """

    def __init__(self, config: AdminUISettings) -> None:
        self.config = config
        self.watched_until = 0.0
        self.polling: weakref.WeakSet[Socket] = weakref.WeakSet()  # may still upgrade: socket_updated
        self.failures: dict[str, tuple[float, int]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def watched(self) -> bool:
        return time.monotonic() < self.watched_until

    @property
    def features(self) -> list[str]:
        # ALL_EVENTS puts the UI in its "development" mode: socket, room, client and event pages
        return [*([] if self.config.readonly else WRITE_FEATURES), "ALL_EVENTS"]

    def connect_signals(self) -> None:
        for signal, receiver in (
            (signals.client_connected, self.socket_connected),
            (signals.client_disconnected, self.socket_disconnected),
            (signals.room_joined, self.room_joined),
            (signals.room_left, self.room_left),
        ):
            signal.connect(receiver, weak=False, dispatch_uid=f"realtime.admin_ui.{receiver.__name__}")

    # -- the lifecycle of every socket, relayed while a UI watches --------------------
    async def socket_connected(self, sender: Any, socket: Socket, **kwargs: Any) -> None:
        if socket.session.transport is Transport.POLLING:
            self.polling.add(socket)
        if self.config.events and socket.namespace != self.config.namespace:
            socket.on_any(lambda *args: self._event("event_received", socket, args))
            socket.on_any_outgoing(lambda *args: self._event("event_sent", socket, args))
        if self.watched:
            await self.tell("socket_connected", serialize(socket), utc_iso())

    async def socket_disconnected(self, sender: Any, socket: Socket, reason: str, **kwargs: Any) -> None:
        self.polling.discard(socket)
        if self.watched:
            await self.tell("socket_disconnected", socket.namespace, socket.id, reason, utc_iso())

    async def room_joined(self, sender: Any, socket: Socket, room: str, **kwargs: Any) -> None:
        if self.watched and room != socket.id:  # its own room comes with socket_connected
            await self.tell("room_joined", socket.namespace, room, socket.id, utc_iso())

    async def room_left(self, sender: Any, socket: Socket, room: str, **kwargs: Any) -> None:
        if self.watched:
            await self.tell("room_left", socket.namespace, room, socket.id, utc_iso())

    def _event(self, kind: str, socket: Socket, args: tuple[Any, ...]) -> None:
        """An any-listener: called for every event in and out, so it only compares a clock when unwatched."""
        if self.watched:
            self.spawn(self.tell(kind, socket.namespace, socket.id, plain(list(args)), utc_iso()))

    async def tell(self, kind: str, *args: Any) -> None:
        """Send to every admin socket of the cluster; a Redis outage costs the UI an update, nothing more."""
        try:
            await BroadcastOperator(self.config.namespace).emit(kind, *args)
        except ClusterUnavailable:
            logger.debug("admin UI: %s not published to other processes (channel layer unavailable)", kind)

    # -- what this process answers to server_side_emit ---------------------------------
    async def stats(self) -> dict[str, Any]:
        """This process's ``server_stats``; being asked means a UI watches (the lease is renewed)."""
        self.watched_until = time.monotonic() + LEASE
        await self._report_upgrades()
        runtime = current()
        member = runtime.member
        sockets = [m.handle for m in runtime.rooms.members()]
        sessions = {s.session for s in sockets}
        return {
            "serverId": self.config.server_id or member.id,
            "hostname": member.host,
            "pid": member.pid,
            "uptime": round(time.time() - member.started, 1),
            "clientsCount": len(sessions),
            "pollingClientsCount": sum(1 for s in sessions if s.transport is Transport.POLLING),
            "namespaces": [{"name": name, "socketsCount": count} for name, count in runtime.rooms.namespaces().items()],
        }

    async def sockets(self) -> list[dict[str, Any]]:
        """Every local socket of every namespace, for ``all_sockets``."""
        self.watched_until = time.monotonic() + LEASE
        return [serialize(m.handle) for m in current().rooms.members() if m.connected]

    async def _report_upgrades(self) -> None:
        for socket in list(self.polling):
            if not socket.connected:
                self.polling.discard(socket)
            elif socket.session.transport is not Transport.POLLING:
                self.polling.discard(socket)
                await self.tell("socket_updated", {"id": socket.id, "nsp": socket.namespace, "transport": "websocket"})

    # -- logging in ------------------------------------------------------------------------
    async def login(self, socket: Socket, auth: dict[str, Any]) -> tuple[Any, str | None]:
        """The staff user the CONNECT's auth (or the browser's Django session) names, and a new session id.

        Raises ConnectionRefused("invalid credentials") for anything else,
        without saying which part was wrong.
        """
        address = socket.handshake.address
        session_id, username, password = auth.get("sessionId"), auth.get("username"), auth.get("password")
        if isinstance(session_id, str) and session_id:
            user = await database_sync_to_async(_user_of_session)(session_id, self.config.session_ttl / 1000)
            if user is not None:
                return user, None
        if isinstance(username, str) and username and isinstance(password, str):
            if self._throttled(address):
                limited.warning("throttled", "admin UI: login from %s refused: too many failures", address)
                raise ConnectionRefused(INVALID_CREDENTIALS)
            user = await database_sync_to_async(_staff_by_password)(username, password)
            if user is not None:
                self.failures.pop(address, None)
                logger.info("admin UI: %s logged in from %s", user.get_username(), address)
                return user, await database_sync_to_async(_new_session)(user)
            self._failed(address)
            limited.warning("refused", "admin UI: login from %s refused: invalid credentials", address)
            raise ConnectionRefused(INVALID_CREDENTIALS)
        user = socket.user  # SessionAuthentication: this site's Django admin, same site or a listed origin
        if getattr(user, "is_authenticated", False) and user.is_active and user.is_staff:
            return user, None
        raise ConnectionRefused(INVALID_CREDENTIALS)

    def _throttled(self, address: str) -> bool:
        since, count = self.failures.get(address, (0.0, 0))
        return count >= MAX_FAILURES and time.monotonic() - since < FAILURE_WINDOW

    def _failed(self, address: str) -> None:
        now = time.monotonic()
        since, count = self.failures.get(address, (now, 0))
        if now - since >= FAILURE_WINDOW:
            since, count = now, 0
        self.failures[address] = (since, count + 1)
        if len(self.failures) > 10_000:  # many addresses: keep only those still inside their window
            self.failures = {a: f for a, f in self.failures.items() if now - f[0] < FAILURE_WINDOW}

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            limited.error("task", "admin UI: background task failed", exc_info=task.exception())


# -- ORM, in a thread (database_sync_to_async) -------------------------------------------------


def _staff_by_password(username: str, password: str) -> Any:
    user = authenticate(None, username=username, password=password)
    return user if user is not None and user.is_active and user.is_staff else None


def _signer(user: Any) -> signing.TimestampSigner:
    # the password hash is part of the key: changing the password ends every admin UI session
    return signing.TimestampSigner(salt=f"{SALT}:{user.get_session_auth_hash()}")


def _new_session(user: Any) -> str:
    return _signer(user).sign(str(user.pk))


def _user_of_session(session_id: str, max_age: float) -> Any:
    pk = session_id.split(":", 1)[0]
    try:
        user = get_user_model()._default_manager.filter(pk=pk).first()
    except (ValueError, TypeError, ValidationError):  # not a primary key of this user model
        return None
    if user is None or not user.is_active or not user.is_staff:
        return None
    try:
        _signer(user).unsign(session_id, max_age=timedelta(seconds=max_age))
    except signing.BadSignature:  # SignatureExpired included
        return None
    return user


# -- the namespace -----------------------------------------------------------------------------------


class AdminNamespace(Namespace):
    """``/admin`` (or ``REALTIME["ADMIN_UI"]["NAMESPACE"]``): the UI's connection and its commands.

    ``install`` registers a subclass carrying the configured name and the
    process's Monitor; nothing here is meant to be listed in NAMESPACES.
    """

    monitor: ClassVar[Monitor]

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._ticker: asyncio.Task[None] | None = None

    async def on_connect(self, socket: Socket, auth: dict[str, Any]) -> None:
        user, session_id = await self.monitor.login(socket, auth)
        socket.user = user
        if session_id is not None:
            await socket.emit("session", session_id)  # held until CONNECT is sent, as emits in on_connect are
        await socket.emit("config", {"supportedFeatures": self.monitor.features})
        self.monitor.spawn(self._welcome(socket))
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick_while_watched())

    async def _welcome(self, socket: Socket) -> None:
        """Stats first (every process starts relaying), then the sockets: nothing falls in between."""
        for stats in await self._stats():
            await socket.emit("server_stats", stats)
        answers = await cluster.aserver_side_emit(SOCKETS_EVENT)
        await socket.emit("all_sockets", [info for answer in answers if answer for info in answer])

    async def _stats(self) -> list[dict[str, Any]]:
        return [answer for answer in await cluster.aserver_side_emit(STATS_EVENT) if answer]

    async def _tick_while_watched(self) -> None:
        """Every STATS_INTERVAL, each process's stats to this process's admin sockets, until none is left."""
        while True:
            await asyncio.sleep(STATS_INTERVAL)  # a period, not a synchronisation
            if not self.sockets:
                return
            try:
                for stats in await self._stats():
                    await self.broadcast.local.emit("server_stats", stats)
            except Exception:
                limited.error("stats", "admin UI: collecting server stats failed", exc_info=True)

    # -- the UI's commands (none when READONLY) ----------------------------------------------
    def _allowed(self, socket: Socket, command: str, nsp: Any, *names: Any) -> bool:
        if self.monitor.config.readonly:
            limited.warning("readonly", "admin UI: %s refused: READONLY", command)
            return False
        if not isinstance(nsp, str) or not all(isinstance(n, str) for n in names):
            limited.warning("arguments", "admin UI: %s with malformed arguments ignored", command)
            return False
        return True

    async def on_emit(self, socket: Socket, nsp: Any, room: Any, event_name: Any, *args: Any) -> None:
        """``emit(nsp, filter, event, ...args)``: to the namespace, or to the sockets in room ``filter``."""
        if not self._allowed(socket, "emit", nsp, event_name) or socketio.is_reserved_event(event_name):
            return
        operator = BroadcastOperator(nsp)
        if isinstance(room, str) and room:
            operator = operator.to(room)
        logger.info("admin UI: %s emits %s to %s %s", socket.user.get_username(), json.dumps(event_name), nsp, room)
        await operator.emit(event_name, *args)

    async def on_join(self, socket: Socket, nsp: Any, room: Any, target: Any = None) -> None:
        """``join(nsp, room, filter)``: the sockets in room ``filter`` (a socket id, say; all when absent) join."""
        if self._allowed(socket, "join", nsp, room):
            logger.info("admin UI: %s makes %s %s join %s", socket.user.get_username(), nsp, target, json.dumps(room))
            await cluster.asockets_join(room, room=_room(target), namespace=nsp)

    async def on_leave(self, socket: Socket, nsp: Any, room: Any, target: Any = None) -> None:
        if self._allowed(socket, "leave", nsp, room):
            logger.info("admin UI: %s makes %s %s leave %s", socket.user.get_username(), nsp, target, json.dumps(room))
            await cluster.asockets_leave(room, room=_room(target), namespace=nsp)

    @event("_disconnect")
    async def disconnect_command(self, socket: Socket, nsp: Any, close: Any = False, target: Any = None) -> None:
        """``_disconnect(nsp, close, filter)``: the client sees ``io server disconnect``; ``close`` ends its session."""
        if self._allowed(socket, "_disconnect", nsp):
            logger.info("admin UI: %s disconnects %s %s", socket.user.get_username(), nsp, target)
            await cluster.adisconnect_sockets(room=_room(target), namespace=nsp, close=bool(close))


def _room(target: Any) -> str | None:
    return target if isinstance(target, str) and target else None


def install(value: Any) -> type[AdminNamespace]:
    """Serve the admin UI in this process (once, from ``RealtimeConfig.ready``): its namespace, its relays."""
    config = AdminUISettings.parse(value)
    monitor = Monitor(config)
    monitor.connect_signals()
    cluster.on_server_event(STATS_EVENT)(monitor.stats)
    cluster.on_server_event(SOCKETS_EVENT)(monitor.sockets)
    cls = type("AdminUI", (AdminNamespace,), {"namespace": config.namespace, "monitor": monitor})
    io.register(cls)
    return cls
