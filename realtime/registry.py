"""The live-connection registry: this process's sockets, written to the database for the admin.

The socket path only touches memory: the receivers of ``client_connected``
and ``client_disconnected`` (receivers.py) add and drop an ``Entry``, and two
each Socket counts its messages (two integers). A background task wakes every
``REGISTRY_FLUSH_INTERVAL`` ms, collects what changed on the event loop (new
and gone sockets, rooms, an upgraded transport, activity at 5 s resolution),
and writes it as one transaction of bulk statements in a thread of its own, so
the event loop never waits on the database and Django's shared sync thread
(where sync handlers and views run) is never held by it.

A failed write is not retried piecemeal: the registry logs once, forgets the
batch and resynchronises (deletes its rows, inserts every live socket) at the
next write that succeeds, so a database that is down or slow makes the admin
stale, never the sockets slower.

Each write also refreshes this process's ``ServerProcess.last_seen`` (at half
the heartbeat interval) and deletes the processes not seen for three
heartbeats, with their connections: the rows of a killed process disappear
within the heartbeat window, and a process that finds its own row reaped
(after an outage) recreates it and resynchronises.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone

from .conf import realtime_settings
from .metrics import Metrics
from .models import AccessToken, Connection, Sample, ServerProcess
from .namespaces import Socket
from .protocol.cluster import PeerInfo

logger = logging.getLogger("realtime.registry")

# Last activity is written when it moved by this much: a busy socket is not an UPDATE per message.
ACTIVITY_RESOLUTION = 5.0
# Dashboard samples older than this are deleted.
SAMPLE_RETENTION = timedelta(hours=2)
BATCH = 500
# Longest pause between writes while the database keeps failing, in seconds.
MAX_BACKOFF = 30.0
UPDATE_FIELDS = [f.name for f in Connection._meta.concrete_fields if not f.primary_key]


class Entry:
    """One live local socket and what the database last received about it."""

    __slots__ = (
        "activity",
        "activity_written",
        "rooms",
        "seen_in",
        "socket",
        "submitted",
        "transport",
    )

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.submitted = False
        self.rooms: tuple[str, ...] = ()  # a tuple: 48 bytes where a set copy would cost 216
        self.transport = ""
        self.activity = self.activity_written = time.time()
        self.seen_in = 0

    def absorb(self, now: float) -> None:
        """The socket's last activity: now, if it sent something since the last look."""
        received = self.socket.messages_in
        if received != self.seen_in:
            self.activity = now
            self.seen_in = received

    def current_transport(self) -> str:
        return self.socket.session.transport.value

    def changed(self) -> bool:
        socket = self.socket
        return (
            not self.submitted
            or len(socket.rooms) != len(self.rooms)
            or not socket.rooms.issuperset(self.rooms)
            or (self.transport == "polling" and self.current_transport() != "polling")
            or self.activity - self.activity_written >= ACTIVITY_RESOLUTION
        )

    def row(self, server: str) -> dict[str, Any]:
        """The Connection row as plain values (built on the event loop, written in the thread)."""
        socket, h = self.socket, self.socket.handshake
        self.rooms, self.transport, self.activity_written = tuple(socket.rooms), self.current_transport(), self.activity
        self.submitted = True
        user = socket.user
        authenticated = getattr(user, "is_authenticated", False)
        credential = socket.credential
        return {
            "socket_id": socket.id,
            "sid": socket.session.sid,
            "namespace": socket.namespace,
            "user_id": user.pk if authenticated else None,
            "username": user.get_username() if authenticated else "",
            "token_id": credential.pk if isinstance(credential, AccessToken) else None,
            "transport": self.transport,
            "rooms": sorted(room for room in self.rooms if room != socket.id),
            "address": h.address[:64],
            "user_agent": h.headers.get("user-agent", "")[:300],
            "connected_at": h.time,
            "last_activity": datetime.fromtimestamp(self.activity, UTC),
            "server_id": server,
        }


@dataclass
class Batch:
    """One write: everything the thread needs, as plain values."""

    process: PeerInfo
    now: datetime
    resync: bool
    rows: list[dict[str, Any]]
    deletes: list[str]
    heartbeat: bool
    dead_before: datetime
    tokens_used: list[Any] = field(default_factory=list)
    sample: dict[str, Any] | None = None


