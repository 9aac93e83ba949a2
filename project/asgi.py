"""ASGI entry point: Engine.IO/Socket.IO at /socket.io/, Django for everything else."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()  # sets Django up before realtime imports models

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.urls import re_path

from realtime.routing import http_urlpatterns, websocket_urlpatterns

if settings.DEBUG:
    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*http_urlpatterns(), re_path(r"", django_asgi_app)]),
        "websocket": URLRouter(websocket_urlpatterns()),
    }
)
