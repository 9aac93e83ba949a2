"""Polling requests and WebSockets that reached a process other than the session's owner.

No sticky sessions needed: a sid starts with its owner's key (member.py), so
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

All of it is per-process state, so it lives in one ``Relays`` that the
runtime owns; the consumers only ask it where a request goes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Any, Protocol

from .exchange import JSON, PollResponder
from .logs import throttled
from .member import DEFERRED, ClusterMember, key_of_sid
from .protocol.cluster import (
    Envelope,
    Poll,
    PollCancel,
    PollRelease,
    RelayAttach,
    RelayGone,
    RelayIn,
    RelayOut,
    RelayShut,
)
from .protocol.http import SESSION_ID_UNKNOWN
from .replies import PeerUnavailable
from .sessions import HARD_LIMIT, Endpoint, Session

logger = logging.getLogger("realtime.cluster")

# How long a WebSocket upgrade waits for the owner to accept its relay.
ATTACH_TIMEOUT = 5.0

SessionLookup = Callable[[str, str], Session | None]  # (path, sid) -> the session, if this process holds it


class RelayedSocket(Protocol):
    """A local WebSocket consumer piping its client to another process's session."""

    endpoint: Endpoint
    relayed_sid: str
    relay_id: str | None

    async def write(self, frame: str | bytes) -> None: ...
    async def shut(self, code: int = 1000) -> None: ...
    def buffered(self) -> int: ...
    def abort(self) -> None: ...


class Route(enum.Enum):
    """Where a request for a sid this process does not hold goes."""

    LOCAL = "local"  # the sid is ours (or there is no cluster): unknown here means unknown
    FORWARD = "forward"  # a live peer owns it
    NOWHERE = "nowhere"  # it names a process that is not a live peer: refused at once


def unknown_answer() -> dict[str, Any]:
    return {"status": 400, "body": SESSION_ID_UNKNOWN.body, "headers": [list(JSON)]}


class RemotePoll(PollResponder):
    """A polling request forwarded to us: its answer goes back through the layer."""

    def __init__(self, relays: Relays, request: Envelope) -> None:
        self.relays = relays
        self.request = request

    async def respond(self, status: int, body: bytes, *headers: tuple[bytes, bytes], compress: bool = False) -> None:
        if self.answered:
            return
        self.answered = True
        assert self.request.request_id is not None
        self.relays.held.pop(self.request.request_id, None)
        # compressed, if at all, by the process that holds the HTTP request: it has the Accept-Encoding
        answer = {"status": status, "body": body, "headers": [list(h) for h in headers], "compress": compress}
        await self.relays.member.reply(self.request, answer)


class RemoteWebSocket:
    """A WebSocket held by another process, as the owner's Session sees it (a FrameSink)."""

    def __init__(self, relays: Relays, relay: str, relay_id: str) -> None:
        self.relays = relays
        self.relay = relay
        self.relay_id = relay_id

    async def write(self, frame: str | bytes) -> None:
        await self.relays.member.send(self.relay, RelayOut(relay_id=self.relay_id, frame=frame))

    async def shut(self, code: int = 1000) -> None:
        await self.relays.member.send(self.relay, RelayShut(relay_id=self.relay_id, code=code))

    def buffered(self) -> int:
        """Nothing here: the relaying process holds the socket, and its own consumer caps what it buffers."""
        return 0

    def abort(self) -> None:
        """Ask the relaying process to drop the socket (the Session calls this from sync code)."""
        task = asyncio.get_running_loop().create_task(self.shut(1011))
        self.relays.aborts.add(task)
        task.add_done_callback(self.relays.aborts.discard)


