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
            return
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if not self._tasks:
                loop = asyncio.get_running_loop()
                self._tasks.append(loop.create_task(self._receive()))
            if serving and not self.serving:
                self.serving = True
                await self.join(NODES_GROUP)
                await self._heartbeat()
                self._tasks.append(asyncio.get_running_loop().create_task(self._heartbeats()))

    async def join(self, group: str) -> None:
        if not self.clustered or group in self.groups:
            return
        await self.start()
        self.groups.add(group)
        await self.layer.group_add(group, self.channel)

    async def leave(self, group: str) -> None:
        if group not in self.groups:
            return
        self.groups.discard(group)
        await self.layer.group_discard(group, self.channel)

    # -- sending ------------------------------------------------------------------
    async def publish(self, group: str, message: dict[str, Any]) -> None:
        """Send to every process in ``group`` (this one included: receivers skip their own)."""
        if self.clustered:
            await self.layer.group_send(group, {**message, "origin": self.key})

    async def send(self, key: str, message: dict[str, Any]) -> None:
        """Send to the process whose key is ``key``."""
        await self.layer.send(channel_of(key), {**message, "origin": self.key})

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

    async def request(self, key: str, message: dict[str, Any], timeout: float) -> Any:
        """Ask one process; its answer, or TimeoutError."""
        await self.start()
        request_id, queue = self._open_request()
        try:
            await self.send(key, {**message, "request_id": request_id, "reply_to": self.key})
            reply = await asyncio.wait_for(queue.get(), timeout)
        finally:
            self._replies.pop(request_id, None)
        return reply["body"]

    def _open_request(self) -> tuple[str, asyncio.Queue[dict[str, Any]]]:
        request_id = f"{self.key}-{next(self._ids)}"
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
                if self._healthy:
                    logger.warning("channel layer unreachable (%s); local traffic goes on, retrying", exc)
                    self._healthy = False
                await asyncio.sleep(0.5)
                continue
            if not self._healthy:
                self._healthy = True
                logger.warning("channel layer reachable again; cross-process traffic resumes")
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
        if "reply_to" in message:
            await self.send(
                message["reply_to"], {"type": "realtime.reply", "request_id": message["request_id"], "body": body}
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
                if not self._healthy:
                    # after an outage: subscribe again, in case the layer lost our groups
                    for group in list(self.groups):
                        await self.layer.group_add(group, self.channel)
            except Exception as exc:
                logger.warning("heartbeat not sent (%s)", exc)
            self._forget_dead_peers()

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
