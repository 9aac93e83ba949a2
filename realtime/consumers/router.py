"""The Engine.IO paths to the consumers, everything else to the application they are mounted in front of."""

from __future__ import annotations

from typing import Any

from ..sessions import Endpoint
from .polling import PollingConsumer
from .websocket import WebSocketConsumer


class EngineRouter:
    """An ASGI app: each route (``"socket.io/"``) to its Endpoint's consumers, ``application`` for the rest.

    A path matches as in Channels' ``URLRouter``: below the ``root_path``, with
    leading slashes ignored. The scope is passed on as the server made it, and
    nothing of the routing stays on the stack or in the scope for the life of a
    connection (``URLRouter`` keeps two frames and a copy of the scope).
    """

    def __init__(self, application: Any, routes: dict[str, Endpoint], http: dict[str, Any] | None = None) -> None:
        self.application = application
        self.routes = routes
        self.http = http or {}  # path -> ASGI app answering plain HTTP there (probes, the scrape: probes.py)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            path = _relative_path(scope)
            endpoint = self.routes.get(path)
            if endpoint is not None:
                consumer = PollingConsumer(endpoint) if kind == "http" else WebSocketConsumer(endpoint)
                return await consumer(scope, receive, send)
            if kind == "http" and self.http:
                app = self.http.get(path.rstrip("/"))
                if app is not None:
                    return await app(scope, receive, send)  # type: ignore[no-any-return]
        return await self.application(scope, receive, send)  # type: ignore[no-any-return]


def _relative_path(scope: dict[str, Any]) -> str:
    """The path below ``root_path``, without leading slashes ("" if it is not below it)."""
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path:
        if not path.startswith(root_path):
            return ""
        path = path[len(root_path) :]
    return path.lstrip("/")
