"""Logging helpers: rate-limited warnings for bad input, and redaction of secrets in packet logs.

The project's rule for bad input: the client gets the protocol's own error
answer and the operator gets ONE log line, rate limited, so that a flood of
bad requests (a broken client in a retry loop, a scanner) cannot fill the
disk or bury everything else, while the server keeps serving everyone.

A leaf: it imports only ``conf`` and ``protocol``, so any module (sessions,
server, consumers, cluster) can use it without an import cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TypeAlias

from .conf import realtime_settings
from .protocol import socketio

REDACTED = "<auth redacted>"
# What logging's exc_info= takes: True (the exception being handled), an exception, or sys.exc_info()'s tuple.
ExcInfo: TypeAlias = (
    bool
    | BaseException
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)


@dataclass(slots=True)
class _Window:
    """One key's current window: when it began, lines let through, lines held back (and since when)."""

    started: float
    emitted: int = 0
    suppressed: int = 0
    first_suppressed: float = 0.0


class RateLimitedLogger:
    """A logger that lets at most ``lines`` records per ``key`` through in each ``interval`` seconds.

    Use one per module, next to its plain logger::

        refusals = RateLimitedLogger("realtime.engineio")
        refusals.warning("bad-host", "%s refused: Host %r not in ALLOWED_HOSTS", label, host)

    ``key`` names the kind of event ("bad-host", "origin", "too-large", ...),
    not the client: keys must come from a small fixed set chosen in the code,
    never from request data, or a flood of distinct values would defeat the
    limit (the table is capped at ``max_keys`` anyway; past that, new keys share
    one overflow window). Each record's message and arguments are formatted by
    ``logging`` as usual, so a suppressed record costs a dict lookup and an
    addition, and nothing is formatted.

    What was held back is reported on the next line let through for that key,
    appended to it: ``... (37 more suppressed in the last 10 s)``. A flood that
    stops entirely is therefore summed up by the next occurrence, not by a timer.

    ``lines`` and ``interval`` default to ``REALTIME["LOG_RATE_LINES"]`` and
    ``REALTIME["LOG_RATE_INTERVAL"]`` (ms), read at each call (a cached dict
    lookup), so tests and ``override_settings`` apply at once. ``clock`` is
    for tests. Thread-safe: sync handlers log from worker threads.
    """

    def __init__(
        self,
        logger: logging.Logger | str,
        *,
        lines: int | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1000,
    ) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._lines = lines
        self._interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def debug(self, key: str, msg: str, *args: object) -> bool:
        return self._log(logging.DEBUG, key, msg, args, None)

    def info(self, key: str, msg: str, *args: object) -> bool:
        return self._log(logging.INFO, key, msg, args, None)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self._log(logging.WARNING, key, msg, args, None)

    def error(self, key: str, msg: str, *args: object, exc_info: ExcInfo = None) -> bool:
        return self._log(logging.ERROR, key, msg, args, exc_info)

    def log(self, level: int, key: str, msg: str, *args: object, exc_info: ExcInfo = None) -> bool:
        """Log unless ``key`` is over its budget; True when the line was written."""
        return self._log(level, key, msg, args, exc_info)

    def _log(self, level: int, key: str, msg: str, args: tuple[object, ...], exc_info: ExcInfo) -> bool:
        if not self.logger.isEnabledFor(level):
            return False  # disabled levels neither log nor spend the budget
        held_back = self._admit(key)
        if held_back is None:
            return False
        count, seconds = held_back
        if count:
            msg = f"{msg} ({count} more suppressed in the last {seconds:.0f} s)"
        # stacklevel 3: the record names the caller of warning()/log(), not this module
        self.logger.log(level, msg, *args, exc_info=exc_info, stacklevel=3)
        return True

    def _admit(self, key: str) -> tuple[int, float] | None:
        """None to suppress; else how many lines were held back before this one, over how many seconds."""
        lines, interval = self._limits()
        now = self._clock()
        with self._lock:
            window = self._window(key, now)
            held = (0, 0.0)
            if now - window.started >= interval:
                if window.suppressed:
                    held = (window.suppressed, now - window.first_suppressed)
                window.started, window.emitted, window.suppressed = now, 0, 0
            if window.emitted >= lines:
                if not window.suppressed:
                    window.first_suppressed = now
                window.suppressed += 1
                return None
            window.emitted += 1
            return held

    def _window(self, key: str, now: float) -> _Window:
        window = self._windows.get(key)
        if window is not None:
            return window
        if len(self._windows) >= self._max_keys:
            key = "<overflow>"
            window = self._windows.get(key)
            if window is not None:
                return window
        window = self._windows[key] = _Window(started=now)
        return window

    def _limits(self) -> tuple[int, float]:
        if self._lines is not None and self._interval is not None:
            return self._lines, self._interval
        conf = realtime_settings()
        lines = self._lines if self._lines is not None else conf["LOG_RATE_LINES"]
        interval = self._interval if self._interval is not None else conf["LOG_RATE_INTERVAL"] / 1000
        return lines, interval


