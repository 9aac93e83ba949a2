"""This process as a member of the cluster: its channel, its groups, its peers, its requests.

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
import itertools
import logging
import os
import secrets
import socket as _socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger("realtime.node")

NODES_GROUP = "realtime.nodes"
KEY_LENGTH = 6

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

# Outgoing messages a serving process holds while the layer is slow or down; older ones are dropped.
OUTBOX_LIMIT = 10_000

# A request handler returns this when it will answer later, with ``node.reply``.
DEFERRED = object()


def channel_of(key: str) -> str:
    return f"realtime.node.{key}"


def key_of_sid(sid: str) -> str:
    return sid[:KEY_LENGTH]


class Node:
    def __init__(self) -> None:
        self.key = secrets.token_hex(KEY_LENGTH // 2)
        self.host = _socket.gethostname()
        self.pid = os.getpid()
        self.started = time.time()
        self.id = f"{self.host}:{self.pid}:{self.key}"
        self.channel = channel_of(self.key)
        self.groups: set[str] = set()
        self.handlers: dict[str, Handler] = {}
        self.peers: dict[str, dict[str, Any]] = {}
        self.heartbeat_interval = 5.0
        self.serving = False
        self._ids = itertools.count()
        self._replies: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._lock: asyncio.Lock | None = None
        self._healthy = True
        self._outbox: asyncio.Queue[tuple[Callable[..., Awaitable[None]], str, dict[str, Any]]] | None = None
        self._dropped = 0

    # -- layer ------------------------------------------------------------------
    @property
    def layer(self) -> Any:
        return get_channel_layer()

    @property
    def clustered(self) -> bool:
        """True when other processes may share the channel layer."""
        layer = self.layer
        return layer is not None and not isinstance(layer, InMemoryChannelLayer)

    def on(self, message_type: str, handler: Handler) -> None:
        """Handle ``message_type``; for a request, the return value is the reply's body."""
        self.handlers[message_type] = handler

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "host": self.host, "pid": self.pid, "started": self.started}

    # -- lifecycle ----------------------------------------------------------------
    async def start(self, serving: bool = False) -> None:
        """Listen on this process's channel; ``serving`` also joins the peers and heartbeats."""
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
                self._tasks.append(loop.create_task(self._receive()))
            if serving and not self.serving:
                from .conf import realtime_settings

                self.heartbeat_interval = realtime_settings()["HEARTBEAT_INTERVAL"] / 1000
                self.serving = True
                self.groups.add(NODES_GROUP)
                await self.layer.group_add(NODES_GROUP, self.channel)
                await self._heartbeat()
                self._outbox = asyncio.Queue()
                loop = asyncio.get_running_loop()
                self._tasks += [loop.create_task(self._heartbeats()), loop.create_task(self._send_loop())]

    async def join(self, group: str) -> None:
        if not self.clustered or group in self.groups:
            return
        await self.start()
        self.groups.add(group)
        try:
            await self.layer.group_add(group, self.channel)
        except Exception as exc:  # subscribed again when the layer is back
            self._unhealthy(exc)

    async def leave(self, group: str) -> None:
        if group not in self.groups:
            return
        self.groups.discard(group)
        try:
            await self.layer.group_discard(group, self.channel)
        except Exception as exc:
            self._unhealthy(exc)

    # -- sending ------------------------------------------------------------------
    async def publish(self, group: str, message: dict[str, Any]) -> None:
        """Send to every process in ``group`` (this one included: receivers skip their own)."""
        if self.clustered:
            await self._out(self.layer.group_send, group, {**message, "origin": self.key})

    async def send(self, key: str, message: dict[str, Any]) -> None:
        """Send to the process whose key is ``key``."""
        await self._out(self.layer.send, channel_of(key), {**message, "origin": self.key})

    async def _out(self, method: Callable[..., Awaitable[None]], target: str, message: dict[str, Any]) -> None:
        """A serving process queues outgoing messages for one sender task.

        The caller (a handler, a broadcast) never waits on Redis, nor fails
        when it is down, and messages leave in the order they were sent. A
        process that serves nothing (a Celery worker, a command) sends at once:
        its event loop may not outlive the call.
        """
        if self._outbox is None:
            await method(target, message)
            return
        if self._outbox.qsize() >= OUTBOX_LIMIT:
            self._outbox.get_nowait()
            self._dropped += 1
        self._outbox.put_nowait((method, target, message))

    async def _send_loop(self) -> None:
        assert self._outbox is not None
        while True:
            method, target, message = await self._outbox.get()
            try:
                await method(target, message)
            except Exception as exc:
                self._dropped += 1
                self._unhealthy(exc)
            else:
                await self._healthy_again()

    # -- requests -----------------------------------------------------------------
    def live_peers(self) -> dict[str, dict[str, Any]]:
        horizon = time.monotonic() - 3 * self.heartbeat_interval
        return {key: info for key, info in self.peers.items() if info["seen"] >= horizon}

    async def request_all(self, message: dict[str, Any], timeout: float) -> list[Any]:
        """Ask every serving process (this one directly); the answers that came within ``timeout``."""
        answers = []
        handler = self.handlers[message["type"]]
        if not self.clustered:
            return [await handler(message)]
        await self.start()
        request_id, queue = self._open_request()
        expected = set(self.live_peers()) if self.serving else None
        try:
            await self.publish(NODES_GROUP, {**message, "request_id": request_id, "reply_to": self.key})
            if self.serving:
                answers.append(await handler(message))
            deadline = asyncio.get_running_loop().time() + timeout
            while expected is None or expected:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    reply = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                answers.append(reply["body"])
                if expected is not None:
                    expected.discard(reply["origin"])
        finally:
            self._replies.pop(request_id, None)
        return answers

    async def request(self, key: str, message: dict[str, Any], timeout: float, request_id: str | None = None) -> Any:
        """Ask one process; its answer, or TimeoutError."""
        await self.start()
        request_id, queue = self._open_request(request_id)
        try:
            await self.send(key, {**message, "request_id": request_id, "reply_to": self.key})
            reply = await asyncio.wait_for(queue.get(), timeout)
        finally:
            self._replies.pop(request_id, None)
        return reply["body"]

    def new_id(self) -> str:
        """An id unique across the cluster (requests, relays)."""
        return f"{self.key}-{next(self._ids)}"

    def _open_request(self, request_id: str | None = None) -> tuple[str, asyncio.Queue[dict[str, Any]]]:
        request_id = request_id or self.new_id()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._replies[request_id] = queue
        return request_id, queue

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

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type", "")
        if kind == "realtime.reply":
            queue = self._replies.get(message.get("request_id", ""))
            if queue is not None:
                queue.put_nowait(message)
            return
        if kind == "realtime.heartbeat":
            self._saw_peer(message["info"])
            return
        if message.get("origin") == self.key:
            return
        handler = self.handlers.get(kind)
        if handler is None:
            logger.warning("no handler for channel-layer message %r", kind)
            return
        try:
            body = await handler(message)
        except Exception:
            logger.exception("handling channel-layer message %r failed", kind)
            return
        if "reply_to" in message and body is not DEFERRED:
            await self.reply(message, body)

    async def reply(self, request: dict[str, Any], body: Any) -> None:
        """Answer a request received from another process."""
        await self.send(
            request["reply_to"], {"type": "realtime.reply", "request_id": request["request_id"], "body": body}
        )

    # -- peers ----------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        message = {"type": "realtime.heartbeat", "info": self.info(), "origin": self.key}
        await self.layer.group_send(NODES_GROUP, message)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._heartbeat()
            except Exception as exc:
                logger.warning("heartbeat not sent (%s)", exc)
                self._unhealthy(exc)
            else:
                await self._healthy_again()
            self._forget_dead_peers()

    def _unhealthy(self, exc: Exception) -> None:
        if self._healthy:
            self._healthy = False
            logger.warning("channel layer unreachable (%s); local traffic goes on, cross-process waits", exc)

    async def _healthy_again(self) -> None:
        """After an outage: subscribe to our channel and groups afresh, and say what was lost."""
        if self._healthy:
            return
        try:
            await self._resubscribe()
        except Exception as exc:
            logger.warning("channel layer back but resubscribing failed (%s); retrying", exc)
            return
        self._healthy = True
        logger.warning(
            "channel layer reachable again; cross-process traffic resumes (%d outgoing messages dropped meanwhile)",
            self._dropped,
        )
        self._dropped = 0

    async def _resubscribe(self) -> None:
        # a Redis restart forgets every subscription; the pub/sub layer believes it still has them
        layer = self.layer
        for group in list(self.groups):
            await layer.group_discard(group, self.channel)
            await layer.group_add(group, self.channel)

    def _saw_peer(self, info: dict[str, Any]) -> None:
        if info["key"] == self.key:
            return
        if info["key"] not in self.peers:
            logger.info("peer %s joined", info["id"])
        self.peers[info["key"]] = {**info, "seen": time.monotonic()}

    def _forget_dead_peers(self) -> None:
        live = self.live_peers()
        for key in set(self.peers) - set(live):
            logger.warning("peer %s silent for 3 heartbeats: considered dead", self.peers.pop(key)["id"])


node = Node()
