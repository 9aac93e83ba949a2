"""Log lines a client can provoke, rate-limited so that no client can flood the log.

Every refusal and every limit a client hits is logged, because an operator
needs to see abuse; but a client that repeats the same bad input ten thousand
times must not write ten thousand lines. ``throttled`` writes up to BURST
lines of each kind within INTERVAL seconds, then holds the rest back until the
interval is over; the next line written says how many were held back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

# At most BURST lines of one kind per INTERVAL seconds.
INTERVAL = 10.0
BURST = 10
# Kinds remembered at most: an attacker choosing fresh kinds cannot grow this without bound.
MAX_KINDS = 1024

_window: dict[tuple[str, str], tuple[float, int]] = {}  # kind -> (start of its interval, lines written in it)
_held: dict[tuple[str, str], int] = {}


def throttled(logger: logging.Logger, level: int, kind: str, message: str, *args: Any, **kwargs: Any) -> bool:
    """Log ``message % args`` unless BURST lines of this ``kind`` went out in the current interval.

    ``kind`` names the situation ("rate limit", "slow reader"), not the client,
    so that many clients misbehaving alike still write one line. True when the
    line was written.
    """
    if not logger.isEnabledFor(level):
        return False
    key = (logger.name, kind)
    now = time.monotonic()
    start, written = _window.get(key, (now, 0))
    if now - start >= INTERVAL:
        start, written = now, 0
    if written >= BURST:
        _held[key] = _held.get(key, 0) + 1
        return False
    if len(_window) >= MAX_KINDS and key not in _window:
        _window.clear()
        _held.clear()
    _window[key] = (start, written + 1)
    held = _held.pop(key, 0)
    if held:
        message = f"{message} (and {held} more like it in the last {INTERVAL:.0f} s)"
    logger.log(level, message, *args, **kwargs)
    return True


def reset() -> None:
    """Forget what was logged (tests that need a fresh budget)."""
    _window.clear()
    _held.clear()
