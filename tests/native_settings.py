"""Settings for the native clients' servers (tests/e2e/test_clients_native.py): tests/settings.py, slower heartbeat.

The suite's 400 ms ping interval and 300 ms timeout suit the clients it drives from
Python and Node; rust_socketio's sync client takes about two seconds between its
polling handshake and its first POST, so on that heartbeat the server drops it for
ping timeout before it connects (and under load it took longer than 2.5 s).
Only socket.io-client-java over WebSocket relies on the heartbeat in these scenarios
(it notices a session the server ended by the missing ping), and its program waits
10 s for that.
"""

from tests.settings import *  # noqa: F403
from tests.settings import REALTIME

REALTIME = {**REALTIME, "PING_INTERVAL": 2_000, "PING_TIMEOUT": 3_000, "CONNECT_TIMEOUT": 5_000}
