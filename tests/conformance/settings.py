"""Settings for `make conformance-server`: what the public Socket.IO/Engine.IO suites expect.

The Engine.IO suite talks to an echo endpoint at /engine.io/ with a 300 ms
ping interval, a 200 ms ping timeout, a 1,000,000-byte max payload and any
origin allowed.
"""

from project.settings import *  # noqa: F403

DEBUG = False
REALTIME = {
    "PING_INTERVAL": 300,
    "PING_TIMEOUT": 200,
    "MAX_PAYLOAD": 1_000_000,
    "CORS_ALLOWED_ORIGINS": ["*"],
}
REALTIME["NAMESPACES"] = ["tests.conformance.sockets.Main", "tests.conformance.sockets.Custom"]
