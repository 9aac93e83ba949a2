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

3. Shutdown. On SIGTERM daphne runs our ``drain`` (in place of its own step that
cancels every running application at once) before it stops listening. Twisted
then drops every connection left (``reactor.disconnectAll``) without sending
what is still buffered for it, so ``drain`` stops listening itself and waits
until every HTTP request it took has been answered and the answer sent.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from ..conf import realtime_settings
from ..runtime import current

logger = logging.getLogger("realtime.node")

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


# Sessions closed at once during a shutdown; more are spread over half the grace period.
SHUTDOWN_BATCH = 200


async def drain(grace: float) -> None:
    """Leave the cluster cleanly within ``grace`` seconds, so every client ends up on another process.

    1. Refuse new handshakes (503) and tell the peers we are leaving: they
       refuse our sids at once instead of forwarding to a process about to vanish.
    2. Close our sessions as a lost transport (Session.abort: no close packet,
       so clients reconnect by themselves; handlers see ``server shutting down``),
       in batches spread over half the grace period so the other processes are
       not hit by every reconnect in the same instant.
    3. End relayed WebSockets, have the owners answer the GETs we forward, and
       wait (within the grace period) for those answers and our queued messages to leave.
    4. Stop listening and wait until every request taken is answered and sent
       (``close_listeners``): a connection dropped with its answer unsent would be a
       POST lost (a proxy does not resend one) or a GET that a proxy resends elsewhere.
    """
    runtime = current()
    member, relays = runtime.member, runtime.relays
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    await member.leave_cluster()
    sessions = runtime.sessions()
    logger.info("shutting down: closing %d sessions within %.1f s", len(sessions), grace)
    batches = [sessions[i : i + SHUTDOWN_BATCH] for i in range(0, len(sessions), SHUTDOWN_BATCH)]
    for number, batch in enumerate(batches, 1):
        for session in batch:
            await session.abort("server shutting down")
        if number < len(batches):
            await asyncio.sleep(grace / 2 / len(batches))  # pacing the reconnects, not synchronisation
    await relays.close_all()
    await relays.release_forwarded()
    answered = await relays.forwarded_done(max(0.0, deadline - loop.time()))
    sent = await close_listeners(deadline)
    flushed = await member.flush(max(0.0, deadline - loop.time()))
    logger.info(
        "shut down: sessions closed%s%s%s",
        "" if answered else "; some forwarded requests unanswered",
        "" if sent else "; some HTTP answers unsent",
        "" if flushed else "; some cross-process messages unsent",
    )


# How often close_listeners looks at the open connections: Twisted has no event for
# "every answer written and flushed", so the reactor's state is read until it says so.
CONNECTIONS_POLL = 0.01


async def close_listeners(deadline: float) -> bool:
    """Refuse new connections, then wait until no connection carries a request or unsent bytes.

    Connections the kernel has queued are accepted first (closing the listening
    socket would reset them after the client sent its request); from then on a
    connection is refused, so a proxy tries another process and the client sees
    nothing. A connection is done once its request is answered and the answer has
    left (a ``Connection: close`` one is then closed by Twisted); an idle keep-alive
    connection carries nothing and is left to daphne. WebSockets still open are
    waited for too (their close handshake). True if all were done by ``deadline``.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return True
    from twisted.internet import tcp
    from twisted.web.http import HTTPChannel

    for port in [r for r in reactor.getReaders() if isinstance(r, tcp.Port)]:
        port.doRead()  # type: ignore[no-untyped-call]  # accept what the kernel queued: answered, not reset
        port.stopListening()  # type: ignore[no-untyped-call]

    def busy() -> bool:
        writers = set(reactor.getWriters())
        for connection in {*reactor.getReaders(), *writers}:
            if not isinstance(connection, tcp.Server):
                continue
            # twisted.web wraps the HTTPChannel (HTTP/1.1 or 2 is chosen later); a WebSocket replaced it
            channel = getattr(connection.protocol, "_channel", connection.protocol)
            if connection in writers or connection.disconnecting or not isinstance(channel, HTTPChannel):
                return True  # bytes unsent, closing once they are, or a WebSocket
            if channel.requests:
                return True  # a request being answered (a forwarded POST, say)
        return False

    loop = asyncio.get_running_loop()
    while True:
        # first a select() with a timeout: what the connections just accepted sent is read by then
        await asyncio.sleep(CONNECTIONS_POLL)
        if not busy():
            return True
        if loop.time() >= deadline:
            return False


def close_sessions_on_shutdown() -> None:
    """When daphne stops (SIGTERM, SIGINT), drain first, then end what is left: see ``drain``.

    daphne's own shutdown step, ``Server.kill_all_applications``, cancels every application
    instance running at that moment, in the same phase as a trigger of ours would start the
    drain: a probe, a scrape or a Django view in flight at SIGTERM would be cancelled unanswered
    (its client sees the connection drop after the whole grace), and it reads a key daphne
    deletes for finished instances, so it can raise and leave the rest. So the step is replaced:
    it drains (requests in flight are answered meanwhile), then cancels only what still runs.

    Only under daphne, whose CLI installs Twisted's asyncio reactor before it loads the
    application (before its Server registers that step, so the replacement is what it registers);
    elsewhere (manage.py, Celery, tests) importing the reactor here would install the wrong one.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or type(reactor).__name__ != "AsyncioSelectorReactor":
        return
    try:
        from daphne.server import Server
    except ImportError:  # pragma: no cover - daphne's reactor without daphne's server
        return
    if getattr(Server.kill_all_applications, "_realtime", False):
        return

    def drain_then_kill(self: Any) -> Any:
        from twisted.internet import defer

        grace = realtime_settings()["SHUTDOWN_GRACE"] / 1000
        return defer.Deferred.fromFuture(asyncio.ensure_future(_drain_then_cancel(self, grace)))

    drain_then_kill._realtime = True  # type: ignore[attr-defined]
    Server.kill_all_applications = drain_then_kill


async def _drain_then_cancel(server: Any, grace: float) -> None:
    """``drain``, then cancel the application instances still running (WebSockets left, mostly)."""
    try:
        await drain(grace)
    except Exception:
        logger.exception("shutting down: the drain failed; ending every connection")
    running = [
        instance
        for details in list(server.connections.values())
        if (instance := details.get("application_instance")) is not None and not instance.done()
    ]
    for instance in running:
        instance.cancel()
    if running:
        logger.info("shut down: %d application instances still running were cancelled", len(running))
        await asyncio.gather(*running, return_exceptions=True)
