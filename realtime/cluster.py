"""Cluster-wide operations: every serving process answers for its own sockets.

Each ``a``-prefixed coroutine asks all live processes (node.py) and merges
their answers; a process that died simply does not answer, and the call
returns when every live peer has answered or CLUSTER_TIMEOUT has passed.
The unprefixed twins are for sync code (views, tasks, commands, the shell).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync

from .conf import realtime_settings
from .node import NODES_GROUP, node
from .rooms import local


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


def _selected(message: dict[str, Any]) -> list[Any]:
    room = message.get("room")
    return local.select(message["ns"], [room] if room else [])


def _describe(socket: Any) -> dict[str, Any]:
    h = socket.handshake
    user = socket.user
    return {
        "id": socket.id,
        "namespace": socket.namespace,
        "rooms": sorted(socket.rooms),
        "data": socket.data,
        "user_id": getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None,
        "handshake": {
            "headers": h.headers,
            "query": h.query,
            "address": h.address,
            "auth": h.auth,
            "time": h.time.isoformat(),
            "issued": h.issued,
            "url": h.url,
        },
        "server": node.id,
    }


# -- what each process answers ---------------------------------------------------------


async def _fetch(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [_describe(s) for s in _selected(message)]


async def _join(message: dict[str, Any]) -> int:
    sockets = _selected(message)
    for socket in sockets:
        await socket.join(*message["rooms"])
    return len(sockets)


async def _leave(message: dict[str, Any]) -> int:
    sockets = _selected(message)
    for socket in sockets:
        await socket.leave(*message["rooms"])
    return len(sockets)


async def _disconnect(message: dict[str, Any]) -> int:
    sockets = _selected(message)
    for socket in sockets:
        await socket.disconnect(close=message["close"])
    return len(sockets)


async def _rooms(message: dict[str, Any]) -> dict[str, int]:
    namespace = message["ns"]
    ids = set(local.sockets.get(namespace, {}))
    return {room: len(members) for room, members in local.rooms.get(namespace, {}).items() if room not in ids}


_server_handlers: dict[str, Callable[..., Any]] = {}


async def _server_event(message: dict[str, Any]) -> Any:
    handler = _server_handlers.get(message["event"])
    if handler is None:
        return None
    from .handlers import call

    return await call(handler, *message["args"])


def _local_sockets() -> list[Any]:
    return [socket for sockets in list(local.sockets.values()) for socket in list(sockets.values())]


def _key(value: Any) -> str:
    """Primary keys compared as text: they cross the channel layer as strings (ints, UUIDs alike)."""
    return str(value)


async def _credentials_changed(message: dict[str, Any]) -> int:
    """Revoked tokens and users lose their sockets here; a token whose expiry moved is re-armed."""
    from .auth import arm_expiry

    tokens, users = set(message.get("tokens", ())), set(message.get("users", ()))
    expiries = message.get("expiries", {})
    dropped = 0
    for socket in _local_sockets():
        token_id = getattr(socket.credential, "pk", None)
        user = socket.user
        user_id = _key(user.pk) if getattr(user, "is_authenticated", False) else None
        if (token_id is not None and _key(token_id) in tokens) or (user_id is not None and user_id in users):
            await socket.disconnect()
            dropped += 1
        elif token_id is not None and _key(token_id) in expiries:
            expires = expiries[_key(token_id)]
            socket.credential.expires = datetime.fromisoformat(expires) if expires else None
            arm_expiry(socket)
    return dropped


for _type, _handler in {
    "realtime.fetch_sockets": _fetch,
    "realtime.sockets_join": _join,
    "realtime.sockets_leave": _leave,
    "realtime.disconnect_sockets": _disconnect,
    "realtime.rooms": _rooms,
    "realtime.server_event": _server_event,
    "realtime.credentials_changed": _credentials_changed,
}.items():
    node.on(_type, _handler)


# -- the API -------------------------------------------------------------------------


async def afetch_sockets(
    room: str | None = None, namespace: str = "/", timeout: float | None = None
) -> list[SocketInfo]:
    """Every socket in ``room`` (or in the namespace) on every live process."""
    message = {"type": "realtime.fetch_sockets", "ns": namespace, "room": room}
    answers = await node.request_all(message, _timeout(timeout))
    return [SocketInfo(**info) for answer in answers for info in answer or ()]


async def asockets_join(rooms: str | Iterable[str], room: str | None = None, namespace: str = "/") -> int:
    """Make the sockets in ``room`` (all when None) join ``rooms``; how many sockets did."""
    message = {"type": "realtime.sockets_join", "ns": namespace, "room": room, "rooms": _list(rooms)}
    return sum(await node.request_all(message, _timeout(None)))


async def asockets_leave(rooms: str | Iterable[str], room: str | None = None, namespace: str = "/") -> int:
    message = {"type": "realtime.sockets_leave", "ns": namespace, "room": room, "rooms": _list(rooms)}
    return sum(await node.request_all(message, _timeout(None)))


async def adisconnect_sockets(room: str | None = None, namespace: str = "/", close: bool = False) -> int:
    """Disconnect the sockets in ``room`` (all when None); they see ``io server disconnect``."""
    message = {"type": "realtime.disconnect_sockets", "ns": namespace, "room": room, "close": close}
    return sum(await node.request_all(message, _timeout(None)))


async def arooms(namespace: str = "/") -> dict[str, int]:
    """Every room of the namespace with its member count, cluster-wide (sockets' own rooms left out)."""
    total: Counter[str] = Counter()
    for answer in await node.request_all({"type": "realtime.rooms", "ns": namespace}, _timeout(None)):
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
    message = {"type": "realtime.server_event", "event": event, "args": list(args)}
    return await node.request_all(message, _timeout(timeout))


async def adisconnect_credentials(
    tokens: Iterable[Any] = (), users: Iterable[Any] = (), expiries: dict[Any, datetime | None] | None = None
) -> None:
    """Disconnect, in every process, the sockets authenticated by ``tokens`` (AccessToken pks) or
    belonging to ``users`` (user pks), and move the expiry of tokens in ``expiries``.

    Fire and forget: one message to every process, answered by none, so a
    revocation reaches the sockets in one channel-layer hop and the caller
    (a receiver in an admin request or a management command) never waits.
    """
    message = {
        "type": "realtime.credentials_changed",
        "tokens": [_key(t) for t in tokens],
        "users": [_key(u) for u in users],
        "expiries": {_key(k): v.isoformat() if v else None for k, v in (expiries or {}).items()},
    }
    await _credentials_changed(message)
    if node.clustered:
        await node.publish(NODES_GROUP, message)


def _list(rooms: str | Iterable[str]) -> list[str]:
    return [rooms] if isinstance(rooms, str) else list(rooms)


fetch_sockets = async_to_sync(afetch_sockets)
sockets_join = async_to_sync(asockets_join)
sockets_leave = async_to_sync(asockets_leave)
disconnect_sockets = async_to_sync(adisconnect_sockets)
rooms = async_to_sync(arooms)
server_side_emit = async_to_sync(aserver_side_emit)
disconnect_credentials = async_to_sync(adisconnect_credentials)
