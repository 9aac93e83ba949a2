"""realtime's ASGI app for the benchmark (Socket.IO only, no Django views)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")
get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.routing import http_urlpatterns, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": URLRouter(http_urlpatterns()), "websocket": URLRouter(websocket_urlpatterns())}
)
