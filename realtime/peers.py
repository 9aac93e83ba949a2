"""The other serving processes as this one knows them: who is alive, and who must be heard again.

Each peer heartbeats every interval; one silent for three is dead. Just after this process
begins to listen (start-up, the end of an outage) a key it has not heard yet may still name a
live peer, for STARTUP_WINDOW intervals. After an outage, the peers that were alive before it
must say they receive again (an answer to our hello, or a hello of their own) before what this
process kept for them is published: Redis pub/sub keeps nothing for a subscriber that is not back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .protocol.cluster import PeerInfo

logger = logging.getLogger("realtime.node")

# After we begin to listen (start-up, end of an outage), an unknown sid key may still name a
# peer we have not heard yet, for this many heartbeat intervals; after that it names nobody.
STARTUP_WINDOW = 1.5
# After an outage the outbox waits for the peers that were alive before it to listen again, for
# three heartbeat intervals at most and never longer than this many seconds (one died meanwhile).
GATE_LIMIT = 5.0
KEY_LENGTH = 6


class Peers:
    """The peer table (key -> what its heartbeat said, and when), and the outage's roll call."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.table: dict[str, dict[str, Any]] = {}
        self.interval = 5.0  # the heartbeat interval, in seconds
        self.listening_since: float | None = None
        self._events: dict[str, asyncio.Event] = {}
        self._before_outage: set[str] = set()  # live when the outage began
        self._awaiting: set[str] = set()  # of those, the ones not heard again yet
        self._deadline = 0.0

    # -- liveness --------------------------------------------------------------------------
    def live(self) -> dict[str, dict[str, Any]]:
        horizon = time.monotonic() - 3 * self.interval
        return {key: info for key, info in self.table.items() if info["seen"] >= horizon}

    def is_live(self, key: str) -> bool:
        info = self.table.get(key)
        return info is not None and info["seen"] >= time.monotonic() - 3 * self.interval

    def listening(self) -> float:
        """We (again) receive from now on: the start-up window opens."""
        now = self.listening_since = time.monotonic()
        return now

    async def await_live(self, key: str) -> bool:
        """Whether ``key`` names a live peer; just after start-up (or an outage), wait for it to say so.

        Every live peer heartbeats within one interval, and answers our hello at
        once, so a key still unknown one and a half intervals after we began to
        listen names no live process. Inside that window a request for an
        unknown key waits for that key's heartbeat, at most until the window ends.
        """
        if self.is_live(key):
            return True
        since = self.listening_since
        if since is None or len(key) != KEY_LENGTH or key.strip("0123456789abcdef"):
            return False
        remaining = since + STARTUP_WINDOW * self.interval - time.monotonic()
        if remaining <= 0:
            return False
        event = self._events.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except TimeoutError:
            return False
        return self.is_live(key)

    def saw(self, peer: PeerInfo) -> None:
        key = peer.key
        if key == self.key:
            return
        info = {"id": peer.id, "key": key, "host": peer.host, "pid": peer.pid, "started": peer.started}
        if key not in self.table:
            logger.info("peer %s joined", info["id"])
        self.table[key] = {**info, "seen": time.monotonic()}
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def left(self, key: str) -> None:
        """A peer said goodbye (shutting down)."""
        self._awaiting.discard(key)
        self._before_outage.discard(key)
        info = self.table.pop(key, None)
        if info is not None:
            logger.info("peer %s left the cluster (shutting down)", info["id"])

    def forget_dead(self) -> list[str]:
        """The keys of the peers silent for three heartbeats, now forgotten."""
        live = self.live()
        dead = [key for key in self.table if key not in live]
        for key in dead:
            logger.warning("peer %s silent for 3 heartbeats: considered dead", self.table.pop(key)["id"])
        since = self.listening_since
        if since is not None and time.monotonic() > since + STARTUP_WINDOW * self.interval:
            self._events.clear()  # the keys still awaited named nobody
        return dead

    # -- the outage's roll call -----------------------------------------------------------------
    def outage_began(self) -> None:
        self._before_outage |= set(self.live())

    def outage_ended(self, now: float) -> None:
        """Who must say they receive again before we publish: those alive before the outage."""
        self._awaiting = self._before_outage - {self.key}
        self._before_outage = set()
        self._deadline = now + min(3 * self.interval, GATE_LIMIT)

    def heard_again(self, key: str) -> None:
        self._awaiting.discard(key)

    def all_listening(self) -> bool:
        """True once every awaited peer was heard again, or the wait is over (one died meanwhile)."""
        if self._awaiting and time.monotonic() < self._deadline:
            return False
        self._awaiting = set()
        return True
