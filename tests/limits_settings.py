"""tests/settings.py with the limits small enough to hit in a test (tests/e2e/test_limits.py, test_hardening.py).

``REALTIME_LIMITS`` (JSON) overrides them further for one server process.
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import REALTIME

REALTIME = {
    **REALTIME,
    "MAX_BUFFERED_BYTES": 1024 * 1024,
    "MAX_BUFFERED_PACKETS": 64,
    "MAX_NAMESPACES": 3,
    "MAX_ROOMS_PER_SOCKET": 20,
    "MAX_PENDING_ACKS": 5,
    "MAX_RUNNING_HANDLERS": 8,
    "MAX_ATTACHMENT_BYTES": 100_000,
    "ATTACHMENT_TIMEOUT": 500,
    "RATE_LIMITS": {"counted": "5/s"},
    "RATE_LIMIT_STRIKES": 20,
    "LOG_RATE_LINES": 10,  # the default: these tests check that a flood writes no more
    **json.loads(os.environ.get("REALTIME_LIMITS", "{}")),
}