class Relays:
    """What this process forwards and what was forwarded to it, both ends."""

    def __init__(self, member: ClusterMember, sessions: SessionLookup) -> None:
        self.member = member
        self.sessions = sessions
        self.held: dict[str, RemotePoll] = {}  # request id -> the responder of a forwarded GET (for its cancel)
        self.attached: dict[tuple[str, str], tuple[Session, RemoteWebSocket]] = {}  # (relay key, relay id)
        self.relays: dict[str, RelayedSocket] = {}  # relay id -> the local consumer relaying to another process
        self.forwarded: dict[str, str] = {}  # request id -> owner key, for the requests we forward and await
        self.none_forwarded = asyncio.Event()
        self.none_forwarded.set()
        self.aborts: set[asyncio.Task[None]] = set()  # shut() calls started by abort(), kept until done

    # -- at the owner ---------------------------------------------------------------
    async def poll(self, envelope: Envelope) -> Any:
        message = envelope.message
        assert isinstance(message, Poll) and envelope.request_id is not None
        session = self.sessions(message.path, message.sid)
        if session is None:
            return unknown_answer()
        logger.debug("sid=%s: %s forwarded by %s", session.sid, message.method, envelope.origin)
        responder = RemotePoll(self, envelope)
        self.held[envelope.request_id] = responder
        work = responder.get(session) if message.method == "GET" else responder.post(session, message.body)
        asyncio.get_running_loop().create_task(work)  # a POST may run a CONNECT: do not hold up the layer
        return DEFERRED

    async def poll_cancel(self, envelope: Envelope) -> None:
        assert isinstance(envelope.message, PollCancel)
        responder = self.held.pop(envelope.message.request_id, None)
        if responder is not None:
            await responder.cancelled()

    async def poll_release(self, envelope: Envelope) -> None:
        """The forwarding process is shutting down: answer its held GET now (a noop), keep the session."""
        assert isinstance(envelope.message, PollRelease)
        responder = self.held.get(envelope.message.request_id)
        if responder is not None and responder.held_by is not None:
            await responder.held_by.release_poll(responder)

    async def ws_attach(self, envelope: Envelope) -> Any:
        message = envelope.message
        assert isinstance(message, RelayAttach)
        session = self.sessions(message.path, message.sid)
        if session is None:
            return {"ok": False}
        sink = RemoteWebSocket(self, envelope.origin, message.relay_id)
        if not session.attach_probe(sink):
            return {"ok": False}
        self.attached[(sink.relay, sink.relay_id)] = (session, sink)
        logger.debug("sid=%s: WebSocket relayed by %s", session.sid, sink.relay)
        return {"ok": True}

    async def ws_in(self, envelope: Envelope) -> None:
        message = envelope.message
        assert isinstance(message, RelayIn)
        attached = self.attached.get((envelope.origin, message.relay_id))
        if attached is not None:
            session, sink = attached
            await session.receive_frame(message.frame, sink)

    async def ws_gone(self, envelope: Envelope) -> None:
        assert isinstance(envelope.message, RelayGone)
        attached = self.attached.pop((envelope.origin, envelope.message.relay_id), None)
        if attached is not None:
            session, sink = attached
            await session.websocket_closed(sink)

    # -- at the process that received the request ----------------------------------
    async def route(self, sid: str) -> Route:
        """Where to send a request for ``sid``; NOWHERE is refused by the caller with 400, logged here."""
        member = self.member
        key = key_of_sid(sid)
        if not member.clustered or key == member.key:
            return Route.LOCAL
        if member.healthy and await member.peers.await_live(key):
            return Route.FORWARD
        why = "is not a live peer" if member.healthy else "cannot be reached: the channel layer is down"
        member.warn_limited("unknown-owner", "sid=%s: its process %r %s; refused (Session ID unknown)", sid, key, why)
        return Route.NOWHERE

    async def forward_poll(
        self, path: str, sid: str, method: str, body: bytes, timeout: float, request_id: str
    ) -> dict[str, Any]:
        """Forward a polling request to the sid's owner; its answer (status, body, headers)."""
        owner = key_of_sid(sid)
        self.forwarded[request_id] = owner
        self.none_forwarded.clear()
        counts = self.member.metrics.forwarded
        counts["poll"] = counts.get("poll", 0) + 1
        try:
            answer: dict[str, Any] = await self.member.request(
                owner, Poll(path=path, sid=sid, method=method, body=body), timeout, request_id
            )
            return answer
        except PeerUnavailable as exc:
            self.member.warn_limited(
                "forward-failed", "sid=%s: forwarded %s refused (Session ID unknown): %s", sid, method, exc
            )
            return unknown_answer()
        except TimeoutError:
            logger.warning("sid=%s: owner %s did not answer a forwarded %s", sid, owner, method)
            return unknown_answer()
        finally:
            self.forwarded.pop(request_id, None)
            if not self.forwarded:
                self.none_forwarded.set()

    async def cancel_poll(self, sid: str, request_id: str) -> None:
        await self.member.send(key_of_sid(sid), PollCancel(request_id=request_id))

    async def attach(self, consumer: RelayedSocket, path: str, sid: str) -> str | None:
        """Attach a local WebSocket to the owner's session as its probe; the relay id, or None if refused."""
        relay_id = self.member.replies.new_id()
        self.relays[relay_id] = consumer
        counts = self.member.metrics.forwarded
        counts["websocket"] = counts.get("websocket", 0) + 1
        try:
            answer = await self.member.request(
                key_of_sid(sid), RelayAttach(path=path, sid=sid, relay_id=relay_id), ATTACH_TIMEOUT
            )
        except (TimeoutError, PeerUnavailable):
            answer = {"ok": False}
        if not isinstance(answer, dict) or not answer.get("ok"):
            self.relays.pop(relay_id, None)
            return None
        return relay_id

    async def relay_in(self, sid: str, relay_id: str, frame: str | bytes) -> None:
        await self.member.send(key_of_sid(sid), RelayIn(relay_id=relay_id, frame=frame))

    async def relay_gone(self, sid: str, relay_id: str) -> None:
        self.relays.pop(relay_id, None)
        await self.member.send(key_of_sid(sid), RelayGone(relay_id=relay_id))

    async def ws_out(self, envelope: Envelope) -> None:
        message = envelope.message
        assert isinstance(message, RelayOut)
        consumer = self.relays.get(message.relay_id)
        if consumer is None:
            return
        await consumer.write(message.frame)
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

    async def ws_shut(self, envelope: Envelope) -> None:
        message = envelope.message
        assert isinstance(message, RelayShut)
        consumer = self.relays.get(message.relay_id)
        if consumer is not None:
            await consumer.shut(message.code)

    # -- faults and shutdown ---------------------------------------------------------
    async def close_all(self) -> None:
        """End every relayed WebSocket, both ends, as a transport close: clients reconnect by themselves.

        Run when the layer goes down (no frame can cross any more) and at shutdown.
        """
        for relay_id, consumer in list(self.relays.items()):
            consumer.relay_id = None  # its disconnect then tells nobody: we do it here
            await self.relay_gone(consumer.relayed_sid, relay_id)
            await consumer.shut()
        for key, (session, sink) in list(self.attached.items()):
            self.attached.pop(key, None)
            await session.websocket_closed(sink)

    async def release_forwarded(self) -> None:
        """Shutting down: ask the owners to answer the GETs we forward now, so each client gets its answer."""
        for request_id, owner in list(self.forwarded.items()):
            await self.member.send(owner, PollRelease(request_id=request_id))

    async def forwarded_done(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until no forwarded request is outstanding; True if none is."""
        try:
            await asyncio.wait_for(self.none_forwarded.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def release_held_for(self, key: str) -> None:
        """A peer left or died: free the GETs it forwarded to us, or the client's next GET would be a second one."""
        for responder in list(self.held.values()):
            if responder.request.origin == key and responder.held_by is not None:
                await responder.held_by.release_poll(responder)
