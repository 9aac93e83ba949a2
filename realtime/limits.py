"""Token buckets for the limits a client can run into (handshakes per IP, events per socket).

A rate is written the way people say it, ``"10/s"``, ``"600/m"``, ``"1000/h"``:
that many at once (the burst), refilled evenly over the period. The clock is an
argument, so the buckets are tested without waiting.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from .conf import realtime_settings

_PERIODS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period: float  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"10/s"`` -> Rate(10, 1.0); ValueError for anything else (the system check reports it)."""
        match = _RATE.match(text) if isinstance(text, str) else None
        if match is None or match.group(2) not in _PERIODS or int(match.group(1)) < 1:
            raise ValueError(f"{text!r} is not a rate such as '10/s', '600/m' or '1000/h'")
        return cls(int(match.group(1)), _PERIODS[match.group(2)])


class TokenBucket:
    """``take(now)`` is True while the rate allows one more."""

    __slots__ = ("_at", "_per_second", "_size", "_tokens")

    def __init__(self, rate: Rate, now: float) -> None:
        self._size = float(rate.count)
        self._per_second = rate.count / rate.period
        self._tokens = self._size
        self._at = now

    def take(self, now: float) -> bool:
        tokens = min(self._size, self._tokens + (now - self._at) * self._per_second)
        self._at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class KeyedBuckets:
    """One bucket per key (an IP address), the least recently used forgotten past ``max_keys``.

    A forgotten key starts again with a full bucket, which only ever errs on
    the side of letting a client in; the table cannot grow without bound
    however many addresses knock.
    """

    def __init__(self, rate: Rate, max_keys: int = 65_536) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)


@dataclass(frozen=True)
class ClientLimits:
    """What one Socket.IO client may hold (``REALTIME``'s MAX_* settings), read once per server."""

    max_namespaces: int
    max_rooms: int
    max_pending_acks: int
    max_running_handlers: int
    max_attachments: int
    max_attachment_bytes: int
    attachment_timeout: float
    rate_limits: dict[str, Rate]
    strikes: int

    @classmethod
    def from_settings(cls) -> ClientLimits:
        conf = realtime_settings()
        return cls(
            max_namespaces=conf["MAX_NAMESPACES"],
            max_rooms=conf["MAX_ROOMS_PER_SOCKET"],
            max_pending_acks=conf["MAX_PENDING_ACKS"],
            max_running_handlers=conf["MAX_RUNNING_HANDLERS"],
            max_attachments=conf["MAX_ATTACHMENTS"],
            max_attachment_bytes=conf["MAX_ATTACHMENT_BYTES"],
            attachment_timeout=conf["ATTACHMENT_TIMEOUT"] / 1000,
            rate_limits={name: Rate.parse(rate) for name, rate in conf["RATE_LIMITS"].items()},
            strikes=conf["RATE_LIMIT_STRIKES"],
        )
