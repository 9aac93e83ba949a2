"""Polling and WebSocket requests that reached a process other than the session's owner.

No sticky sessions needed: a sid starts with its owner's key (node.py), so
the process that received the request forwards it through the channel layer.
A polling GET or POST travels as one request and its answer; a WebSocket
(the upgrade) is relayed frame by frame: the owner sees a RemoteWebSocket
attached to its Session, the receiving process pipes the real socket to it.
Each forwarded request costs one channel-layer round trip (two Redis
messages); requests that reach the owner directly cost nothing extra.

Faults are answered at once, never by a timeout: a sid whose key names no
live process (never heard of, dead, or gone) is refused with 400 "Session ID
unknown"; so is a forwarded request while the layer is down, or whose owner
dies or leaves while it waits. Clients then reconnect, to any process.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING, Any

from ..logs import throttled
from ..node import DEFERRED, PeerUnavailable, key_of_sid, node
from ..protocol.http import SESSION_ID_UNKNOWN
from ..sessions import ENDPOINTS, HARD_LIMIT, Session
from .exchange import JSON, PollResponder

if TYPE_CHECKING:
    from .websocket import WebSocketConsumer

logger = logging.getLogger("realtime.cluster")

# request id -> the responder of a forwarded GET (so a cancel can find it)
_held: dict[str, RemotePoll] = {}
# (relay key, relay id) -> (session, the RemoteWebSocket attached to it)
_attached: dict[tuple[str, str], tuple[Session, RemoteWebSocket]] = {}
# relay id -> the local WebSocketConsumer relaying to another process
relays: dict[str, WebSocketConsumer] = {}
# request id -> owner key, for the polling requests this process forwards and awaits
forwarded: dict[str, str] = {}
_none_forwarded = asyncio.Event()
_none_forwarded.set()

# How long a WebSocket upgrade waits for the owner to accept its relay.
ATTACH_TIMEOUT = 5.0


def _session(message: dict[str, Any]) -> Session | None:
    endpoint = ENDPOINTS.get(message["path"])
    return endpoint.sessions.get(message["sid"]) if endpoint is not None else None


# -- at the owner ---------------------------------------------------------------------


class RemotePoll(PollResponder):
    """A polling request forwarded to us: its answer goes back through the layer."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request

    async def respond(self, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
        if self.answered:
            return
        self.answered = True
        _held.pop(self.request["request_id"], None)
        await node.reply(self.request, {"status": status, "body": body, "headers": [list(h) for h in headers]})


async def _poll(message: dict[str, Any]) -> Any:
    session = _session(message)
    if session is None:
        return {"status": 400, "body": SESSION_ID_UNKNOWN.body, "headers": [list(JSON)]}
    logger.debug("sid=%s: %s forwarded by %s", session.sid, message["method"], message["origin"])
    responder = RemotePoll(message)
    _held[message["request_id"]] = responder
    work = responder.get(session) if message["method"] == "GET" else responder.post(session, message["body"])
    asyncio.get_running_loop().create_task(work)  # a POST may run a CONNECT: do not hold up the layer
    return DEFERRED


async def _poll_cancel(message: dict[str, Any]) -> None:
    responder = _held.pop(message["cancels"], None)
    if responder is not None:
        await responder.cancelled()


async def _poll_release(message: dict[str, Any]) -> None:
    """The forwarding process is shutting down: answer its held GET now (a noop), keep the session."""
    responder = _held.get(message["releases"])
    if responder is not None and responder.held_by is not None:
        await responder.held_by.release_poll(responder)


class RemoteWebSocket:
    """A WebSocket held by another process, as the owner's Session sees it (a FrameSink)."""

    def __init__(self, relay: str, relay_id: str) -> None:
        self.relay = relay
        self.relay_id = relay_id

    async def write(self, frame: str | bytes) -> None:
        await node.send(self.relay, {"type": "realtime.ws_out", "relay_id": self.relay_id, "frame": frame})

    async def shut(self, code: int = 1000) -> None:
        await node.send(self.relay, {"type": "realtime.ws_shut", "relay_id": self.relay_id, "code": code})

    def buffered(self) -> int:
        """Nothing here: the relaying process holds the socket, and its own consumer caps what it buffers."""
        return 0

    def abort(self) -> None:
        """Ask the relaying process to drop the socket (the Session calls this from sync code)."""
        task = asyncio.get_running_loop().create_task(self.shut(1011))
        _aborts.add(task)
        task.add_done_callback(_aborts.discard)


# shut() calls started by abort(), kept until done so that they are not collected half-way
_aborts: set[asyncio.Task[None]] = set()


async def _ws_attach(message: dict[str, Any]) -> Any:
    session = _session(message)
    if session is None:
        return {"ok": False}
    sink = RemoteWebSocket(message["origin"], message["relay_id"])
    if not session.attach_probe(sink):
        return {"ok": False}
    _attached[(sink.relay, sink.relay_id)] = (session, sink)
    logger.debug("sid=%s: WebSocket relayed by %s", session.sid, sink.relay)
    return {"ok": True}


async def _ws_in(message: dict[str, Any]) -> None:
    attached = _attached.get((message["origin"], message["relay_id"]))
    if attached is not None:
        session, sink = attached
        await session.receive_frame(message["frame"], sink)


async def _ws_gone(message: dict[str, Any]) -> None:
    attached = _attached.pop((message["origin"], message["relay_id"]), None)
    if attached is not None:
        session, sink = attached
        await session.websocket_closed(sink)


# -- at the process that received the request ----------------------------------------


class Route(enum.Enum):
    """Where a request for a sid this process does not hold goes."""

    LOCAL = "local"  # the sid is ours (or there is no cluster): unknown here means unknown
    FORWARD = "forward"  # a live peer owns it
    NOWHERE = "nowhere"  # it names a process that is not a live peer: refused at once


async def route(sid: str) -> Route:
    """Where to send a request for ``sid``; NOWHERE is refused by the caller with 400, logged here."""
    key = key_of_sid(sid)
    if not node.clustered or key == node.key:
        return Route.LOCAL
    if node.healthy and await node.await_live(key):
        return Route.FORWARD
    why = "is not a live peer" if node.healthy else "cannot be reached: the channel layer is down"
    node.warn_limited("unknown-owner", "sid=%s: its process %r %s; refused (Session ID unknown)", sid, key, why)
    return Route.NOWHERE


def unknown_answer() -> dict[str, Any]:
    return {"status": 400, "body": SESSION_ID_UNKNOWN.body, "headers": [list(JSON)]}


async def forward_poll(
    path: str, sid: str, method: str, body: bytes, timeout: float, request_id: str
) -> dict[str, Any]:
    """Forward a polling request to the sid's owner; its answer (status, body, headers)."""
    owner = key_of_sid(sid)
    message = {"type": "realtime.poll", "path": path, "sid": sid, "method": method, "body": body}
    forwarded[request_id] = owner
    _none_forwarded.clear()
    try:
        return await node.request(owner, message, timeout, request_id)
    except PeerUnavailable as exc:
        node.warn_limited("forward-failed", "sid=%s: forwarded %s refused (Session ID unknown): %s", sid, method, exc)
        return unknown_answer()
    except TimeoutError:
        logger.warning("sid=%s: owner %s did not answer a forwarded %s", sid, owner, method)
        return unknown_answer()
    finally:
        forwarded.pop(request_id, None)
        if not forwarded:
            _none_forwarded.set()


async def cancel_poll(sid: str, request_id: str) -> None:
    await node.send(key_of_sid(sid), {"type": "realtime.poll_cancel", "cancels": request_id})


async def attach_relay(consumer: WebSocketConsumer, path: str, sid: str) -> str | None:
    """Attach a local WebSocket to the owner's session as its probe; the relay id, or None if refused."""
    relay_id = node.new_id()
    relays[relay_id] = consumer
    message = {"type": "realtime.ws_attach", "path": path, "sid": sid, "relay_id": relay_id}
    try:
        answer = await node.request(key_of_sid(sid), message, ATTACH_TIMEOUT)
    except (TimeoutError, PeerUnavailable):
        answer = {"ok": False}
    if not answer["ok"]:
        relays.pop(relay_id, None)
        return None
    return relay_id


async def relay_in(sid: str, relay_id: str, frame: str | bytes) -> None:
    await node.send(key_of_sid(sid), {"type": "realtime.ws_in", "relay_id": relay_id, "frame": frame})


async def relay_gone(sid: str, relay_id: str) -> None:
    relays.pop(relay_id, None)
    await node.send(key_of_sid(sid), {"type": "realtime.ws_gone", "relay_id": relay_id})


async def _ws_out(message: dict[str, Any]) -> None:
    consumer = relays.get(message["relay_id"])
    if consumer is not None:
        await consumer.write(message["frame"])
        limit = HARD_LIMIT * consumer.endpoint.config.max_buffered_bytes
        if consumer.buffered() > limit:
            # the client of a relayed WebSocket reads too slowly: drop it here, where its bytes pile up;
            # the disconnect that follows tells the owner (a transport close there)
            throttled(
                logger,
                logging.WARNING,
                "slow reader",
                "sid=%s: relayed WebSocket dropped: the client does not keep up (over %d bytes waiting)",
                consumer.relayed_sid,
                limit,
            )
            consumer.abort()


async def _ws_shut(message: dict[str, Any]) -> None:
    consumer = relays.get(message["relay_id"])
    if consumer is not None:
        await consumer.shut(message["code"])


# -- faults and shutdown ---------------------------------------------------------------


async def close_relays() -> None:
    """End every relayed WebSocket, both ends, as a transport close: clients reconnect by themselves.

    Run when the layer goes down (no frame can cross any more) and at shutdown.
    """
    for relay_id, consumer in list(relays.items()):
        consumer.relay_id = None  # its disconnect then tells nobody: we do it here
        await relay_gone(consumer.relayed_sid, relay_id)
        await consumer.shut()
    for key, (session, sink) in list(_attached.items()):
        _attached.pop(key, None)
        await session.websocket_closed(sink)


async def release_forwarded() -> None:
    """Shutting down: ask the owners to answer the GETs we forward now, so each client gets its answer."""
    for request_id, owner in list(forwarded.items()):
        await node.send(owner, {"type": "realtime.poll_release", "releases": request_id})


async def forwarded_done(timeout: float) -> bool:
    """Wait up to ``timeout`` s until no forwarded request is outstanding; True if none is."""
    try:
        await asyncio.wait_for(_none_forwarded.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def release_held_for(key: str) -> None:
    """A peer left or died: free the GETs it forwarded to us, or the client's next GET would be a second one."""
    for responder in list(_held.values()):
        if responder.request["origin"] == key and responder.held_by is not None:
            await responder.held_by.release_poll(responder)


node.on_outage(close_relays)
node.on_peer_gone(release_held_for)


for _type, _handler in {
    "realtime.poll": _poll,
    "realtime.poll_cancel": _poll_cancel,
    "realtime.poll_release": _poll_release,
    "realtime.ws_attach": _ws_attach,
    "realtime.ws_in": _ws_in,
    "realtime.ws_gone": _ws_gone,
    "realtime.ws_out": _ws_out,
    "realtime.ws_shut": _ws_shut,
}.items():
    node.on(_type, _handler)
