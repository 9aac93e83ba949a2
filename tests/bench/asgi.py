"""realtime's ASGI app for the benchmark (Socket.IO only, no Django views), routed as the README says."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")
django_app = get_asgi_application()

from realtime.routing import SocketIORouter  # noqa: E402

application = SocketIORouter(django_app)
