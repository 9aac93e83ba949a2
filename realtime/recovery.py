"""Connection state recovery: what a socket that lost its transport gets back when it reconnects.

Wire-compatible with Node's socket.io 4.6+ (``connectionStateRecovery``): the CONNECT answer
carries a private id (``pid``); every event sent without an ack and not volatile carries an
offset as its last argument; a client that reconnects sends ``{pid, offset}`` in its CONNECT
auth and, within ``MAX_DISCONNECTION_DURATION``, gets its socket id, rooms and ``socket.data``
back and every packet emitted to it since that offset, before anything new.

Node keeps sessions and packets in the memory of the process that held the socket, and its
Redis adapter cannot recover. Here the store follows the channel layer: in memory with the
in-memory layer (one process), and in Redis with channels-redis, so a client recovers on any
process, and also after the process that held it was killed: a connected socket's state is
written when it connects and when its rooms change, and kept alive while its process lives.
Packets are kept per namespace, bounded in time (the window) and in bytes
(``MAX_BUFFER_BYTES``).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import itertools
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from .conf import RecoverySettings
from .logs import throttled

logger = logging.getLogger("realtime.recovery")

# Node's list: a socket that went away for one of these reasons may come back; never after a
# deliberate disconnect (client namespace disconnect, server namespace disconnect, io client disconnect).
RECOVERABLE_REASONS = frozenset(
    {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }
)


@dataclass(frozen=True, slots=True)
class StoredPacket:
    """One event as it went out (offset included in its frames), and whom it was for."""

    offset: str
    namespace: str
    rooms: tuple[str, ...]
    except_rooms: tuple[str, ...]
    except_ids: tuple[str, ...]
    frames: tuple[str | bytes, ...]
    compress: bool = True

    def reaches(self, socket_id: str, rooms: frozenset[str]) -> bool:
        if socket_id in self.except_ids or not rooms.isdisjoint(self.except_rooms):
            return False
        return not self.rooms or not rooms.isdisjoint(self.rooms)

    @property
    def size(self) -> int:
        return sum(len(f) for f in self.frames) + 64

    def pack(self) -> bytes:
        fields = [self.offset, self.namespace, self.rooms, self.except_rooms, self.except_ids, self.frames]
        return msgpack.packb([*fields, self.compress], use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def unpack(cls, blob: bytes) -> StoredPacket:
        offset, namespace, rooms, except_rooms, except_ids, frames, compress = msgpack.unpackb(blob, raw=False)
        return cls(offset, namespace, tuple(rooms), tuple(except_rooms), tuple(except_ids), tuple(frames), compress)


@dataclass(frozen=True, slots=True)
class SocketState:
    """What a recovered socket gets back."""

    pid: str
    sid: str
    namespace: str
    rooms: tuple[str, ...]
    data: dict[str, Any]
    user: Any  # the user's primary key (None: anonymous): a recovery never changes who the socket is

    def pack(self) -> bytes:
        fields = [self.pid, self.sid, self.namespace, list(self.rooms), self.data, self.user]
        return msgpack.packb(fields, use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def unpack(cls, blob: bytes) -> SocketState:
        pid, sid, namespace, rooms, data, user = msgpack.unpackb(blob, raw=False)
        return cls(pid, sid, namespace, tuple(rooms), data, user)


class RecoveryStore(Protocol):
    """Where sessions and packets are kept (MemoryStore, RedisStore)."""

    settings: RecoverySettings

    async def append(self, packet: StoredPacket) -> None: ...
    async def has_offset(self, namespace: str, offset: str) -> bool: ...
    async def since(self, namespace: str, offset: str) -> list[StoredPacket]: ...
    async def save(self, state: SocketState, live: bool) -> None: ...
    async def load(self, pid: str) -> SocketState | None: ...
    async def drop(self, pid: str) -> None: ...


class Recovery:
    """The runtime's handle on the store: offsets, and the best-effort calls the socket layer makes.

    A store that fails (Redis away) must not fail an emit or a connect: the packet goes out,
    a reconnecting client connects afresh, and one rate-limited line says so. What could not be
    written is kept here, in order and within the store's own bounds (the window, and
    MAX_BUFFER_BYTES), and written once the store answers again: otherwise a client whose last
    offset came before the outage would later recover without the packets sent during it.
    """

    def __init__(self, store: RecoveryStore, key: str) -> None:
        self.store = store
        self.settings = store.settings
        self._prefix = key + secrets.token_hex(2)  # unique across processes and restarts
        self._counter = itertools.count(1)
        self._backlog: deque[tuple[float, StoredPacket]] = deque()
        self._backlog_bytes = 0
        self._unsaved: dict[str, tuple[SocketState, bool]] = {}
        self._retry: asyncio.Task[None] | None = None
        self._draining = asyncio.Lock()  # one writer of the backlog at a time: each packet once, in order

    def new_offset(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"

    @staticmethod
    def new_pid() -> str:
        return secrets.token_urlsafe(16)

    @property
    def backlog(self) -> int:
        """Packets and socket states waiting for the store to answer again."""
        return len(self._backlog) + len(self._unsaved)

    async def record(self, packet: StoredPacket) -> None:
        if not self._backlog:
            try:
                await asyncio.wait_for(self.store.append(packet), WRITE_TIMEOUT)
                return
            except Exception as exc:
                throttled(logger, logging.WARNING, "store append", "recovery store unreachable, packets kept: %r", exc)
        self._backlog.append((time.monotonic(), packet))
        self._backlog_bytes += packet.size
        while self._backlog_bytes > self.settings.max_buffer_bytes:  # the store would trim them too
            self._backlog_bytes -= self._backlog.popleft()[1].size
        self._retry_later()

    async def save(self, state: SocketState, live: bool) -> None:
        if state.pid not in self._unsaved:
            try:
                await asyncio.wait_for(self.store.save(state, live), WRITE_TIMEOUT)
                return
            except Exception as exc:
                throttled(
                    logger,
                    logging.WARNING,
                    "store save",
                    "recovery store unreachable, socket %s kept: %r",
                    state.sid,
                    exc,
                )
        self._unsaved[state.pid] = (state, live)
        self._retry_later()

    async def drop(self, pid: str) -> None:
        self._unsaved.pop(pid, None)
        try:
            await asyncio.wait_for(self.store.drop(pid), WRITE_TIMEOUT)
        except Exception as exc:
            throttled(logger, logging.WARNING, "store drop", "recovery state not dropped: %r", exc)

    def _retry_later(self) -> None:
        if self._retry is None or self._retry.done():
            loop = asyncio.get_running_loop()
            self._retry = loop.create_task(self._write_late(), context=contextvars.Context())

    async def _write_late(self) -> None:
        """Write what the store refused, oldest first, once it answers; then say so once."""
        written = 0
        while self._backlog or self._unsaved:
            await asyncio.sleep(RETRY_INTERVAL)  # the store's cadence of retries, not synchronisation
            try:
                written += await self._drain()
            except Exception as exc:
                logger.debug("recovery store still unreachable: %r", exc)
        logger.warning("recovery store reachable again: %d packets and socket states written late", written)

    async def _drain(self) -> int:
        async with self._draining:
            return await self._drain_locked()

    async def _drain_locked(self) -> int:
        written = 0
        horizon = time.monotonic() - self.settings.max_disconnection
        while self._backlog:
            kept_at, packet = self._backlog[0]
            if kept_at >= horizon:  # older than the window: nobody can recover to it any more
                await asyncio.wait_for(self.store.append(packet), WRITE_TIMEOUT)
                written += 1
            self._backlog.popleft()
            self._backlog_bytes -= packet.size
        for pid, (state, live) in list(self._unsaved.items()):
            await asyncio.wait_for(self.store.save(state, live), WRITE_TIMEOUT)
            if self._unsaved.get(pid) == (state, live):
                del self._unsaved[pid]
            written += 1
        return written

    async def find(self, pid: str, offset: str, namespace: str) -> SocketState | None:
        """The state a reconnecting client may take back, or None (unknown, expired, other namespace, offset gone).

        It stays in the store: the recovered socket writes it again as its own once connected. Taking it
        out here lost it whenever the CONNECT did not complete: a deploy's SIGTERM reached the process
        between the two (measured in tests/e2e/test_hosts.py: the client came back as a new socket).
        """
        try:
            if self._backlog or self._unsaved:
                await self._drain()  # what the client may have seen goes in first, so its offset is found
            state = await asyncio.wait_for(self.store.load(pid), READ_TIMEOUT)
            if state is None or state.namespace != namespace:
                return None
            if not await asyncio.wait_for(self.store.has_offset(namespace, offset), READ_TIMEOUT):
                return None
            return state
        except Exception as exc:
            throttled(logger, logging.WARNING, "store load", "recovery not possible: %r", exc)
            return None

    async def missed(self, state: SocketState, offset: str) -> list[StoredPacket]:
        """What was emitted to the socket after ``offset``, oldest first."""
        try:
            packets = await asyncio.wait_for(self.store.since(state.namespace, offset), READ_TIMEOUT)
        except Exception as exc:
            throttled(logger, logging.WARNING, "store since", "missed packets not read: %r", exc)
            return []
        rooms = frozenset((*state.rooms, state.sid))  # what went to the socket's own id too
        once: dict[str, StoredPacket] = {}  # a late write after a timed-out one may have kept a packet twice
        for p in packets:
            if p.reaches(state.sid, rooms):
                once.setdefault(p.offset, p)
        return list(once.values())


# -- in memory: the in-memory channel layer's one process --------------------------------------


class MemoryStore:
    def __init__(self, settings: RecoverySettings) -> None:
        self.settings = settings
        self.packets: dict[str, deque[tuple[float, StoredPacket]]] = {}
        self.bytes: dict[str, int] = {}
        self.sessions: dict[str, tuple[float, SocketState]] = {}

    async def append(self, packet: StoredPacket) -> None:
        now = time.monotonic()
        queue = self.packets.setdefault(packet.namespace, deque())
        queue.append((now, packet))
        total = self.bytes.get(packet.namespace, 0) + packet.size
        cutoff = now - self.settings.max_disconnection
        while queue and (queue[0][0] < cutoff or total > self.settings.max_buffer_bytes):
            total -= queue.popleft()[1].size
        self.bytes[packet.namespace] = total

    async def has_offset(self, namespace: str, offset: str) -> bool:
        return any(p.offset == offset for _, p in self.packets.get(namespace, ()))

    async def since(self, namespace: str, offset: str) -> list[StoredPacket]:
        packets = [p for _, p in self.packets.get(namespace, ())]
        for index in range(len(packets) - 1, -1, -1):
            if packets[index].offset == offset:
                return packets[index + 1 :]
        return []

    async def save(self, state: SocketState, live: bool) -> None:
        if not live:  # a live socket's state only matters in this process once it is gone
            self.sessions[state.pid] = (time.monotonic() + self.settings.max_disconnection, state)
            self._expire()

    async def load(self, pid: str) -> SocketState | None:
        self._expire()
        entry = self.sessions.get(pid)
        return entry[1] if entry is not None else None

    async def drop(self, pid: str) -> None:
        self.sessions.pop(pid, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for pid in [pid for pid, (until, _) in self.sessions.items() if until < now]:
            del self.sessions[pid]


# -- in Redis: any process, and after the one that held the socket died ---------------------------

# Append one packet to its namespace's stream and trim the stream by age (the window, by the
# Redis clock) and by bytes (a counter beside the stream); both keys expire a window after the
# last append. KEYS: stream, byte counter. ARGV: offset, packed packet, size, byte limit, window ms.
_APPEND = """
local stream, counter = KEYS[1], KEYS[2]
local limit, window = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('XADD', stream, '*', 'o', ARGV[1], 'p', ARGV[2], 's', ARGV[3])
local total = redis.call('INCRBY', counter, ARGV[3])
local clock = redis.call('TIME')
local cutoff = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) - window
local function drop(entries)
  for _, entry in ipairs(entries) do
    local fields, size = entry[2], 0
    for i = 1, #fields, 2 do if fields[i] == 's' then size = tonumber(fields[i + 1]) end end
    redis.call('XDEL', stream, entry[1])
    total = redis.call('DECRBY', counter, size)
  end
