"""What lets a process lose nothing when Redis blinks: the outbox, and the receivers' duplicate check.

Redis pub/sub keeps nothing: a message published while a subscriber is away, or not
published at all because Redis is down or stalled, is gone. So a serving process keeps
what it must send in an outbox and publishes it in order, one message at a time. A message
that must arrive (a broadcast, a room change, a server-side event: ``durable``) stays at
the head through an outage and is published again once the layer is back; what only makes
sense now (a forwarded poll, a relayed frame, a reply, a volatile broadcast) is dropped when
the layer goes, and its sender has already been told.

A publish that timed out against a stalled Redis may still land once Redis wakes up, so its
retry can arrive twice: each durable message carries a per-process sequence number and the
receivers drop one they have already seen (``Seen``). Pub/sub gives no order across shards
or groups, so the check is a bounded set of recent numbers per sender, not a high-water mark.

Both are plain data structures, the current time an argument: the member drives them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Every queued message is counted with this much overhead on top of its strings and bytes.
MESSAGE_OVERHEAD = 64
# Sequence numbers remembered per sender: far more than can be in flight when a publish is retried.
SEEN_PER_ORIGIN = 4096
# Senders remembered: processes come and go (each restart is a new key); the oldest are forgotten.
SEEN_ORIGINS = 256


def size_of(value: Any) -> int:
    """Roughly what ``value`` weighs once serialised: its strings and bytes plus a little per item.

    The outbox is capped in bytes, and a walk over the message is far cheaper than
    serialising it twice (the layer serialises it anyway).
    """
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + size_of(v) for k, v in value.items()) + 8
    if isinstance(value, (list, tuple)):
        return sum(size_of(v) for v in value) + 8
    return 8


@dataclass(slots=True)
class Entry(Generic[T]):
    """One message waiting: what to send, how much it weighs, whether it survives an outage, since when."""

    item: T
    size: int
    durable: bool
    queued_at: float
    attempts: int = 0


@dataclass(slots=True)
class Outbox(Generic[T]):
    """A FIFO bounded in bytes, messages and age; the head leaves only once it was sent (or given up).

    ``put`` refuses what does not fit (the caller counts it and tells its sender);
    ``expire`` gives up the entries older than ``max_age`` seconds; ``drop_ephemeral``
    gives up what an outage makes pointless. Each returns what it dropped, for the counts.
    """

    max_bytes: int
    max_messages: int
    max_age: float
    bytes: int = 0
    _entries: deque[Entry[T]] = field(default_factory=deque)

    def __len__(self) -> int:
        return len(self._entries)

    def fits(self, size: int) -> bool:
        return self.bytes + size <= self.max_bytes and len(self._entries) < self.max_messages

    def put(self, item: T, size: int, durable: bool, now: float) -> bool:
        """Queue ``item`` at the tail; False (nothing queued) when it would break a bound."""
        if not self.fits(size):
            return False
        self._entries.append(Entry(item, size, durable, now))
        self.bytes += size
        return True

    def head(self) -> Entry[T] | None:
        return self._entries[0] if self._entries else None

    def pop(self) -> Entry[T]:
        """The head has left (or is given up): forget it."""
        entry = self._entries.popleft()
        self.bytes -= entry.size
        return entry

    def expire(self, now: float) -> list[Entry[T]]:
        """Give up the entries queued more than ``max_age`` seconds ago (all at the head: it is a FIFO)."""
        horizon = now - self.max_age
        gone = []
        while self._entries and self._entries[0].queued_at < horizon:
            gone.append(self.pop())
        return gone

    def drop_ephemeral(self) -> list[Entry[T]]:
        """The layer went away: give up what would be pointless later; durable entries keep their order."""
        kept: deque[Entry[T]] = deque()
        gone: list[Entry[T]] = []
        for entry in self._entries:
            (kept if entry.durable else gone).append(entry)
        self._entries = kept
        self.bytes -= sum(entry.size for entry in gone)
        return gone


class Seen:
    """The receivers' side: has this (sender, sequence number) been handled already?"""

    def __init__(self, per_origin: int = SEEN_PER_ORIGIN, origins: int = SEEN_ORIGINS) -> None:
        self._per_origin = per_origin
        self._origins = origins
        self._by_origin: OrderedDict[str, tuple[set[int], deque[int]]] = OrderedDict()

    def first_time(self, origin: str, seq: int) -> bool:
        """True the first time ``seq`` comes from ``origin`` (and remember it); False for a repeat."""
        known = self._by_origin.get(origin)
        if known is None:
            known = self._by_origin[origin] = (set(), deque())
            if len(self._by_origin) > self._origins:
                self._by_origin.popitem(last=False)
        else:
            self._by_origin.move_to_end(origin)
        numbers, order = known
        if seq in numbers:
            return False
        numbers.add(seq)
        order.append(seq)
        if len(order) > self._per_origin:
            numbers.discard(order.popleft())
        return True
