"""This process as a member of the cluster: its channel, its groups and its receive loop.

With the in-memory channel layer there is only ever one process, so nothing
crosses the layer: broadcasts are delivered locally and groups are not used
(the in-memory layer's group fan-out drops messages when a channel is full
and slows down with many channels). With channels-redis the process owns one
channel, joins a room's group while it has sockets in the room, and hands
every message it receives to the handler registered for its type.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket as _socket
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger("realtime.node")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Node:
    def __init__(self) -> None:
        self.id = f"{_socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.channel: str | None = None
        self.groups: set[str] = set()
        self.handlers: dict[str, Handler] = {}
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def layer(self) -> Any:
        return get_channel_layer()

    @property
    def clustered(self) -> bool:
        """True when other processes may share the channel layer."""
        layer = self.layer
        return layer is not None and not isinstance(layer, InMemoryChannelLayer)

    def on(self, message_type: str, handler: Handler) -> None:
        self.handlers[message_type] = handler

    async def start(self) -> None:
        if not self.clustered or self._task is not None:
            return
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._task is None:
                self.channel = await self.layer.new_channel("realtime.")
                self._task = asyncio.get_running_loop().create_task(self._receive())

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

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        """Send to every process in ``group`` (this one included: receivers skip their own)."""
        if self.clustered:
            await self.layer.group_send(group, {**message, "origin": self.id})

    async def _receive(self) -> None:
        layer, channel = self.layer, self.channel
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("receiving from the channel layer failed; retrying")
                await asyncio.sleep(1)
                continue
            if message.get("origin") == self.id:
                continue
            handler = self.handlers.get(message.get("type", ""))
            if handler is None:
                logger.warning("no handler for channel-layer message %r", message.get("type"))
                continue
            try:
                await handler(message)
            except Exception:
                logger.exception("handling channel-layer message %r failed", message.get("type"))


node = Node()
