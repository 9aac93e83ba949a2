"""ASGI entry point: Engine.IO/Socket.IO at /socket.io/, Django for everything else."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()  # sets Django up before realtime imports models

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from realtime.routing import SocketIORouter

if settings.DEBUG:
    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

application = SocketIORouter(django_asgi_app)
