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


# How often what the store refused is tried again, in seconds.
RETRY_INTERVAL = 0.5
# Longest waits for one store call: a Redis that is cut off (no refusal, packets lost) would
# otherwise hold an emit, a join or a CONNECT until TCP gives up, minutes later. Past a write's,
# the packet or state waits in the backlog and is written late (a write that timed out yet landed
# is then kept twice: the replay keeps each offset once), so it is short: an emit waits at most
# that long, once per outage. Past a read's, a reconnecting client connects afresh, so it is longer.
WRITE_TIMEOUT = 0.5
READ_TIMEOUT = 2.0
