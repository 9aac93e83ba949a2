"""The per-process runtime: every piece of mutable state this process has, in one object.

One ``Runtime`` is created at start-up (``RealtimeConfig.ready``) and owns the
session table (the endpoints and their sessions), the local room membership
(``Rooms``), the cluster member (``ClusterMember``), the relays of forwarded
transports (``Relays``) and one explicit dispatch table from channel-layer
message class to handler. Nothing registers itself when a module is
imported: the Socket.IO layer hands its handlers in when the runtime is built.

A broadcast goes down through it: the Socket.IO layer encodes once and calls
``broadcast``; the runtime publishes one message per room group and writes
the frames to its local members' sessions. Two runtimes over one in-memory
layer in one event loop behave as two processes of a cluster, which is how
the tests drive it without a server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .member import NODES_GROUP, ClusterMember, LayerHandler
from .memory import HeapTrimmer
from .metrics import Metrics
from .parsers import JSON, Parser
from .protocol.cluster import (
    Broadcast,
    Envelope,
    Message,
    Poll,
    PollCancel,
    PollRelease,
    RelayAttach,
    RelayGone,
    RelayIn,
    RelayOut,
    RelayShut,
)
from .proxies import ProxyWatch
from .recovery import Recovery
from .relays import Relays
from .rooms import Member, Rooms, deliver, group_name, owner_key
from .sessions import Endpoint, Outgoing, Session
from .tracing import Tracing

logger = logging.getLogger("realtime.node")

Dispatch = Mapping[type[Message], LayerHandler]


class Runtime:
    """This process: its sessions, its rooms, its place in the cluster, and who handles which message."""

    def __init__(
        self,
        handlers: Callable[[Runtime], Dispatch] | None = None,
        layer: Any = None,
        clustered: bool | None = None,
        parser: Parser = JSON,
        trim_interval: float | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        # one parser for the process (REALTIME["PARSER"]), and for the cluster: frames cross processes encoded
        self.parser = parser
        # what the process counts (realtime.metrics; Prometheus and the admin dashboard read it) and traces
        self.metrics = metrics or Metrics()
        self.tracing = tracing or Tracing()
        self.proxies = ProxyWatch()  # a proxy whose X-Forwarded-For the ASGI server ignores, said once
        self._on_serving: list[Callable[[], Any]] = []
        self.member = ClusterMember(
            self._handle,
            self._subscriptions,
            layer=layer,
            clustered=clustered,
            metrics=self.metrics,
            tracing=self.tracing,
        )
        self.rooms = Rooms()
        self.heap = HeapTrimmer(trim_interval)  # started with serving: a runtime in a test never trims
        # REALTIME["CONNECTION_STATE_RECOVERY"]: None when off (the Socket.IO layer sets it up)
        self.recovery: Recovery | None = None
        self.endpoints: dict[str, Endpoint] = {}
        self.relays = Relays(self.member, self.session)
        relays = self.relays
        self.dispatch: dict[type[Message], LayerHandler] = {
            Broadcast: self._broadcast_received,
            Poll: relays.poll,
            PollCancel: relays.poll_cancel,
            PollRelease: relays.poll_release,
            RelayAttach: relays.ws_attach,
            RelayIn: relays.ws_in,
            RelayGone: relays.ws_gone,
            RelayOut: relays.ws_out,
            RelayShut: relays.ws_shut,
            **(handlers(self) if handlers is not None else {}),
        }
        self.member.on_outage(relays.close_all)
        self.member.on_peer_gone(relays.release_held_for)

    async def start_serving(self) -> None:
        """The first request: join the cluster (when there is one), start trimming the heap, run the hooks."""
        await self.member.start(serving=True)
        self.heap.start()
        hooks, self._on_serving = self._on_serving, []
        for hook in hooks:
            hook()

    def on_serving(self, hook: Callable[[], Any]) -> None:
        """Call ``hook`` (on the event loop) when this process starts serving: the metrics exporter's flusher."""
        if self.member.serving:
            hook()
        else:
            self._on_serving.append(hook)

    @property
    def key(self) -> str:
        """This process's key: every sid and socket id it hands out starts with it."""
        return self.member.key

    # -- sessions -------------------------------------------------------------------
    def serve(self, endpoint: Endpoint, path: str) -> Endpoint:
        """Serve ``endpoint`` at ``path``: a request forwarded from another process finds it here."""
        endpoint.path = path
        endpoint.key = self.key
        endpoint.metrics = self.metrics
        self.endpoints[path] = endpoint
        return endpoint

    def session(self, path: str, sid: str) -> Session | None:
        endpoint = self.endpoints.get(path)
        return endpoint.sessions.get(sid) if endpoint is not None else None

    def sessions(self) -> list[Session]:
        return [s for endpoint in list(self.endpoints.values()) for s in list(endpoint.sessions.values())]

    # -- rooms ------------------------------------------------------------------------
    async def add(self, member: Member) -> None:
        """A socket connected: its namespace's group is joined with the first one here."""
        if self.rooms.add_member(member):
            await self.member.subscribe(group_name(member.namespace))

    async def remove(self, member: Member) -> None:
        """A socket left: out of every room, and out of the groups nobody here needs any more."""
        emptied, namespace_empty = self.rooms.remove_member(member)
        for room in emptied:
            await self._unsubscribe(member.namespace, room)
        if namespace_empty:
            await self.member.unsubscribe(group_name(member.namespace))

    async def join(self, member: Member, room: str) -> None:
        if self.rooms.join(member, room) and owner_key(room) != self.key:
            await self.member.subscribe(group_name(member.namespace, room))

    async def leave(self, member: Member, room: str) -> None:
        if self.rooms.leave(member, room):
            await self._unsubscribe(member.namespace, room)

    async def _unsubscribe(self, namespace: str, room: str) -> None:
        """The last local member left ``room``: out of its group (a socket id's own room never had one here)."""
        if owner_key(room) != self.key:
            await self.member.unsubscribe(group_name(namespace, room))

    def _subscriptions(self) -> list[str]:
        return self.rooms.groups(self.key)

    # -- broadcasts -------------------------------------------------------------------
    async def broadcast(self, message: Broadcast, outgoing: Outgoing, local: bool = False) -> bool:
        """Deliver here and publish to the other processes; False if some could not be published.

        Other processes first: their fan-out then overlaps ours instead of following it.
        """
        published = True
        if not local and self.member.clustered:
            published = await self._publish(message)
            await asyncio.sleep(0)  # let the sender task put it on the wire
        targets = self.rooms.select(message.namespace, message.rooms, message.except_rooms, message.except_ids)
        await self._deliver(targets, message, outgoing)
        return published

    async def _deliver(
        self, targets: list[Member], message: Broadcast, outgoing: Outgoing, parent: str | None = None
    ) -> None:
        """Write a broadcast to this process's members: counted, and a span when tracing (``parent``: remote)."""
        label = self.metrics.namespace_label(message.namespace)
        with self.tracing.span(f"realtime deliver {label}", "consumer", {"realtime.namespace": label}, parent) as span:
            sent, dropped = await deliver(targets, outgoing, message.volatile, message.event, message.args)
            span.set_attribute("realtime.recipients", sent)
        metrics = self.metrics
        if sent:
            metrics.deliveries[label] = metrics.deliveries.get(label, 0) + sent
        if dropped:
            metrics.volatile_dropped[label] = metrics.volatile_dropped.get(label, 0) + dropped

    async def _publish(self, message: Broadcast) -> bool:
        """One message per room group (a socket's own room straight to its process); False if any was lost."""
        member = self.member
        if not message.rooms:
            return await member.publish(group_name(message.namespace), message)
        published = True
        for room in dict.fromkeys(message.rooms):
            routed = replace(message, via=room)
            key = owner_key(room)
            if key is not None and key != self.key:
                published &= await member.send(key, routed)  # its holder does not subscribe the group
            published &= await member.publish(group_name(message.namespace, room), routed)
        return published

    async def _broadcast_received(self, envelope: Envelope) -> None:
        """A broadcast from another process: serve the local members it reaches through ``via``."""
        message = envelope.message
        assert isinstance(message, Broadcast)
        if message.via is None:
            targets = self.rooms.select(message.namespace, (), message.except_rooms, message.except_ids)
        else:
            targets = self.rooms.first_via(
                message.namespace, message.via, message.rooms, message.except_rooms, message.except_ids
            )
        outgoing = Outgoing.of(message.frames, message.compress, message.offset)
        await self._deliver(targets, message, outgoing, envelope.trace)

    # -- what operators read: gauges and readiness -------------------------------------------
    def ready(self, requires_layer: bool = False) -> tuple[bool, str]:
        """(ready, why): not while draining after SIGTERM, nor (``requires_layer``) while the layer is down."""
        member = self.member
        if member.draining:
            return False, "draining"
        if requires_layer and member.clustered and not member.healthy:
            return False, "channel layer unreachable"
        return True, "ready"

    def gauges(self, requires_layer: bool = False) -> dict[str, dict[tuple[str, ...], float]]:
        """Every gauge of realtime.metrics.CATALOGUE, read from the live state (at scrape time, not per event)."""
        sessions: dict[tuple[str, ...], float] = {}
        for session in self.sessions():
            by_kind: tuple[str, ...] = (session.transport.value, str(session.protocol.version))
            sessions[by_kind] = sessions.get(by_kind, 0) + 1
        sockets: dict[tuple[str, ...], float] = {}
        label = self.metrics.namespace_label
        for socket in self.rooms.members():
            on = socket.session
            by_kind = (label(socket.namespace), on.transport.value, str(on.protocol.version))
            sockets[by_kind] = sockets.get(by_kind, 0) + 1
        rooms: dict[tuple[str, ...], float] = {}
        for namespace in self.rooms.namespaces():
            by_kind = (label(namespace),)
            rooms[by_kind] = rooms.get(by_kind, 0) + len(self.rooms.counts(namespace))
        member = self.member
        return {
            "realtime_sessions": sessions,
            "realtime_sockets": sockets,
            "realtime_rooms": rooms,
            "realtime_ready": {(): float(self.ready(requires_layer)[0])},
            "realtime_untrusted_proxy": {(): float(self.proxies.untrusted is not None)},
            "realtime_cluster_peers": {(): float(len(member.peers.live()))},
            "realtime_cluster_layer_up": {(): float(member.healthy)},
            "realtime_cluster_outbox_bytes": {(): float(member.queued_bytes)},
            "realtime_cluster_outbox_messages": {(): float(member.queued_messages)},
        }

    # -- cluster ----------------------------------------------------------------------
    async def ask_all(self, message: Message, timeout: float) -> list[Any]:
        """Ask every serving process, this one included; the answers that came within ``timeout``."""
        return await self.member.request_all(message, timeout)

    async def ask_every(self, message: Message, timeout: float, include_self: bool = True) -> tuple[list[Any], int]:
        """``ask_all``, and how many live processes did not answer in time (their share is missing)."""
        return await self.member.request_every(message, timeout, include_self)

    async def tell_all(self, message: Message) -> bool:
        """Tell every other serving process (fire and forget); False when it could not be sent."""
        if not self.member.clustered:
            return True
        return await self.member.publish(NODES_GROUP, message)

    async def _handle(self, envelope: Envelope) -> Any:
        handler = self.dispatch.get(type(envelope.message))
        if handler is None:
            logger.warning("no handler for channel-layer message %r", envelope.message.TYPE)
            return None
        return await handler(envelope)


# -- the one runtime of this process --------------------------------------------------

_current: Runtime | None = None


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` this process's (the app's ready() does, once)."""
    global _current
    _current = runtime
    return runtime


def current() -> Runtime:
    """This process's runtime; code that holds a socket or a session uses theirs instead."""
    if _current is None:
        raise ImproperlyConfigured("realtime has no runtime: is 'realtime' in INSTALLED_APPS?")
    return _current
