"""Routing for ``project/asgi.py``: the Engine.IO path to realtime's consumers, the rest to the site.

``SocketIORouter(django_asgi_app)`` is the whole of it: it answers the
Engine.IO path itself and hands every other connection (and the lifespan) to
the application it wraps, which may be a Channels ``ProtocolTypeRouter`` with
the project's own consumers.

The URL patterns (``http_urlpatterns()`` in the HTTP ``URLRouter``,
``websocket_urlpatterns()`` in the WebSocket one) do the same inside Channels'
routers. They cost more: a long-lived WebSocket keeps Channels' two router
frames, the consumer's ``as_asgi`` frame and ``URLRouter``'s copy of the scope,
about 1.8 KiB per idle connection (tracemalloc, 1,000 connections on uvicorn),
and every polling request pays a regular-expression match and a scope copy.
"""

from __future__ import annotations

import re
from typing import Any

from django.urls import re_path
from django.utils.module_loading import import_string

from .conf import realtime_settings
from .consumers.polling import PollingConsumer
from .consumers.probes import Liveness, Readiness, Scrape
from .consumers.router import EngineRouter
from .consumers.websocket import WebSocketConsumer
from .prometheus import CONTENT_TYPE, process_exporter
from .protocol.engine import EngineConfig
from .proxies import networks
from .runtime import current
from .sessions import Endpoint, HandlerFactory


class SocketIORouter(EngineRouter):
    """An ASGI app: the Engine.IO endpoints at their paths, ``application`` for everything else.

    ``endpoints`` maps a path (``"socket.io"``, served at ``/socket.io/``) to
    an Endpoint; by default it is the settings' endpoint at ``REALTIME["PATH"]``.
    """

    def __init__(self, application: Any, endpoints: dict[str, Endpoint] | None = None) -> None:
        if endpoints is None:
            endpoints = dict([_settings_endpoint()])
        for path, endpoint in endpoints.items():
            current().serve(endpoint, path)
        super().__init__(application, {f"{path}/": endpoint for path, endpoint in endpoints.items()}, operator_routes())


def operator_routes() -> dict[str, Any]:
    """REALTIME["LIVENESS_PATH"], ["READINESS_PATH"] and ["METRICS_PATH"]: answered by the router itself."""
    conf = realtime_settings()
    routes: dict[str, Any] = {}
    if conf["LIVENESS_PATH"]:
        routes[conf["LIVENESS_PATH"]] = Liveness()
    if conf["READINESS_PATH"]:
        routes[conf["READINESS_PATH"]] = Readiness(current(), conf["READINESS_REQUIRES_LAYER"] is True)
    if conf["METRICS_PATH"] and conf["METRICS"] is True:
        allow = networks(conf["METRICS_ALLOWED_IPS"])
        routes[conf["METRICS_PATH"]] = Scrape(scrape, CONTENT_TYPE, allow)
    return routes


async def scrape() -> bytes:
    return await process_exporter().scrape()


def endpoint_from_settings(handler: HandlerFactory | str | None = None, **overrides: Any) -> Endpoint:
    """An Endpoint configured by ``settings.REALTIME`` (and ``overrides``, same keys)."""
    conf = {**realtime_settings(), **overrides}
    factory = handler if handler is not None else conf["HANDLER"]
    if isinstance(factory, str):
        factory = import_string(factory)
    config = EngineConfig(
        ping_interval=conf["PING_INTERVAL"],
        ping_timeout=conf["PING_TIMEOUT"],
        max_payload=conf["MAX_PAYLOAD"],
        upgrade_timeout=conf["UPGRADE_TIMEOUT"],
        max_buffered_bytes=conf["MAX_BUFFERED_BYTES"],
        max_buffered_packets=conf["MAX_BUFFERED_PACKETS"],
    )
    return Endpoint(
        config,
        factory,
        transports=tuple(conf["TRANSPORTS"]),
        allowed_origins=tuple(conf["CORS_ALLOWED_ORIGINS"]),
        max_connections=conf["MAX_CONNECTIONS"],
        max_connections_per_ip=conf["MAX_CONNECTIONS_PER_IP"],
        handshake_rate=conf["HANDSHAKE_RATE_PER_IP"],
        http_compression_threshold=conf["HTTP_COMPRESSION_THRESHOLD"],
        allow_eio3=conf["ALLOW_EIO3"] is True,
    )


def urlpatterns_for(endpoint: Endpoint, path: str) -> tuple[list[Any], list[Any]]:
    """(http patterns, websocket patterns) serving ``endpoint`` at ``/<path>/``."""
    current().serve(endpoint, path)
    pattern = rf"^{re.escape(path)}/$"
    return (
        [re_path(pattern, PollingConsumer.as_asgi(endpoint=endpoint))],
        [re_path(pattern, WebSocketConsumer.as_asgi(endpoint=endpoint))],
    )


def _settings_endpoint() -> tuple[str, Endpoint]:
    """``REALTIME["PATH"]`` and the one Endpoint served there (made from the settings the first time)."""
    path = realtime_settings()["PATH"]
    return path, current().endpoints.get(path) or endpoint_from_settings()


def _default_patterns() -> tuple[list[Any], list[Any]]:
    """The patterns of the settings' endpoint; the HTTP and WebSocket routes share one Endpoint."""
    path, endpoint = _settings_endpoint()
    return urlpatterns_for(endpoint, path)


def http_urlpatterns() -> list[Any]:
    return _default_patterns()[0]


def websocket_urlpatterns() -> list[Any]:
    return _default_patterns()[1]
