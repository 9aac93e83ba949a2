"""tests/settings.py plus the /metered namespace, with Socket.IO's default heartbeat.

tests/e2e/test_prometheus.py holds a raw polling client with no GET pending so that volatile
packets to it are dropped; under tests/settings.py's 400 ms heartbeat it would time out at once.
"""

from tests.settings import *  # noqa: F403
from tests.settings import REALTIME

REALTIME = {
    **REALTIME,
    "PING_INTERVAL": 25_000,
    "PING_TIMEOUT": 20_000,
    "NAMESPACES": [*REALTIME["NAMESPACES"], "tests.metrics_sockets.Metered"],
}
