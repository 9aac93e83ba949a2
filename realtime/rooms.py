"""Rooms: membership kept per process, with one channel-layer group per room per process.

A broadcast crosses the channel layer once per process (not once per socket):
each process that has sockets in a room is one member of that room's group,
receives the broadcast once and writes the once-encoded frames to its own
sockets. Group names allow only ASCII letters, digits, ``-_.`` and fewer than
100 characters, so a room name is mapped to a readable prefix plus a SHA-256
of the exact (namespace, room) pair: any Unicode name works and two rooms
never share a group.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .namespaces import Socket

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# A socket id is the key of the process that holds it (6 hex digits, as in Engine.IO sids) and
# 14 random URL-safe characters: 20 characters, the length of Socket.IO's own ids.
_SOCKET_ID = re.compile(r"[0-9a-f]{6}[A-Za-z0-9_-]{14}")
KEY_LENGTH = 6


def new_socket_id(key: str) -> str:
    return key + secrets.token_urlsafe(10)


def owner_key(room: str) -> str | None:
    """The process key a room named like a socket id starts with; None for any other room.

    A socket's own room is not a channel-layer group in the process that holds
    the socket: a broadcast to a socket id goes straight to that process's
    channel. One SUBSCRIBE per connecting socket queued every ``join`` of a
    connect storm behind thousands of others (join acks over 10 s with 5,000
    clients in the soak). Other processes whose sockets joined that room still
    subscribe its group, so a broadcast to such a room reaches them too.
    """
    return room[:KEY_LENGTH] if _SOCKET_ID.fullmatch(room) else None


def group_name(namespace: str, room: str | None = None) -> str:
    """The channel-layer group of a room (or, with ``room=None``, of the whole namespace)."""
    key = f"{namespace}\x00" if room is None else f"{namespace}\x00\x01{room}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    readable = _UNSAFE.sub("", f"{namespace}.{room or ''}")[:24]
    return f"rt.{readable}.{digest}"


class LocalRooms:
    """Which of this process's sockets are in which room, per namespace."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, set[Socket]]] = defaultdict(lambda: defaultdict(set))
        self.sockets: dict[str, dict[str, Socket]] = defaultdict(dict)  # namespace -> socket id -> socket

    def add_socket(self, socket: Socket) -> bool:
        """Register a connected socket; True when it is the first of its namespace here."""
        members = self.sockets[socket.namespace]
        first = not members
        members[socket.id] = socket
        return first

    def remove_socket(self, socket: Socket) -> tuple[list[str], bool]:
        """Forget a socket: (rooms this process no longer has members in, namespace now empty here)."""
        emptied = [room for room in list(socket.rooms) if self.discard(socket, room)]
        members = self.sockets.get(socket.namespace, {})
        members.pop(socket.id, None)
        if not members:
            self.sockets.pop(socket.namespace, None)
        return emptied, not members

    def add(self, socket: Socket, room: str) -> bool:
        """True when ``socket`` is the first local member of ``room``."""
        members = self.rooms[socket.namespace][room]
        first = not members
        members.add(socket)
        return first

    def discard(self, socket: Socket, room: str) -> bool:
        """True when ``room`` has no local member left."""
        by_room = self.rooms.get(socket.namespace)
        if by_room is None or room not in by_room:
            return False
        members = by_room[room]
        members.discard(socket)
        if members:
            return False
        del by_room[room]
        if not by_room:
            del self.rooms[socket.namespace]
        return True

    def select(
        self,
        namespace: str,
        rooms: Iterable[str] = (),
        except_rooms: Iterable[str] = (),
        except_ids: Iterable[str] = (),
    ) -> list[Socket]:
        """The local sockets a broadcast reaches: in any of ``rooms`` (all when empty), none of ``except_rooms``."""
        by_room = self.rooms.get(namespace, {})
        rooms = tuple(rooms)
        if rooms:
            chosen: dict[str, Socket] = {}
            for room in rooms:
                for socket in by_room.get(room, ()):
                    chosen[socket.id] = socket
        else:
            chosen = dict(self.sockets.get(namespace, {}))
        for room in except_rooms:
            for socket in by_room.get(room, ()):
                chosen.pop(socket.id, None)
        for socket_id in except_ids:
            chosen.pop(socket_id, None)
        return list(chosen.values())

    def room_names(self, namespace: str) -> list[str]:
        return list(self.rooms.get(namespace, {}))


local = LocalRooms()
