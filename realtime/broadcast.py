"""Broadcasting: ``emit``/``aemit`` and ``BroadcastOperator``, from handlers, views or tasks.

(The module is not called ``emit``: ``from realtime import emit`` must give the
function, and a submodule of that name would shadow it.)

A broadcast's Socket.IO packet is encoded once; each recipient only gets the
frames written to its transport. Local sockets are served directly, and one
message per room group carries the frames to the other processes (see
rooms.py). ``aemit`` is the async entry point and ``emit`` its sync twin for
views, signal receivers, Celery tasks and management commands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.db import transaction

from .exceptions import AckTimeout, ClusterUnavailable
from .logs import throttled
from .node import node
from .protocol import socketio
from .rooms import group_name, local, owner_key
from .sessions import Outgoing

if TYPE_CHECKING:
    from .namespaces import Socket

Frames = Outgoing

logger = logging.getLogger("realtime.socketio")


def encode_frames(packet: socketio.Packet) -> Frames:
    """A Socket.IO packet as the Engine.IO messages that carry it, encoded once."""
    return Outgoing.of(socketio.encode(packet))


def event_frames(namespace: str, event: str, args: Iterable[Any], ack_id: int | None = None) -> Frames:
    return encode_frames(socketio.Packet(socketio.PacketType.EVENT, namespace, [event, *args], ack_id))


def _names(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class BroadcastOperator:
    """Chainable target of a broadcast, as in Socket.IO: ``.to(room).except_(room).volatile.emit(...)``."""

    namespace: str = "/"
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    except_ids: tuple[str, ...] = ()
    is_volatile: bool = False
    is_local: bool = False
    ack_timeout: float | None = None
    compressed: bool = field(default=True)

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return replace(self, rooms=self.rooms + tuple(r for room in rooms for r in _names(room)))

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return replace(self, except_rooms=self.except_rooms + tuple(r for room in rooms for r in _names(room)))

    @property
    def volatile(self) -> BroadcastOperator:
        """Dropped for clients whose transport cannot take it right now (a polling client between GETs)."""
        return replace(self, is_volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """This process's sockets only."""
        return replace(self, is_local=True)

    def compress(self, value: bool = True) -> BroadcastOperator:
        """Accepted for API parity; daphne negotiates no WebSocket compression, so it changes nothing."""
        return replace(self, compressed=value)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Collect acknowledgements for ``emit_with_ack`` for at most ``seconds``."""
        return replace(self, ack_timeout=seconds)

    async def emit(self, event: str, *args: Any) -> None:
        """Deliver locally and publish to the other processes; ClusterUnavailable if the latter failed."""
        frames = event_frames(self.namespace, event, args)
        published = True
        if not self.is_local and node.clustered:
            # other processes first: their fan-out then overlaps ours instead of following it
            published = await self._publish(frames, event, args)
            await asyncio.sleep(0)  # let the sender task put it on the wire
        targets = local.select(self.namespace, self.rooms, self.except_rooms, self.except_ids)
        await _deliver(targets, frames, self.is_volatile, event, args)
        if not published:
            raise ClusterUnavailable()

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Every reached client's answer (one list element each), within ``timeout(...)``.

        Raises ``AckTimeout`` when some client did not answer in time. Reaches
        this process's sockets; other processes join in with the cluster work.
        """
        if self.ack_timeout is None:
            raise ValueError("call .timeout(seconds) before emit_with_ack on a broadcast")
        targets = local.select(self.namespace, self.rooms, self.except_rooms, self.except_ids)
        calls = [asyncio.ensure_future(s.emit_with_ack(event, *args, timeout=self.ack_timeout)) for s in targets]
        results = await asyncio.gather(*calls, return_exceptions=True)
        if any(isinstance(r, AckTimeout) for r in results):
            raise AckTimeout(f"{sum(isinstance(r, AckTimeout) for r in results)} of {len(results)} clients did not ack")
        return [r for r in results if not isinstance(r, BaseException)]

    async def _publish(self, frames: Frames, event: str, args: tuple[Any, ...]) -> bool:
        """One message per room group; False if any could not be queued (layer down, queue full)."""
        message = {
            "type": "realtime.broadcast",
            "ns": self.namespace,
            "rooms": list(self.rooms),
            "except_rooms": list(self.except_rooms),
            "except_ids": list(self.except_ids),
            "volatile": self.is_volatile,
            "event": event,
            "args": list(args),
            "frames": [p.data for p in frames.packets],
        }
        if not self.rooms:
            return await node.publish(group_name(self.namespace), {**message, "via": None})
        published = True
        for room in dict.fromkeys(self.rooms):
            routed = {**message, "via": room}
            key = owner_key(room)
            if key is not None and key != node.key:
                published &= await node.send(key, routed)  # its holder does not subscribe the group
            published &= await node.publish(group_name(self.namespace, room), routed)
        return published


async def _deliver(targets: list[Socket], frames: Frames, volatile: bool, event: str, args: tuple[Any, ...]) -> None:
    """Write to every target; what goes wrong for one (a listener raising) is logged and skipped."""
    for socket in targets:
        try:
            await socket.send_frames(frames, volatile=volatile, event=event, args=args)
        except Exception:
            throttled(
                logger, logging.ERROR, "deliver", "broadcast to %s failed; the others go on", socket, exc_info=True
            )


async def _receive_broadcast(message: dict[str, Any]) -> None:
    """A broadcast from another process: serve the local sockets it reaches through ``via``.

    A socket in several of the target rooms gets the broadcast only through
    the first of them in the list, so it is delivered exactly once.
    """
    namespace, via, rooms = message["ns"], message["via"], message["rooms"]
    if via is None:
        targets = local.select(namespace, (), message["except_rooms"], message["except_ids"])
    else:
        earlier = rooms[: rooms.index(via)]
        targets = [
            s
            for s in local.select(namespace, (via,), message["except_rooms"], message["except_ids"])
            if not any(room in s.rooms for room in earlier)
        ]
    frames = Outgoing.of(message["frames"])
    await _deliver(targets, frames, message["volatile"], message["event"], tuple(message["args"]))


node.on("realtime.broadcast", _receive_broadcast)


async def aemit(
    event: str,
    *args: Any,
    to: str | Iterable[str] | None = None,
    except_: str | Iterable[str] | None = None,
    namespace: str = "/",
    volatile: bool = False,
    local: bool = False,
) -> None:
    """Emit ``event`` to every socket in ``to`` (a room, a socket id, or several; all when None)."""
    operator = BroadcastOperator(namespace, _names(to), _names(except_), is_volatile=volatile, is_local=local)
    await operator.emit(event, *args)


def emit(
    event: str,
    *args: Any,
    to: str | Iterable[str] | None = None,
    except_: str | Iterable[str] | None = None,
    namespace: str = "/",
    volatile: bool = False,
    local: bool = False,
) -> None:
    """Sync twin of ``aemit`` for views, signal receivers, Celery tasks and management commands."""
    async_to_sync(aemit)(event, *args, to=to, except_=except_, namespace=namespace, volatile=volatile, local=local)


def emit_on_commit(event: str, *args: Any, using: str | None = None, **options: Any) -> None:
    """``emit`` once the surrounding transaction commits; never if it rolls back.

    Outside a transaction (autocommit) it emits at once, as Django's
    ``transaction.on_commit`` does.
    """
    transaction.on_commit(lambda: emit(event, *args, **options), using=using)
