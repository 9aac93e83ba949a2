"""Cluster-wide operations: every serving process answers for its own sockets.

Each ``a``-prefixed coroutine asks all live processes (member.py) and merges
their answers; a process that died simply does not answer, and the call
returns when every live peer has answered or CLUSTER_TIMEOUT has passed.
The unprefixed twins are for sync code (views, tasks, commands, the shell).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync

from .auth import user_key
from .broadcast import local_acks
from .conf import realtime_settings
from .exceptions import AckTimeout
from .handlers import call
from .namespaces import Socket
from .protocol.cluster import (
    BroadcastAck,
    CredentialsChanged,
    DisconnectSockets,
    Envelope,
    FetchRooms,
    FetchSockets,
    Message,
    RoomsChanged,
    ServerEvent,
    SocketsJoin,
    SocketsLeave,
)
from .runtime import Runtime, current


@dataclass(frozen=True)
class SocketInfo:
    """A socket somewhere in the cluster, as ``fetch_sockets`` sees it."""

    id: str
    namespace: str
    rooms: list[str]
    data: dict[str, Any]
    user_id: Any
    handshake: dict[str, Any]
    server: str = field(default="")


def _timeout(timeout: float | None) -> float:
    return timeout if timeout is not None else realtime_settings()["CLUSTER_TIMEOUT"] / 1000


def _sockets(runtime: Runtime, namespace: str | None = None, room: str | None = None) -> list[Socket]:
    """This process's sockets (of ``namespace``, in ``room``), as the runtime's Rooms knows them."""
    rooms = runtime.rooms
    members = rooms.members() if namespace is None else rooms.select(namespace, [room] if room else [])
    return [member.handle for member in members]


def _describe(socket: Socket, server: str) -> dict[str, Any]:
    h = socket.handshake
    user = socket.user
    return {
        "id": socket.id,
        "namespace": socket.namespace,
        "rooms": sorted(socket.rooms),
        "data": socket.data,
        "user_id": user_key(user),
        "handshake": {
            "headers": dict(h.headers),
            "query": h.query,
            "address": h.address,
            "auth": h.auth,
            "time": h.time.isoformat(),
            "issued": h.issued,
            "url": h.url,
        },
        "server": server,
    }


def _key(value: Any) -> str:
    """Primary keys compared as text: they cross the channel layer as strings (ints, UUIDs alike)."""
    return str(value)


# Handlers of server_side_emit events: filled by @on_server_event where the project's modules are
# imported (like Django's signal receivers), read by every process that answers.
_server_handlers: dict[str, Callable[..., Any]] = {}


class Answers:
    """What each process answers for its own sockets: the handlers of the runtime's dispatch table."""

    def __init__(self, runtime: Runtime, policies_changed: Callable[[], None]) -> None:
        self.runtime = runtime
        self.policies_changed = policies_changed

    def table(self) -> dict[type[Message], Callable[[Envelope], Any]]:
        return {
            FetchSockets: self.fetch,
            SocketsJoin: self.join,
            SocketsLeave: self.leave,
            DisconnectSockets: self.disconnect,
            FetchRooms: self.rooms,
            ServerEvent: self.server_event,
            BroadcastAck: self.broadcast_ack,
            CredentialsChanged: self.credentials_changed,
            RoomsChanged: self.rooms_changed,
        }

    async def fetch(self, envelope: Envelope) -> list[dict[str, Any]]:
        message = envelope.message
        assert isinstance(message, FetchSockets)
        server = self.runtime.member.id
        return [_describe(s, server) for s in _sockets(self.runtime, message.namespace, message.room)]

    async def join(self, envelope: Envelope) -> int:
        message = envelope.message
        assert isinstance(message, SocketsJoin)
        return await self._each(message.namespace, message.room, lambda s: s.join(*message.rooms))

    async def leave(self, envelope: Envelope) -> int:
        message = envelope.message
        assert isinstance(message, SocketsLeave)
        return await self._each(message.namespace, message.room, lambda s: s.leave(*message.rooms))

    async def disconnect(self, envelope: Envelope) -> int:
        message = envelope.message
        assert isinstance(message, DisconnectSockets)
        return await self._each(message.namespace, message.room, lambda s: s.disconnect(close=message.close))

    async def _each(self, namespace: str, room: str | None, action: Callable[[Socket], Awaitable[None]]) -> int:
        """Do ``action`` to this process's sockets in ``room`` of ``namespace``; how many there were."""
        sockets = _sockets(self.runtime, namespace, room)
        for socket in sockets:
            await action(socket)
        return len(sockets)

    async def rooms(self, envelope: Envelope) -> dict[str, int]:
        assert isinstance(envelope.message, FetchRooms)
        return self.runtime.rooms.counts(envelope.message.namespace)

    async def server_event(self, envelope: Envelope) -> Any:
        message = envelope.message
        assert isinstance(message, ServerEvent)
        handler = _server_handlers.get(message.event)
        if handler is None:
            return None
        return await call(handler, *message.args)

    async def broadcast_ack(self, envelope: Envelope) -> dict[str, Any]:
        assert isinstance(envelope.message, BroadcastAck)
        return await local_acks(self.runtime, envelope.message)

    async def credentials_changed(self, envelope: Envelope) -> int:
        """Revoked tokens and users lose their sockets here; a token whose expiry moved is re-armed."""
        message = envelope.message
        assert isinstance(message, CredentialsChanged)
        tokens, users, expiries = set(message.tokens), set(message.users), dict(message.expiries)
        dropped = 0
        for socket in _sockets(self.runtime):
            token_id = getattr(socket.credential, "pk", None)
            user = socket.user
            user_id = _key(user.pk) if getattr(user, "is_authenticated", False) else None
            if (token_id is not None and _key(token_id) in tokens) or (user_id is not None and user_id in users):
                await socket.disconnect()
                dropped += 1
            elif token_id is not None and _key(token_id) in expiries:
                expires = expiries[_key(token_id)]
                socket.credential.expires = datetime.fromisoformat(expires) if expires else None
                socket.arm_expiry()
        return dropped

    async def rooms_changed(self, envelope: Envelope) -> None:
        self.policies_changed()


