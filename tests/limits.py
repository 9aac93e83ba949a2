"""Per-IP connection and rate limits raised for the fuzz test and the soak, which come from one IP.

Thousands of connections from 127.0.0.1 are the point of those runs, so the
limits must not be what they measure. Only keys that realtime.conf already
knows are set (system checks warn about unknown ones), in the shape of the
default: a number becomes a very large number; a (count, window) pair keeps
its window; a dict has each of its values raised the same way.
"""

from __future__ import annotations

from typing import Any

from realtime.conf import DEFAULTS

HIGH = 1_000_000
LIMIT_KEYS = ("MAX_CONNECTIONS_PER_IP", "HANDSHAKE_RATE_PER_IP", "RATE_LIMITS")


def raised(value: Any) -> Any:
    """``value`` (a default) with its allowance made huge and its time window, if any, kept."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return HIGH
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], (int, float)):
        return type(value)([HIGH, *value[1:]])
    if isinstance(value, dict):
        return {key: raised(item) for key, item in value.items()}
    return value


def raised_limits() -> dict[str, Any]:
    """REALTIME entries for the limits this version of realtime has (none before they exist)."""
    return {key: raised(DEFAULTS[key]) for key in LIMIT_KEYS if key in DEFAULTS}
