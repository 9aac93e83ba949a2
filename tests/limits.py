"""Per-IP connection and rate limits lifted for the fuzz test and the soak, which come from one IP.

Thousands of connections from 127.0.0.1 are the point of those runs, so the
limits must not be what they measure (tests/e2e/test_limits.py tests them).
"""

from __future__ import annotations

from typing import Any

HIGH = 1_000_000


def raised_limits() -> dict[str, Any]:
    """REALTIME entries with the per-process and per-address limits out of the way."""
    return {
        "MAX_CONNECTIONS": HIGH,
        "MAX_CONNECTIONS_PER_IP": HIGH,
        "HANDSHAKE_RATE_PER_IP": None,
        "RATE_LIMITS": {},
    }