end
drop(redis.call('XRANGE', stream, '-', tostring(cutoff), 'COUNT', 1000))
while total > limit do
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 16)
  if #first == 0 then redis.call('SET', counter, 0) break end
  drop(first)
end
redis.call('PEXPIRE', stream, window)
redis.call('PEXPIRE', counter, window)
return total
"""

# How many stream entries one XREVRANGE reads while looking for a client's offset.
SCAN_BATCH = 200
# How often what the store refused is tried again, in seconds.
RETRY_INTERVAL = 0.5
# Longest waits for one store call: a Redis that is cut off (no refusal, packets lost) would
# otherwise hold an emit, a join or a CONNECT until TCP gives up, minutes later. Past a write's,
# the packet or state waits in the backlog and is written late (a write that timed out yet landed
# is then kept twice: the replay keeps each offset once), so it is short: an emit waits at most
# that long, once per outage. Past a read's, a reconnecting client connects afresh, so it is longer.
WRITE_TIMEOUT = 0.5
READ_TIMEOUT = 2.0


def _namespace_key(namespace: str) -> str:
    return hashlib.sha256(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class RedisStore:
    """Sessions as keys with a TTL, packets as one stream per namespace.

    A connected socket's state is saved with a TTL of the window and refreshed every quarter
    window while its process lives (``live``); once it has gone for a recoverable reason it is
    saved once more and left to expire. So after ``kill -9`` its state outlives the process by
    at most a window and a quarter.
    """

    PREFIX = "realtime:csr:"

    def __init__(self, settings: RecoverySettings, client: Any) -> None:
        self.settings = settings
        self.client = client  # redis.asyncio: one Redis, or the primary behind Sentinel
        self.window_ms = int(settings.max_disconnection * 1000)
        self.live: set[str] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._append = self.client.register_script(_APPEND)

    def _stream(self, namespace: str) -> str:
        return f"{self.PREFIX}packets:{_namespace_key(namespace)}"

    def _session(self, pid: str) -> str:
        return f"{self.PREFIX}session:{pid}"

    async def append(self, packet: StoredPacket) -> None:
        stream = self._stream(packet.namespace)
        args: list[bytes | str | int] = [
            packet.offset,
            packet.pack(),
            packet.size,
            self.settings.max_buffer_bytes,
            self.window_ms,
        ]
        await self._append(keys=[stream, stream + ":bytes"], args=args)

    async def has_offset(self, namespace: str, offset: str) -> bool:
        return await self._find(namespace, offset) is not None

    async def since(self, namespace: str, offset: str) -> list[StoredPacket]:
        newer = await self._find(namespace, offset)
        return [StoredPacket.unpack(fields[b"p"]) for fields in reversed(newer or [])]

    async def _find(self, namespace: str, offset: str) -> list[dict[bytes, bytes]] | None:
        """Newest first until ``offset``: the entries after it (newest first); None when it is not there."""
        stream, wanted = self._stream(namespace), offset.encode()
        newer: list[dict[bytes, bytes]] = []
        end = "+"
        while True:
            batch: Any = await self.client.xrevrange(stream, max=end, min="-", count=SCAN_BATCH)
            for _, fields in batch:
                if fields.get(b"o") == wanted:
                    return newer
                newer.append(fields)
            if len(batch) < SCAN_BATCH:
                return None
            end = "(" + batch[-1][0].decode()

    async def save(self, state: SocketState, live: bool) -> None:
        await self.client.set(self._session(state.pid), state.pack(), px=self.window_ms)
        if live:
            self.live.add(state.pid)
            if self._refresher is None:
                self._refresher = asyncio.get_running_loop().create_task(self._refresh(), context=contextvars.Context())
        else:
            self.live.discard(state.pid)

    async def load(self, pid: str) -> SocketState | None:
        blob = await self.client.get(self._session(pid))
        return SocketState.unpack(blob) if isinstance(blob, bytes) else None

    async def drop(self, pid: str) -> None:
        self.live.discard(pid)
        await self.client.delete(self._session(pid))

    async def _refresh(self) -> None:
        """Keep the live sockets' states from expiring while this process holds them."""
        while True:
            await asyncio.sleep(self.settings.max_disconnection / 4)
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for pid in list(self.live):
                        pipe.pexpire(self._session(pid), self.window_ms)
                    await pipe.execute()
            except Exception as exc:
                throttled(logger, logging.WARNING, "store refresh", "recovery states not refreshed: %r", exc)


