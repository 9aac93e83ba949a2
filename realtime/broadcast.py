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
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast

from asgiref.sync import async_to_sync
from django.db import transaction

from .exceptions import AckTimeout, ClusterUnavailable
from .parsers import Parser
from .protocol import socketio
from .protocol.cluster import Broadcast, BroadcastAck
from .recovery import StoredPacket
from .runtime import Runtime, current
from .sessions import Outgoing
from .tracing import AttributeValue


class AckTarget(Protocol):
    """A socket as a broadcast's emit_with_ack sees it (namespaces.Socket)."""

    async def emit_with_ack(self, event_name: str, *args: Any, timeout: float = 5.0) -> list[Any]: ...


# How much longer than the ack timeout a broadcast's emit_with_ack waits for the other processes'
# answers: each answers when its own clients have, or at the timeout; this is their way back.
ACK_TRANSIT = 1.0


async def local_acks(runtime: Runtime, message: BroadcastAck) -> dict[str, Any]:
    """This process's share of a broadcast's emit_with_ack: its sockets' answers, and how many missed the timeout.

    Every process runs it for its own sockets (the asker too), so the asker knows each
    process's count: a socket that did not answer is a timeout, never a wait.
    """
    members = runtime.rooms.select(message.namespace, message.rooms, message.except_rooms, message.except_ids)
    sockets = [cast(AckTarget, member.handle) for member in members]
    event, args, timeout = message.event, message.args, message.timeout
    calls = [asyncio.ensure_future(s.emit_with_ack(event, *args, timeout=timeout)) for s in sockets]
    results = await asyncio.gather(*calls, return_exceptions=True)
    return {
        "answers": [r for r in results if not isinstance(r, BaseException)],
        "missing": sum(isinstance(r, AckTimeout) for r in results),
    }


def event_frames(
    parser: Parser,
    namespace: str,
    event: str,
    args: Iterable[Any],
    ack_id: int | None = None,
    compress: bool = True,
    offset: str | None = None,
) -> Outgoing:
    """An EVENT, encoded once; with connection state recovery its offset is its last argument (as in Node)."""
    data = [event, *args] if offset is None else [event, *args, offset]
    packet = socketio.Packet(socketio.PacketType.EVENT, namespace, data, ack_id)
    return Outgoing.of(parser.encode(packet), compress, offset)


async def recorded_event(
    runtime: Runtime,
    namespace: str,
    event: str,
    args: Iterable[Any],
    rooms: tuple[str, ...] = (),
    except_rooms: tuple[str, ...] = (),
    except_ids: tuple[str, ...] = (),
    compress: bool = True,
) -> Outgoing:
    """An EVENT without an ack, kept for clients that are away when recovery is on (realtime.recovery).

    It is kept before it is sent, so a client that reconnects anywhere finds it.
    """
    recovery = runtime.recovery
    if recovery is None:
        return event_frames(runtime.parser, namespace, event, args, compress=compress)
    offset = recovery.new_offset()
    outgoing = event_frames(runtime.parser, namespace, event, args, compress=compress, offset=offset)
    stored = StoredPacket(offset, namespace, rooms, except_rooms, except_ids, outgoing.payloads, compress)
    await recovery.record(stored)
    return outgoing


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
    sync_wrapped = True  # in a def handler its emit blocks (handlers.py)
    # None: the process's runtime; a socket's operators carry the socket's (a test may run two in one loop)
    runtime: Runtime | None = field(default=None, compare=False, repr=False)

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
        """``compress(False)``: polling answers carrying only such packets are sent uncompressed.

        Over WebSocket the ASGI server decides: ASGI has no per-message compression flag, so a
        server that negotiated permessage-deflate (uvicorn) compresses every frame over its threshold.
        """
        return replace(self, compressed=value)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Collect acknowledgements for ``emit_with_ack`` for at most ``seconds``."""
        return replace(self, ack_timeout=seconds)

    async def emit(self, event: str, *args: Any) -> None:
        """Deliver locally and publish to the other processes; ClusterUnavailable if the outbox is full.

        With tracing on it is a span of its own, a child of whatever is current (a Django view's
        span, a Celery task's, an event handler's), and its context travels with the message:
        each process's delivery span is its child.
        """
        runtime = self.runtime or current()
        metrics = runtime.metrics
        label = metrics.namespace_label(self.namespace)
        metrics.broadcasts[label] = metrics.broadcasts.get(label, 0) + 1
        if not runtime.tracing.enabled:
            await self._emit(runtime, event, args)
            return
        attributes: dict[str, AttributeValue] = {
            "realtime.namespace": label,
            "realtime.rooms": len(self.rooms),
            "realtime.volatile": self.is_volatile,
            "realtime.local": self.is_local,
        }
        with runtime.tracing.span(f"realtime broadcast {label}", "producer", attributes):
            await self._emit(runtime, event, args)

    async def _emit(self, runtime: Runtime, event: str, args: tuple[Any, ...]) -> None:
        if self.is_volatile:  # "now or never": never kept for recovery
            outgoing = event_frames(runtime.parser, self.namespace, event, args, compress=self.compressed)
        else:
            outgoing = await recorded_event(
                runtime, self.namespace, event, args, self.rooms, self.except_rooms, self.except_ids, self.compressed
            )
        message = Broadcast(
            **self._audience(),
            volatile=self.is_volatile,
            event=event,
            args=args,
            frames=outgoing.payloads,
            via=None,
            compress=self.compressed,
            offset=outgoing.offset,
        )
        if not await runtime.broadcast(message, outgoing, local=self.is_local) and not self.is_volatile:
            raise ClusterUnavailable()  # the outbox is full: the other processes will not get it

    def _audience(self) -> dict[str, Any]:
        """Whom a broadcast message reaches, as its fields: every process selects its own sockets by them."""
        return {
            "namespace": self.namespace,
            "rooms": self.rooms,
            "except_rooms": self.except_rooms,
            "except_ids": self.except_ids,
        }

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Every reached client's answer (one list element each), on every process, within ``timeout(...)``.

        As Node's ``io.timeout(ms).emitWithAck`` with an adapter: each process emits to its own
        sockets and answers with their acks and how many did not answer in time. ``AckTimeout``
        when some client did not answer, or a process did not (its clients' count is unknown).
        ``.local`` asks this process only.
        """
        if self.ack_timeout is None:
            raise ValueError("call .timeout(seconds) before emit_with_ack on a broadcast")
        runtime = self.runtime or current()
        message = BroadcastAck(**self._audience(), event=event, args=args, timeout=self.ack_timeout)
        if self.is_local or not runtime.member.clustered:
            answers, silent = [await local_acks(runtime, message)], 0
        else:
            answers, silent = await runtime.ask_every(message, self.ack_timeout + ACK_TRANSIT)
        results = [answer for share in answers for answer in share["answers"]]
        missing = sum(share["missing"] for share in answers)
        if missing or silent:
            total = len(results) + missing
            processes = f"; {silent} processes did not answer" if silent else ""
            raise AckTimeout(f"{missing} of {total} clients did not ack{processes}")
        return results


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
