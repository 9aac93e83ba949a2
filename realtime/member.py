"""This process as a member of the cluster: its channel, its peers, its requests, its outbox.

With the in-memory channel layer there is only ever one process, so nothing
crosses the layer: broadcasts are delivered locally and groups are not used
(the in-memory layer's group fan-out drops messages when a channel is full
and slows down with many channels).

With channels-redis every process that serves sockets listens on a channel
named after its ``key`` (``realtime.node.<key>``). Engine.IO sids start with
the key, so any process can forward a polling request or a WebSocket to the
process that owns the session without a lookup. Serving processes heartbeat
on the ``realtime.nodes`` group; each keeps the table of its live peers, and a
peer silent for three heartbeat intervals is dead. Cluster-wide requests
(fetch_sockets and friends) go to that group and wait for the live peers'
answers, or for their timeout, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import secrets
import socket as _socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from .conf import realtime_settings
from .logs import throttled
from .metrics import Metrics
from .outbox import Outbox, Seen
from .peers import KEY_LENGTH, Peers
from .protocol.cluster import (
    BroadcastAck,
    Envelope,
    Goodbye,
    Heartbeat,
    MalformedMessage,
    Message,
    PeerInfo,
    Reply,
    ServerEvent,
    decode,
    encode,
)
from .publisher import LAYER_TIMEOUT, Publisher, Send, short_type
from .replies import Failure, PeerUnavailable, Replies
from .tracing import Tracing

logger = logging.getLogger("realtime.node")

NODES_GROUP = "realtime.nodes"

LayerHandler = Callable[[Envelope], Awaitable[Any]]
OutageHook = Callable[[], Coroutine[Any, Any, None]]
PeerGoneHook = Callable[[str], Coroutine[Any, Any, None]]
Subscriptions = Callable[[], list[str]]

# Outgoing messages a serving process holds while the layer is slow or away: a count cap beside
# the byte and age caps (REALTIME["CLUSTER_QUEUE_BYTES"], ["CLUSTER_QUEUE_AGE"]), so a flood of
# tiny messages is bounded too.
OUTBOX_LIMIT = 100_000
# During an outage the layer is tried this often (seconds): what waits in the outbox leaves within
# that of Redis's return, plus channels-redis's own second before its receive loop reads again.
OUTAGE_RETRY = 0.25
# Rate-limited warnings (warn_limited): at most one line per kind in this many seconds.
WARN_INTERVAL = 10.0
# What channels-redis logs, once a second, while Redis is unreachable (pinned 4.3.x).
LAYER_ERROR_MESSAGES = frozenset({"Unexpected exception in receive task"})

# A request handler returns this when it will answer later, with ``ClusterMember.reply``.
DEFERRED = object()
# Requests whose handling may wait: a server-side handler is user code, a broadcast's emit_with_ack
# waits for clients' acks. Handled inline, one would hold up every message behind it (forwarded
# polls, relayed frames, broadcasts) for as long (measured: a 3 s handler failed the next test's
# forwarded polling). The others are handled inline, in order (a poll before its cancel).
WAITING_REQUESTS = (ServerEvent, BroadcastAck)


def channel_of(key: str) -> str:
    return f"realtime.node.{key}"


def key_of_sid(sid: str) -> str:
    return sid[:KEY_LENGTH]


class LayerErrorFilter(logging.Filter):
    """Turns channels-redis's 'receive task' tracebacks into the member's own WARNING.

    channels-redis logs that traceback every second while Redis is away. It
    also means this process's subscriptions are gone until its connection is
    back, so the member is told (``on_error``): it says ``channel layer
    unreachable`` once, keeps what it sends in the outbox, and subscribes
    afresh when the layer answers. The library's lines are counted, not shown;
    the member's recovery line gives the count, and ``reset()`` starts a new outage.
    """

    def __init__(self) -> None:
        super().__init__("realtime.layer-errors")
        self.suppressed = 0
        self.on_error: Callable[[Exception], None] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in LAYER_ERROR_MESSAGES:
            return True
        self.suppressed += 1
        logger.debug("channel-layer receive error suppressed (%d this outage)", self.suppressed)
        if self.on_error is not None:
            error = record.exc_info[1] if record.exc_info else None
            self.on_error(error if isinstance(error, Exception) else ConnectionError(record.getMessage()))
        return False

    def reset(self) -> int:
        """A new outage may be counted; how many lines the last one suppressed."""
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed


class ClusterMember:
    """One per runtime: what this process needs to be one of several on a shared channel layer.

    The runtime hands it ``handle`` (called with every message for the layers
    above: the dispatch table is the runtime's) and ``subscriptions`` (the
    groups its rooms need, subscribed afresh after an outage): the member
    itself knows nothing of rooms, sessions or sockets.
    """

    def __init__(
        self,
        handle: LayerHandler,
        subscriptions: Subscriptions,
        layer: Any = None,
        clustered: bool | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.key = secrets.token_hex(KEY_LENGTH // 2)
        self.host = _socket.gethostname()
        self.pid = os.getpid()
        self.started = time.time()
        self.id = f"{self.host}:{self.pid}:{self.key}"
        self.channel = channel_of(self.key)
        self.handle = handle
        self.subscriptions = subscriptions
        self._layer = layer  # None: the project's default channel layer
        self._clustered = clustered  # None: clustered unless the layer is the in-memory one
        self.peers = Peers(self.key)
        self.serving = False
        self.draining = False  # SIGTERM: no new handshakes, peers told we are leaving
        self.layer_errors = LayerErrorFilter()
        self.replies = Replies(self.key)
        self._tasks: list[asyncio.Task[None]] = []
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._hooks: list[OutageHook] = []
        self._gone_hooks: list[PeerGoneHook] = []
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._lock: asyncio.Lock | None = None
        self._healthy = True
        self._publisher: Publisher | None = None  # serving processes only: the others send at once
        self._seq = itertools.count(1)  # durable messages' numbers (Envelope.seq)
        self._seen = Seen()  # the peers' durable messages already handled
        self._dropped = 0  # cross-process messages given up during the current outage
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned: dict[str, tuple[float, int]] = {}
        self.metrics = metrics or Metrics()
        self.tracing = tracing or Tracing()

    # -- what the metrics read ------------------------------------------------------
    @property
    def queued_bytes(self) -> int:
        return self._publisher.outbox.bytes if self._publisher is not None else 0

    @property
    def queued_messages(self) -> int:
        return len(self._publisher.outbox) if self._publisher is not None else 0

    def _count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def _lost(self, reason: str, count: int = 1) -> None:
        """Cross-process messages that will never leave: the outage's summary line and the metrics count them."""
        self._dropped += count
        dropped = self.metrics.dropped
        dropped[reason] = dropped.get(reason, 0) + count

    # -- layer ------------------------------------------------------------------
    @property
    def layer(self) -> Any:
        return self._layer if self._layer is not None else get_channel_layer()

    @property
    def clustered(self) -> bool:
        """True when other processes may share the channel layer (or other runtimes, in a test)."""
        if self._clustered is not None:
            return self._clustered
        layer = self.layer
        return layer is not None and not isinstance(layer, InMemoryChannelLayer)

    @property
    def healthy(self) -> bool:
        """False from the first failed channel-layer call until a heartbeat gets through again."""
        return self._healthy

    def on_outage(self, hook: OutageHook) -> None:
        """Run ``hook`` when the layer becomes unreachable (forwarding closes its relays)."""
        self._hooks.append(hook)

    def on_peer_gone(self, hook: PeerGoneHook) -> None:
        """Run ``hook(key)`` when a peer leaves or is found dead (forwarding frees what it held for it)."""
        self._gone_hooks.append(hook)

    def _spawn_hooks(self, calls: list[Coroutine[Any, Any, None]]) -> None:
        loop = asyncio.get_running_loop()
        for call in calls:
            task = loop.create_task(call)
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    def info(self) -> PeerInfo:
        return PeerInfo(id=self.id, key=self.key, host=self.host, pid=self.pid, started=self.started)

    def install_log_filter(self) -> None:
        """Called by the app's ready(): channels-redis's receive errors become this member's outage."""
        target = logging.getLogger("channels_redis.pubsub")
        if self.layer_errors not in target.filters:
            target.addFilter(self.layer_errors)
        self.layer_errors.on_error = self._receive_failed

    def _receive_failed(self, exc: Exception) -> None:
        """channels-redis lost its connection: our subscriptions went with it (called from its task)."""
        loop = self._loop
        if loop is None or not self.serving:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._unhealthy(exc)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._unhealthy, exc)

    # -- lifecycle ----------------------------------------------------------------
    async def start(self, serving: bool = False) -> None:
        """Listen on this process's channel; ``serving`` also joins the peers and heartbeats.

        The first request starts the process's tasks; each gets an empty context of its own, so they
        carry nothing of that request's (an OpenTelemetry span current there would otherwise be the
        parent of every delivery this process ever makes)."""
        if not self.clustered:
            self.serving = self.serving or serving
            return
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if not self._tasks:
                # channels-redis's pub/sub layer subscribes a channel inside receive() and refuses
                # group_add() before that; subscribe our fixed-name channel up front (pinned 4.3.x)
                subscribe = getattr(self.layer, "_subscribe_to_channel", None)
                if subscribe is not None:
                    await subscribe(self.channel)
                loop = asyncio.get_running_loop()
                self._tasks.append(loop.create_task(self._receive(), context=contextvars.Context()))
            if serving and not self.serving:
                settings = realtime_settings()
                self.peers.interval = settings["HEARTBEAT_INTERVAL"] / 1000
                self.serving = True
                await self.layer.group_add(NODES_GROUP, self.channel)
                self.peers.listening()
                await self._heartbeat(hello=True)  # the peers answer at once: we know them in one round trip
                outbox: Outbox[Send] = Outbox(
                    settings["CLUSTER_QUEUE_BYTES"], OUTBOX_LIMIT, settings["CLUSTER_QUEUE_AGE"] / 1000
                )
                self._publisher = Publisher(outbox, self.metrics, self._lost, self._unhealthy, self.warn_limited)
                loop = self._loop = asyncio.get_running_loop()
                self._heartbeat_task = loop.create_task(self._heartbeats(), context=contextvars.Context())
                self._tasks += [
                    self._heartbeat_task,
                    loop.create_task(self._publisher.run(), context=contextvars.Context()),
                ]

    async def leave_cluster(self) -> None:
        """Shutting down: stop heartbeating and say goodbye, so peers refuse our sids at once."""
        self.draining = True
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        if self.serving and self.clustered:
            await self.publish(NODES_GROUP, Goodbye(key=self.key, id=self.id))

    async def stop(self) -> None:
        """Stop listening, heartbeating and sending (a test's runtime; a server process just exits).

        Cancelled again until each task is done: on Python 3.11 ``wait_for``
        swallows a cancellation that lands as the awaited call completes.
        """
        tasks = [task for task in self._tasks if not task.done()]
        while tasks:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.1)
            tasks = [task for task in tasks if not task.done()]
        self._tasks.clear()

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for queued messages to leave; True if they all did."""
        return self._publisher is None or await self._publisher.flush(timeout)

    async def subscribe(self, group: str) -> None:
        """Join ``group`` (the runtime asks once, when its first local member joins the room)."""
        if not self.clustered:
            return
        await self.start()
        if not self._healthy:
            return  # subscribed when the layer is back (_resubscribe): a CONNECT never waits on Redis
        try:
            await asyncio.wait_for(self.layer.group_add(group, self.channel), LAYER_TIMEOUT)
        except Exception as exc:
            self._unhealthy(exc)

    async def unsubscribe(self, group: str) -> None:
        if not self.clustered or not self._healthy:
            return
        try:
            await asyncio.wait_for(self.layer.group_discard(group, self.channel), LAYER_TIMEOUT)
        except Exception as exc:
            self._unhealthy(exc)

    # -- sending ------------------------------------------------------------------
    async def publish(self, group: str, message: Message, request_id: str | None = None) -> bool:
        """Send to every process in ``group`` (this one included: receivers skip their own).

        False when the message will not be sent (see ``_out``): it is lost, and counted.
        """
        if not self.clustered:
            return True
        return await self._out(self.layer.group_send, group, *self._wire(message, request_id))

    async def send(self, key: str, message: Message, request_id: str | None = None) -> bool:
        """Send to the process whose key is ``key``; False when the message is lost (see publish)."""
        return await self._out(self.layer.send, channel_of(key), *self._wire(message, request_id))

    def _wire(self, message: Message, request_id: str | None) -> tuple[dict[str, Any], bool]:
        """The wire dict, and whether it is durable: kept through an outage, numbered for the receivers' check."""
        reply_to = self.key if request_id is not None else None
        durable = request_id is None and message.durable
        seq = next(self._seq) if durable else None
        # with tracing on, the receiver's span joins the trace of whatever sent this (a view, a task, a handler)
        return encode(Envelope(self.key, message, request_id, reply_to, self.tracing.traceparent(), seq)), durable

    async def _out(
        self, method: Callable[..., Awaitable[None]], target: str, message: dict[str, Any], durable: bool
    ) -> bool:
        """A serving process queues outgoing messages in its outbox, for one sender task.

        The caller (a handler, a broadcast) never waits on Redis, and messages
        leave in the order they were sent. While the layer is away a durable
        message still queues, to be published when it is back; anything else is
        refused at once (False: a forwarded request fails fast, a relay closes)
        and counted. The outbox is capped in bytes (CLUSTER_QUEUE_BYTES), age
        (CLUSTER_QUEUE_AGE) and messages (OUTBOX_LIMIT): a message that does not
        fit is dropped, counted, and a WARNING says so (rate-limited). A process
        that serves nothing (a Celery worker, a command) sends at once: its event
        loop may not outlive the call, and errors reach it.
        """
        publisher = self._publisher
        if publisher is None:
            await method(target, message)
            self._count(self.metrics.published, short_type(message))
            return True
        return publisher.put((method, target, message), durable, self._healthy)

    def warn_limited(self, kind: str, message: str, *args: Any) -> None:
        """One WARNING per ``kind`` per WARN_INTERVAL; the next line says how many were left out.

        Local on purpose, so it can give way to the project's shared rate-limited logger.
        """
        now = time.monotonic()
        last, skipped = self._warned.get(kind, (-WARN_INTERVAL, 0))
        if now - last < WARN_INTERVAL:
            self._warned[kind] = (last, skipped + 1)
            return
        self._warned[kind] = (now, 0)
        if skipped:
            message, args = f"{message} (and %d more in the last %.0f s)", (*args, skipped, now - last)
        logger.warning(message, *args)

    # -- requests -----------------------------------------------------------------
    async def request_all(self, message: Message, timeout: float) -> list[Any]:
        """Ask every serving process (this one directly); the answers that came within ``timeout``."""
        answers, _ = await self.request_every(message, timeout)
        return answers

    async def request_every(self, message: Message, timeout: float, include_self: bool = True) -> tuple[list[Any], int]:
        """The answers of every serving process (this one too unless ``include_self`` is False) within
        ``timeout``, and how many of the live peers did not answer (0 when this process does not
        serve: it knows no peers, and takes what comes)."""
        answers = []
        here = Envelope(self.key, message)
        if not self.clustered:
            return ([await self.handle(here)] if include_self else []), 0
        await self.start()
        request_id, queue = self.replies.open()
        expected = set(self.peers.live()) if self.serving else None
        try:
            sent = await self.publish(NODES_GROUP, message, request_id)
            if self.serving and include_self:
                answers.append(await self.handle(here))
            deadline = asyncio.get_running_loop().time() + timeout
            while sent and (expected is None or expected):
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    reply = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                if not isinstance(reply, Envelope) or not isinstance(reply.message, Reply):
                    break
                answers.append(reply.message.body)
                if expected is not None:
                    expected.discard(reply.origin)
        finally:
            self.replies.close(request_id)
        return answers, len(expected or ())

    async def request(self, key: str, message: Message, timeout: float, request_id: str | None = None) -> Any:
        """Ask one process; its answer, TimeoutError, or PeerUnavailable as soon as it cannot come."""
        await self.start()
        if self.serving and not await self.peers.await_live(key):
            raise PeerUnavailable("the process is not a live peer")  # it would never answer: say so now
        request_id, queue = self.replies.open(request_id, key)
        try:
            if not await self.send(key, message, request_id):
                raise PeerUnavailable("the channel layer is unreachable")
            reply = await asyncio.wait_for(queue.get(), timeout)
        finally:
            self.replies.close(request_id, key)
        if not isinstance(reply, Envelope) or not isinstance(reply.message, Reply):
            raise PeerUnavailable(reply.reason if isinstance(reply, Failure) else "no reply")
        return reply.message.body

    # -- receiving ----------------------------------------------------------------
    async def _receive(self) -> None:
        layer, channel = self.layer, self.channel
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._unhealthy(exc)
                await asyncio.sleep(0.5)
                continue
            await self._dispatch(message)

    async def _dispatch(self, raw: Any) -> None:
        """One message off the layer: the member's own (replies, heartbeats, goodbyes), or the runtime's."""
        try:
            envelope = decode(raw)
        except MalformedMessage as exc:
            throttled(logger, logging.WARNING, "malformed layer message", "channel-layer message dropped: %s", exc)
            return
        message = envelope.message
        self._count(self.metrics.received, message.TYPE.removeprefix("realtime."))
        if isinstance(message, Reply):
            self.replies.deliver(message.request_id, envelope)
            return
        if isinstance(message, Heartbeat):
            self.peers.saw(message.info)
            key = message.info.key
            if message.hello and self.serving and not self.draining and key != self.key:
                self._spawn_hooks([self._answer_hello(key)])
            if message.hello or message.answer:
                self.peers.heard_again(key)  # it receives again: what we kept may reach it
                self._maybe_open()
            return
        if isinstance(message, Goodbye):
            self._peer_left(message.key)
            return
        if envelope.origin == self.key:
            return
        if envelope.seq is not None and not self._seen.first_time(envelope.origin, envelope.seq):
            self.metrics.duplicates += 1  # a publish retried after a timeout landed twice
            return
        if envelope.reply_to is not None and isinstance(message, WAITING_REQUESTS):
            # answered in a task of its own, so this loop never holds up what comes after it; its asker
            # awaits the answer before anything that depends on it, so no order is lost
            self._spawn_hooks([self._answer_request(envelope)])
            return
        body = await self._handle(envelope)
        if envelope.reply_to is not None and body is not DEFERRED:
            await self.reply(envelope, body)

    async def _handle(self, envelope: Envelope) -> Any:
        message = envelope.message
        try:
            return await self.handle(envelope)
        except Exception:
            throttled(logger, logging.ERROR, f"layer {message.TYPE}", "handling %s failed", message.TYPE, exc_info=True)
            return DEFERRED  # nothing to answer: the asker's timeout (or the peer's death) ends its wait

    async def _answer_request(self, envelope: Envelope) -> None:
        body = await self._handle(envelope)
        if body is not DEFERRED:
            await self.reply(envelope, body)

    async def reply(self, request: Envelope, body: Any) -> None:
        """Answer a request received from another process."""
        assert request.reply_to is not None and request.request_id is not None
        await self.send(request.reply_to, Reply(request_id=request.request_id, body=body))

    # -- peers ----------------------------------------------------------------------
    def _heartbeat_message(self, hello: bool = False) -> Heartbeat:
        return Heartbeat(info=self.info(), hello=hello)

    async def _answer_hello(self, key: str) -> None:
        """Answer a peer's hello at once, past our outbox: it may be holding its own until we do."""
        message = encode(Envelope(self.key, Heartbeat(info=self.info(), hello=False, answer=True)))
        try:
            await asyncio.wait_for(self.layer.send(channel_of(key), message), LAYER_TIMEOUT)
        except Exception as exc:
            self._unhealthy(exc)
        else:
            self._count(self.metrics.published, "heartbeat")

    async def _heartbeat(self, hello: bool = False) -> None:
        message = encode(Envelope(self.key, self._heartbeat_message(hello)))
        await asyncio.wait_for(self.layer.group_send(NODES_GROUP, message), LAYER_TIMEOUT)
        self._count(self.metrics.published, "heartbeat")

    async def _heartbeats(self) -> None:
        while True:
            # during an outage, try again sooner: recovery is noticed within OUTAGE_RETRY
            interval = self.peers.interval
            await asyncio.sleep(interval if self._healthy else min(interval, OUTAGE_RETRY))
            try:
                await self._heartbeat()
            except Exception as exc:
                self._unhealthy(exc)
            else:
                await self._healthy_again()
            self._forget_dead_peers()
            self._maybe_open()

    def _unhealthy(self, exc: BaseException) -> None:
        """The first failure of an outage: one line, and nothing waits on the layer any more."""
        self.metrics.layer_errors += 1
        if not self._healthy:
            return
        self._healthy = False
        self.peers.outage_began()
        logger.warning(
            "channel layer unreachable (%s: %s); local traffic goes on, cross-process messages wait in "
            "the outbox (CLUSTER_QUEUE_BYTES, CLUSTER_QUEUE_AGE), forwarded requests are refused, until it is back",
            type(exc).__name__,
            exc,
        )
        if self._publisher is not None:
            self._publisher.hold()
        self.replies.fail("the channel layer is unreachable")
        self._spawn_hooks([hook() for hook in self._hooks])

    async def _healthy_again(self) -> None:
        """After an outage: subscribe afresh, then publish what was kept once the peers listen again."""
        if self._healthy:
            return
        try:
            await asyncio.wait_for(self._resubscribe(), LAYER_TIMEOUT)
        except Exception as exc:
            self.warn_limited("resubscribe", "channel layer back but resubscribing failed (%s); retrying", exc)
            return
        self._healthy = True
        now = self.peers.listening()
        logger.warning(
            "channel layer reachable again; cross-process traffic resumes "
            "(%d cross-process messages kept to publish now, %d lost during the outage, "
            "%d channel-layer errors not logged)",
            self.queued_messages,
            self._dropped,
            self.layer_errors.reset(),
        )
        self._dropped = 0
        self.metrics.reconnects += 1
        # Redis pub/sub keeps nothing: a peer whose subscriptions are not back yet would miss what
        # we publish now. Each answers our hello once it receives again (or says hello itself).
        self.peers.outage_ended(now)
        try:
            await self._heartbeat(hello=True)
        except Exception as exc:
            self._unhealthy(exc)
            return
        self._maybe_open()

    def _maybe_open(self) -> None:
        """Let the outbox flow again once the layer answers and every awaited peer listens (or timed out)."""
        publisher = self._publisher
        if self._healthy and publisher is not None and publisher.held and self.peers.all_listening():
            publisher.release()

    async def _resubscribe(self) -> None:
        """Subscribe again to everything, without unsubscribing first.

        A Redis restart forgets every subscription while the pub/sub layer believes
        it still has them; unsubscribing and subscribing again, group by group,
        would open a window in which a peer's message is missed. SUBSCRIBE is
        idempotent, so each of the layer's connections subscribes again to all its
        channels at once (pinned channels-redis 4.3: its private shards), and the
        groups joined while the layer was away are added. ``NODES_GROUP`` comes
        last: a peer that hears our hello there hears everything else too.
        """
        layer = self.layer
        loop_layer = layer._get_layer() if hasattr(layer, "_get_layer") else layer
        for shard in getattr(loop_layer, "_shards", ()):
            async with shard._lock:
                channels = sorted(shard._subscribed_to)
                if shard._pubsub is not None and channels:
                    await shard._pubsub.subscribe(*channels)
        for group in [*self.subscriptions(), NODES_GROUP] if self.serving else self.subscriptions():
            await layer.group_add(group, self.channel)

    def _peer_left(self, key: str) -> None:
        self.peers.left(key)
        self._peer_gone(key, "the process left the cluster")

    def _forget_dead_peers(self) -> None:
        for key in self.peers.forget_dead():
            self._peer_gone(key, "the process is dead")

    def _peer_gone(self, key: str, why: str) -> None:
        self.replies.fail(why, key)
        self._spawn_hooks([hook(key) for hook in self._gone_hooks])
