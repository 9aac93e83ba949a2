"""The test and conformance server: the project's app plus an Engine.IO echo endpoint at /engine.io/.

The echo endpoint proves the transport layer on its own (and is what the
public Engine.IO conformance suite talks to); /socket.io/ is the project's
Socket.IO server as a user would deploy it. ``tests/asgi_patterns.py`` serves
the same through Channels' ``URLRouter`` and the URL patterns instead.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_app = get_asgi_application()

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

# /static/ too, whatever DEBUG says: the browser test loads the demo page and its scripts.
django_app = ASGIStaticFilesHandler(django_app)

from realtime.conf import realtime_settings  # noqa: E402
from realtime.routing import SocketIORouter, endpoint_from_settings  # noqa: E402
from realtime.testing import EchoHandler  # noqa: E402

application = SocketIORouter(
    django_app,
    endpoints={
        "engine.io": endpoint_from_settings(handler=EchoHandler),
        realtime_settings()["PATH"]: endpoint_from_settings(),
    },
)