def redis_url_of_layer(layers: dict[str, Any]) -> str | None:
    """The Redis the default channel layer uses (channels-redis), as a URL; None for any other layer.

    None too behind Sentinel, which has no URL: ``redis_of_layer`` gives the client for both.
    """
    host = _redis_host_of_layer(layers)
    if host is None:
        return None
    if isinstance(host, dict):
        return str(host["address"]) if "address" in host else None
    if isinstance(host, (tuple, list)):
        return f"redis://{host[0]}:{host[1]}"
    return str(host)


def _redis_host_of_layer(layers: dict[str, Any]) -> Any:
    layer = layers.get("default", {})
    if "channels_redis" not in str(layer.get("BACKEND", "")):
        return None
    hosts = layer.get("CONFIG", {}).get("hosts") or ["redis://localhost:6379"]
    return hosts[0]


def redis_of_layer(layers: dict[str, Any]) -> Any:
    """A redis.asyncio client for the Redis the default layer uses; None for any other layer.

    Behind Sentinel (a host ``{"sentinels": [...], "master_name": ...}``, as channels-redis
    takes it) the client asks the sentinels for the primary and follows a failover.
    """
    host = _redis_host_of_layer(layers)
    if host is None:
        return None
    import redis.asyncio as redis  # channels-redis's own dependency
    from redis.asyncio.sentinel import Sentinel

    if isinstance(host, dict) and "sentinels" in host:
        options = {k: v for k, v in host.items() if k not in ("sentinels", "master_name", "sentinel_kwargs")}
        sentinel = Sentinel(host["sentinels"], sentinel_kwargs=host.get("sentinel_kwargs"))
        return sentinel.master_for(host["master_name"], **options)
    if isinstance(host, dict):
        options = {k: v for k, v in host.items() if k != "address"}
        if "address" in host:
            return redis.Redis.from_url(host["address"], **options)
        return redis.Redis(**options)
    if isinstance(host, (tuple, list)):
        return redis.Redis(host=host[0], port=host[1])
    return redis.Redis.from_url(str(host))


def recovery_from_settings(value: object, layers: dict[str, Any], key: str) -> Recovery | None:
    """The process's Recovery for ``REALTIME["CONNECTION_STATE_RECOVERY"]``, or None when it is off."""
    settings = RecoverySettings.parse(value)
    if settings is None:
        return None
    client = redis_of_layer(layers)
    store: RecoveryStore = RedisStore(settings, client) if client is not None else MemoryStore(settings)
    return Recovery(store, key)
