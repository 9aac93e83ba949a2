"""Where connection state recovery keeps sockets and packets: memory, or Redis (realtime.recovery).

The store follows the channel layer: in memory with the in-memory layer (one process), and in
Redis with channels-redis (any process, also after the one that held a socket was killed), found
through the layer's own host: a URL, or the sentinels of a Redis behind Sentinel.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
from collections import deque
from typing import Any

from .conf import RecoverySettings
from .logs import throttled
from .recovery import Recovery, RecoveryStore, SocketState, StoredPacket

logger = logging.getLogger("realtime.recovery")


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
