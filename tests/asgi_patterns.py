"""tests/asgi.py as the URL patterns inside Channels' routers (the other way to route realtime)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from realtime.routing import endpoint_from_settings, http_urlpatterns, urlpatterns_for, websocket_urlpatterns  # noqa: E402
from realtime.testing import EchoHandler  # noqa: E402

django_app = ASGIStaticFilesHandler(django_app)
echo_http, echo_ws = urlpatterns_for(endpoint_from_settings(handler=EchoHandler), "engine.io")

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*echo_http, *http_urlpatterns(), re_path(r"", django_app)]),
        "websocket": URLRouter([*echo_ws, *websocket_urlpatterns()]),
    }
)
