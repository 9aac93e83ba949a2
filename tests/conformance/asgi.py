"""`make conformance-server`: /engine.io/ echoes (Engine.IO suite), /socket.io/ serves the Socket.IO suite."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.conformance.settings")

from tests.asgi import application  # noqa: F401
