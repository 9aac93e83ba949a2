"""The test and conformance server: the project's app plus an Engine.IO echo endpoint at /engine.io/.

The echo endpoint proves the transport layer on its own (and is what the
public Engine.IO conformance suite talks to); /socket.io/ is the project's
Socket.IO server as a user would deploy it.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_app = get_asgi_application()

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

# /static/ too, whatever DEBUG says: the browser test loads the demo page and its scripts.
django_app = ASGIStaticFilesHandler(django_app)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from realtime.routing import endpoint_from_settings, http_urlpatterns, urlpatterns_for, websocket_urlpatterns  # noqa: E402
from realtime.testing import EchoHandler  # noqa: E402

echo_http, echo_ws = urlpatterns_for(endpoint_from_settings(handler=EchoHandler), "engine.io")

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*echo_http, *http_urlpatterns(), re_path(r"", django_app)]),
        "websocket": URLRouter([*echo_ws, *websocket_urlpatterns()]),
    }
)
