"""The conformance server: an Engine.IO echo endpoint at /engine.io/ (and the project's /socket.io/)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.conformance.settings")
get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.routing import endpoint_from_settings, http_urlpatterns, urlpatterns_for, websocket_urlpatterns  # noqa: E402
from realtime.testing import EchoHandler  # noqa: E402

echo_http, echo_ws = urlpatterns_for(endpoint_from_settings(handler=EchoHandler), "engine.io")

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*echo_http, *http_urlpatterns()]),
        "websocket": URLRouter([*echo_ws, *websocket_urlpatterns()]),
    }
)
