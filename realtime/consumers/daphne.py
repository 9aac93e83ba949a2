"""Two gaps between daphne and what Engine.IO needs on a WebSocket.

1. Close code 1009 ("message too big").
daphne closes a WebSocket through autobahn's public ``sendClose``, which only
accepts 1000 and 3000-4999 and raises for anything else, so an ASGI app's
``{"type": "websocket.close", "code": 1009}`` ends in a 1011 and a traceback.
The RFC allows a server to send 1001-1014 (except the reserved 1004-1006
and 1015); for those we write the close frame with autobahn's lower-level
``sendCloseFrame``.

2. Empty binary frames. daphne skips a ``websocket.send`` whose ``bytes`` is
empty, but a Socket.IO binary attachment may be zero bytes long, and the
client waits for it forever. We send it.

Other ASGI servers (uvicorn) need neither.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

RFC6455_SERVER_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def patch_daphne() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not running under daphne
        return
    if getattr(WebSocketProtocol.serverClose, "_realtime", False):
        return
    original = WebSocketProtocol.serverClose

    def server_close(self: Any, code: int | None = None) -> None:
        if code in RFC6455_SERVER_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code)

    server_close._realtime = True  # type: ignore[attr-defined]
    WebSocketProtocol.serverClose = server_close

    original_reply = WebSocketProtocol.handle_reply

    def handle_reply(self: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.send" and message.get("bytes") == b"" and message.get("text") is None:
            self.serverSend(b"", True)
            return
        original_reply(self, message)

    WebSocketProtocol.handle_reply = handle_reply


def close_sessions_on_shutdown() -> None:
    """When daphne stops (SIGTERM, SIGINT), close every session first, with Socket.IO's reason.

    Handlers then see ``server shutting down`` rather than ``transport close``.
    Only under daphne, whose CLI installs Twisted's asyncio reactor before it
    loads the application; elsewhere (manage.py, Celery, tests) importing the
    reactor here would install the wrong one.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or type(reactor).__name__ != "AsyncioSelectorReactor":
        return
    from twisted.internet import defer

    from ..sessions import ENDPOINTS

    async def close_all() -> None:
        for endpoint in list(ENDPOINTS.values()):
            for session in list(endpoint.sessions.values()):
                await session.close("server shutting down")

    def before_shutdown() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(close_all()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
