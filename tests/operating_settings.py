"""tests/e2e/test_operating.py's servers: tests.settings with long-lived idle sessions, an env-set metrics allow-list.

The drain test opens a few hundred raw polling sessions that never poll again nor
connect a namespace; with tests.settings' 400 + 300 ms ping and 1 s CONNECT_TIMEOUT
they would be closed before the SIGTERM, so those are the defaults' order of magnitude.
A longer SHUTDOWN_GRACE spreads the drain's two batches over more time, the window in
which readiness must say "draining".
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import REALTIME as BASE

REALTIME = {
    **BASE,
    "PING_INTERVAL": 20_000,
    "PING_TIMEOUT": 20_000,
    "CONNECT_TIMEOUT": 30_000,
    "SHUTDOWN_GRACE": 6_000,
}
# "10.0.0.0/8": a server whose scrape this machine (127.0.0.1) may not read
if os.environ.get("REALTIME_METRICS_ALLOWED_IPS"):
    REALTIME["METRICS_ALLOWED_IPS"] = os.environ["REALTIME_METRICS_ALLOWED_IPS"].split(",")