# -- the API -------------------------------------------------------------------------


async def afetch_sockets(
    room: str | None = None, namespace: str = "/", timeout: float | None = None
) -> list[SocketInfo]:
    """Every socket in ``room`` (or in the namespace) on every live process."""
    answers = await current().ask_all(FetchSockets(namespace=namespace, room=room), _timeout(timeout))
    return [SocketInfo(**info) for answer in answers for info in answer or ()]


async def asockets_join(rooms: str | Iterable[str], room: str | None = None, namespace: str = "/") -> int:
    """Make the sockets in ``room`` (all when None) join ``rooms``; how many sockets did."""
    message = SocketsJoin(namespace=namespace, room=room, rooms=_names(rooms))
    return sum(await current().ask_all(message, _timeout(None)))


async def asockets_leave(rooms: str | Iterable[str], room: str | None = None, namespace: str = "/") -> int:
    message = SocketsLeave(namespace=namespace, room=room, rooms=_names(rooms))
    return sum(await current().ask_all(message, _timeout(None)))


async def adisconnect_sockets(room: str | None = None, namespace: str = "/", close: bool = False) -> int:
    """Disconnect the sockets in ``room`` (all when None); they see ``io server disconnect``."""
    message = DisconnectSockets(namespace=namespace, room=room, close=close)
    return sum(await current().ask_all(message, _timeout(None)))


async def arooms(namespace: str = "/", runtime: Runtime | None = None) -> dict[str, int]:
    """Every room of the namespace with its member count, cluster-wide (sockets' own rooms left out)."""
    total: Counter[str] = Counter()
    for answer in await (runtime or current()).ask_all(FetchRooms(namespace=namespace), _timeout(None)):
        total.update(answer or {})
    return dict(total)


def on_server_event(event: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register this process's handler for ``server_side_emit(event, ...)``; its return value is its ack."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _server_handlers[event] = fn
        return fn

    return register


async def aserver_side_emit(event: str, *args: Any, timeout: float | None = None) -> list[Any]:
    """Run ``event``'s server handler on every live process; their return values (the acks)."""
    return await current().ask_all(ServerEvent(event=event, args=args), _timeout(timeout))


async def aserver_side_emit_with_ack(event: str, *args: Any, timeout: float | None = None) -> list[Any]:
    """Node's ``serverSideEmitWithAck``: run ``event``'s handler on every *other* live process.

    Their return values, one per process; ``AckTimeout`` ("timeout reached: only 1 responses
    received out of 2") when one did not answer within ``timeout`` (CLUSTER_TIMEOUT by default).
    A process without a handler for ``event`` answers None.
    """
    message = ServerEvent(event=event, args=args)
    answers, silent = await current().ask_every(message, _timeout(timeout), include_self=False)
    if silent:
        expected = len(answers) + silent
        raise AckTimeout(f"timeout reached: only {len(answers)} responses received out of {expected}")
    return answers


async def adisconnect_credentials(
    tokens: Iterable[Any] = (), users: Iterable[Any] = (), expiries: dict[Any, datetime | None] | None = None
) -> None:
    """Disconnect, in every process, the sockets authenticated by ``tokens`` (AccessToken pks) or
    belonging to ``users`` (user pks), and move the expiry of tokens in ``expiries``.

    Fire and forget: one message to every process, answered by none, so a
    revocation reaches the sockets in one channel-layer hop and the caller
    (a receiver in an admin request or a management command) never waits.
    """
    runtime = current()
    message = CredentialsChanged(
        tokens=tuple(_key(t) for t in tokens),
        users=tuple(_key(u) for u in users),
        expiries=tuple((_key(k), v.isoformat() if v else None) for k, v in (expiries or {}).items()),
    )
    await runtime.dispatch[CredentialsChanged](Envelope(runtime.key, message))
    await runtime.tell_all(message)


async def ainvalidate_room_policies() -> None:
    """Make every serving process (this one too) reread the Room table at its next checked join."""
    runtime = current()
    await runtime.dispatch[RoomsChanged](Envelope(runtime.key, RoomsChanged()))
    await runtime.tell_all(RoomsChanged())


def _names(rooms: str | Iterable[str]) -> tuple[str, ...]:
    return (rooms,) if isinstance(rooms, str) else tuple(rooms)


fetch_sockets = async_to_sync(afetch_sockets)
sockets_join = async_to_sync(asockets_join)
sockets_leave = async_to_sync(asockets_leave)
disconnect_sockets = async_to_sync(adisconnect_sockets)
rooms = async_to_sync(arooms)
server_side_emit = async_to_sync(aserver_side_emit)
server_side_emit_with_ack = async_to_sync(aserver_side_emit_with_ack)
disconnect_credentials = async_to_sync(adisconnect_credentials)
invalidate_room_policies = async_to_sync(ainvalidate_room_policies)
