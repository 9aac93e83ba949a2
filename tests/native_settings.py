"""Settings for the native clients' servers (tests/e2e/test_clients_native.py): tests/settings.py, slower heartbeat.

The suite's 400 ms ping interval and 300 ms timeout suit the clients it drives from
Python and Node; rust_socketio's sync client takes about two seconds between its
polling handshake and its first POST, so on that heartbeat the server drops it for
ping timeout before it connects. One second and a half still detects a dead peer
well inside the scenarios' 5 s waits.
"""

from tests.settings import *  # noqa: F403
from tests.settings import REALTIME

REALTIME = {**REALTIME, "PING_INTERVAL": 1_000, "PING_TIMEOUT": 1_500, "CONNECT_TIMEOUT": 5_000}