class Registry:
    """This process's live sockets on their way to the database (the app config holds the one of a process)."""

    def __init__(self, process: PeerInfo, metrics: Metrics | None = None) -> None:
        self.process = process
        # the runtime's counters (realtime.metrics): the dashboard's samples are differences of the
        # same numbers Prometheus reads, not a second count of their own
        self.metrics = metrics or Metrics()
        self.entries: dict[str, Entry] = {}
        self.removed: set[str] = set()
        self.tokens_used: set[Any] = set()
        self.resync = True
        self.healthy = True
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._last_heartbeat = 0.0
        self._bucket = 0
        self._totals = (0, 0)

    # -- called by the receivers, on the event loop ----------------------------------------
    def connected(self, socket: Socket) -> None:
        entry = Entry(socket)
        self.entries[socket.id] = entry
        if isinstance(socket.credential, AccessToken):
            self.tokens_used.add(socket.credential.pk)
        self._start()

    def disconnected(self, socket: Socket) -> None:
        entry = self.entries.pop(socket.id, None)
        if entry is not None and entry.submitted:
            self.removed.add(socket.id)

    # -- the background writer ---------------------------------------------------------------
    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._executor = self._executor or ThreadPoolExecutor(1, thread_name_prefix="realtime-registry")
            self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        interval = realtime_settings()["REGISTRY_FLUSH_INTERVAL"] / 1000
        while True:
            # after failures, wait longer (up to MAX_BACKOFF): a resync rebuilds every row on the loop
            await asyncio.sleep(min(interval * 2**self.failures, MAX_BACKOFF))
            await self.flush()

    async def flush(self) -> None:
        batch, entries = self._collect()
        try:
            assert self._executor is not None
            found_self = await asyncio.get_running_loop().run_in_executor(self._executor, write, batch)
        except Exception as exc:
            for entry in entries:
                entry.submitted = False
            self.resync = True
            self.failures = min(self.failures + 1, 16)
            if self.healthy:
                self.healthy = False
                logger.warning("registry: database write failed (%s); the admin is stale until it succeeds", exc)
            return
        self.failures = 0
        if not found_self:
            self.resync = True  # our row was reaped meanwhile: write everything again next time
        if not self.healthy:
            self.healthy = True
            logger.warning("registry: database writes succeed again; %d connections resynchronised", len(batch.rows))

    def _collect(self) -> tuple[Batch, list[Entry]]:
        settings = realtime_settings()
        now = time.time()
        heartbeat_interval = settings["HEARTBEAT_INTERVAL"] / 1000
        resync, self.resync = self.resync, False
        for entry in self.entries.values():
            entry.absorb(now)
        if resync:
            entries = list(self.entries.values())
            self.removed.clear()
        else:
            entries = [entry for entry in self.entries.values() if entry.changed()]
        heartbeat = resync or now - self._last_heartbeat >= heartbeat_interval / 2
        if heartbeat:
            self._last_heartbeat = now
        deletes, self.removed = list(self.removed), set()
        tokens_used, self.tokens_used = list(self.tokens_used), set()
        return (
            Batch(
                process=self.process,
                now=datetime.fromtimestamp(now, UTC),
                resync=resync,
                rows=[entry.row(self.process.key) for entry in entries],
                deletes=deletes,
                heartbeat=heartbeat,
                dead_before=datetime.fromtimestamp(now - 3 * heartbeat_interval, UTC),
                tokens_used=tokens_used,
                sample=self._sample(now, settings["METRICS_INTERVAL"] / 1000),
            ),
            entries,
        )

    def _sample(self, now: float, width: float) -> dict[str, Any] | None:
        """Close the dashboard bucket when a new one began; buckets align across processes."""
        bucket = math.floor(now / width)
        if bucket == self._bucket:
            return None
        previous, self._bucket = self._bucket, bucket
        if previous == 0:
            return None  # this process's first bucket: its messages count in the next sample
        totals = self.metrics.messages()
        (last_in, last_out), self._totals = self._totals, totals
        return {
            "server": self.process.key,
            "at": datetime.fromtimestamp(previous * width, UTC),
            "seconds": width,
            "connections": len(self.entries),
            "messages_in": totals[0] - last_in,
            "messages_out": totals[1] - last_out,
        }


def write(batch: Batch) -> bool:
    """Runs in the registry's thread: one transaction. False when this process's row had been reaped."""
    try:
        with transaction.atomic():
            found_self = _heartbeat(batch) if batch.heartbeat else True
            if batch.resync:
                Connection.objects.filter(server_id=batch.process.key).delete()
            for start in range(0, len(batch.rows), BATCH):
                rows = [Connection(**row) for row in batch.rows[start : start + BATCH]]
                Connection.objects.bulk_create(
                    rows, update_conflicts=True, unique_fields=["socket_id"], update_fields=UPDATE_FIELDS
                )
            for start in range(0, len(batch.deletes), BATCH):
                Connection.objects.filter(socket_id__in=batch.deletes[start : start + BATCH]).delete()
            if batch.tokens_used:
                AccessToken.objects.filter(pk__in=batch.tokens_used).update(last_used=batch.now)
            if batch.sample is not None:
                Sample.objects.create(**batch.sample)
                Sample.objects.filter(at__lt=batch.now - SAMPLE_RETENTION).delete()
    except Exception:
        connection.close()  # a broken connection is not reused; the next write opens a new one
        raise
    return found_self


def _heartbeat(batch: Batch) -> bool:
    """Refresh our row (create it when missing) and delete the processes that stopped refreshing theirs."""
    process = batch.process
    found = ServerProcess.objects.filter(key=process.key).update(last_seen=batch.now) == 1
    if not found:
        ServerProcess.objects.create(
            key=process.key,
            ident=process.id,
            host=process.host,
            pid=process.pid,
            started=datetime.fromtimestamp(process.started, UTC),
            last_seen=batch.now,
        )
    if batch.resync:  # a process that reused our pid on this host is gone
        ServerProcess.objects.filter(host=process.host, pid=process.pid).exclude(key=process.key).delete()
    ServerProcess.objects.filter(last_seen__lt=batch.dead_before).exclude(key=process.key).delete()
    return found or batch.resync


def process_registry() -> Registry:
    """This process's registry, which the app config creates in ready()."""
    registry = getattr(apps.get_app_config("realtime"), "registry", None)
    if not isinstance(registry, Registry):
        raise RuntimeError("realtime's registry is not set up: RealtimeConfig.ready() has not run")
    return registry


def live_horizon() -> datetime:
    """Rows of processes not seen since then belong to dead processes (the admin hides them)."""
    return timezone.now() - timedelta(milliseconds=3 * realtime_settings()["HEARTBEAT_INTERVAL"])
