"""The one task that empties this process's outbox onto the channel layer, in order, through outages.

The cluster member (member.py) decides when the layer is healthy and when the peers listen
again; this class holds what waits (realtime.outbox.Outbox) and publishes it when the member
opens the way. The callers (a handler, a broadcast) never wait on Redis: ``put`` queues or
refuses at once, and one task sends the head, retries a durable head after an outage, and
gives up what is past the bounds, counting everything it gives up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .metrics import Metrics
from .outbox import MESSAGE_OVERHEAD, Entry, Outbox, size_of

# What the outbox holds: the layer's method (send or group_send), its target, the wire dict.
Send = tuple[Callable[..., Awaitable[None]], str, dict[str, Any]]
Lost = Callable[[str, int], None]
Failed = Callable[[BaseException], None]
Warn = Callable[..., None]

# Longest wait for one channel-layer call (publish, subscribe). A Redis that accepts the
# connection and never answers (stopped, blackholed) would otherwise block the sender
# task, and every socket.join() behind it, forever; past this it counts as an outage. Not shorter:
# a process busy with a connect storm can leave a healthy Redis's answer unread for seconds, and
# taking that for an outage refuses every forwarded request (measured in the soak: 2 s was too short).
LAYER_TIMEOUT = 10.0
# A durable message the layer refused this many times in a row while heartbeats got through is
# the message's fault, not the layer's: it is given up rather than block the outbox behind it.
MAX_ATTEMPTS = 5


def short_type(message: dict[str, Any]) -> str:
    """A wire message's type without the ``realtime.`` prefix: the metrics' label."""
    kind = message.get("type")
    return kind.removeprefix("realtime.") if isinstance(kind, str) else "?"


class Publisher:
    """The outbox and its sender task; ``failed`` tells the member the layer refused a call."""

    def __init__(self, outbox: Outbox[Send], metrics: Metrics, lost: Lost, failed: Failed, warn: Warn) -> None:
        self.outbox = outbox
        self.metrics = metrics
        self._lost = lost
        self._failed = failed
        self._warn = warn
        self._wake = asyncio.Event()  # something was queued
        self._open = asyncio.Event()  # the layer answers and the peers listen: the outbox may flow
        self._open.set()
        self._idle = asyncio.Event()  # nothing queued, nothing being sent
        self._idle.set()

    # -- the member's side ------------------------------------------------------------------
    def hold(self) -> None:
        """The layer is away: nothing leaves, and what only makes sense now is given up."""
        self._open.clear()
        ephemeral = self.outbox.drop_ephemeral()
        if ephemeral:
            self._lost("outage", len(ephemeral))

    def release(self) -> None:
        """The layer is back and the peers listen: publish what waited, in order."""
        self._open.set()

    @property
    def held(self) -> bool:
        return not self._open.is_set()

    # -- the callers' side --------------------------------------------------------------------
    def put(self, send: Send, durable: bool, healthy: bool) -> bool:
        """Queue ``send``; False (counted, nothing queued) when it is not durable and the layer is away,
        or when it does not fit the outbox's bounds."""
        if not healthy and not durable:
            self._lost("outage", 1)
            return False
        now = time.monotonic()
        self.expire(now)
        message = send[2]
        size = size_of(message) + MESSAGE_OVERHEAD
        outbox = self.outbox
        if not outbox.put(send, size, durable, now):
            self._warn(
                "queue-full",
                "cross-process queue full (%d messages, %d bytes queued; CLUSTER_QUEUE_BYTES=%d): a %d-byte %s dropped",
                len(outbox),
                outbox.bytes,
                outbox.max_bytes,
                size,
                message.get("type"),
            )
            self._lost("queue_full", 1)
            return False
        self._idle.clear()
        self._wake.set()
        return True

    def expire(self, now: float) -> None:
        expired = self.outbox.expire(now)
        if expired:
            self._lost("expired", len(expired))
            self._warn(
                "expired",
                "%d cross-process messages older than CLUSTER_QUEUE_AGE (%.0f s) dropped unsent",
                len(expired),
                self.outbox.max_age,
            )

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for queued messages to leave; True if they all did."""
        if not self.outbox and self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- the task -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Publish the outbox's head, in order; through an outage a durable head waits to be retried."""
        outbox = self.outbox
        while True:
            entry = outbox.head()
            if entry is None:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._open.is_set():
                await self._open.wait()
                continue
            self.expire(time.monotonic())
            if outbox.head() is entry:
                await self._send_head(entry)

    async def _send_head(self, entry: Entry[Send]) -> None:
        method, target, message = entry.item
        entry.attempts += 1
        try:
            await asyncio.wait_for(method(target, message), LAYER_TIMEOUT)
        except (TypeError, ValueError) as exc:  # the layer cannot serialise it: no retry would help
            self.outbox.pop()
            self._lost("send_failed", 1)
            self._warn("unsendable", "a %s could not be published (%r); dropped", message.get("type"), exc)
        except Exception as exc:
            if not entry.durable or entry.attempts >= MAX_ATTEMPTS:
                self.outbox.pop()
                self._lost("send_failed", 1)
            self._failed(exc)  # a durable head stays: published again once the layer is back
        else:
            self.outbox.pop()
            published = self.metrics.published
            kind = short_type(message)
            published[kind] = published.get(kind, 0) + 1
            if entry.attempts > 1:
                self.metrics.retried += 1