def clip(value: object, limit: int = 100) -> str:
    """``repr`` of client-supplied text, cut short: a header may be kilobytes, and logs are read by people."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


# -- redaction ----------------------------------------------------------------------------------
# A Socket.IO CONNECT carries the client's auth object (tokens, passwords): packet-level DEBUG
# logs show its namespace and replace its payload. Other packets are the application's data.


def redact_frame(frame: str | bytes) -> str | bytes:
    """An Engine.IO frame or polling payload, with any Socket.IO CONNECT payload replaced.

    ``40/probe,{"token":"rt_…"}`` becomes ``40/probe,<auth redacted>``; packets
    of a polling payload (``\\x1e``-separated) are redacted one by one. Binary
    frames are attachments and are returned as they are.
    """
    if isinstance(frame, bytes):
        if not frame.startswith(b"40") and b"\x1e40" not in frame:
            return frame
        return _redact_text(frame.decode("utf-8", "replace")).encode()
    return _redact_text(frame)


def _redact_text(frame: str) -> str:
    if not frame.startswith("40") and "\x1e40" not in frame:
        return frame  # the common case, found without splitting
    return "\x1e".join(_redact_packet_text(p) for p in frame.split("\x1e"))


def _redact_packet_text(packet: str) -> str:
    """``4`` (Engine.IO message) + ``0`` (Socket.IO CONNECT) + ``[/nsp,]`` + payload."""
    if not packet.startswith("40"):
        return packet
    head = packet[:2]
    rest = packet[2:]
    if rest.startswith("/"):
        namespace, comma, rest = rest.partition(",")
        head += namespace + comma
    return head + REDACTED if rest else head


class _Redacted:
    """Stands in for a payload in a repr: prints as the marker, never as the data."""

    def __repr__(self) -> str:
        return REDACTED


def redact_packet(packet: socketio.Packet) -> socketio.Packet:
    """A decoded Socket.IO packet, fit for a log: a CONNECT's auth object replaced by a marker."""
    if packet.type is socketio.PacketType.CONNECT and packet.data is not None:
        return replace(packet, data=_Redacted())
    return packet


_by_logger: dict[str, RateLimitedLogger] = {}


def throttled(logger: logging.Logger, level: int, kind: str, msg: str, *args: object, exc_info: ExcInfo = None) -> bool:
    """``RateLimitedLogger(logger).log(level, kind, ...)`` without keeping one per call site.

    For modules that log through their plain logger and only now and then
    write a line a client can provoke (a limit, a refusal, a handler's bug).
    """
    limited = _by_logger.get(logger.name)
    if limited is None:
        limited = _by_logger[logger.name] = RateLimitedLogger(logger)
    return limited.log(level, kind, msg, *args, exc_info=exc_info)
