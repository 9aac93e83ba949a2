"""Rooms: which of this process's sockets are in which room (the one owner of that), and delivery.

A broadcast crosses the channel layer once per process (not once per socket):
each process that has sockets in a room is one member of that room's group,
receives the broadcast once and writes the once-encoded frames to its own
sockets. Group names allow only ASCII letters, digits, ``-_.`` and fewer than
100 characters, so a room name is mapped to a readable prefix plus a SHA-256
of the exact (namespace, room) pair: any Unicode name works and two rooms
never share a group.

A ``Member`` is a socket as delivery sees it: the session its frames go to and
the rooms it is in. The user-facing ``Socket`` (namespaces.py) wraps one and
asks ``Rooms`` for its rooms, so a broadcast goes down from the encoder to the
sessions and never climbs back up through the Socket API.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .logs import throttled
from .sessions import Outgoing, Session

logger = logging.getLogger("realtime.socketio")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# A socket id is the key of the process that holds it (6 hex digits, as in Engine.IO sids) and
# 14 random URL-safe characters: 20 characters, the length of Socket.IO's own ids. A Socket.IO v2
# client's are its Engine.IO sid (the key and 20 more), behind "<namespace>#" outside "/".
# What Member.deliver did with a packet (the caller counts them: realtime.metrics).
SENT, NOT_SENT, DROPPED = 1, 0, -1

_SOCKET_ID = re.compile(r"(?:/[^#]*#)?([0-9a-f]{6})(?:[A-Za-z0-9_-]{14}|[A-Za-z0-9_-]{20})")


def group_name(namespace: str, room: str | None = None) -> str:
    """The channel-layer group of a room (or, with ``room=None``, of the whole namespace)."""
    key = f"{namespace}\x00" if room is None else f"{namespace}\x00\x01{room}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    readable = _UNSAFE.sub("", f"{namespace}.{room or ''}")[:24]
    return f"rt.{readable}.{digest}"


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
    match = _SOCKET_ID.fullmatch(room)
    return match.group(1) if match is not None else None


class Member:
    """A socket as this process's delivery sees it: its session, its rooms, what waits for its CONNECT."""

    # one per connected socket: no per-instance __dict__
    __slots__ = (
        "connected",
        "handle",
        "held",
        "id",
        "messages_out",
        "namespace",
        "outgoing_listeners",
        "rooms",
        "session",
    )

    def __init__(self, socket_id: str, namespace: str, session: Session, handle: Any) -> None:
        self.id = socket_id
        self.namespace = namespace
        self.session = session
        self.handle = handle  # the Socket wrapping this member, for the Socket.IO layer's own use
        self.rooms: set[str] = set()  # written by Rooms only
        self.connected = False
        self.held: list[Outgoing] | None = []  # what was emitted during on_connect, sent after CONNECT
        self.messages_out = 0  # read by the live-connection registry
        # tuples until something is added: most sockets never get a listener of their own
        self.outgoing_listeners: Sequence[Callable[..., Any]] = ()

    def __repr__(self) -> str:
        return f"<Member {self.id} {self.namespace}>"

    async def deliver(self, outgoing: Outgoing, volatile: bool = False, event: str = "", args: Any = ()) -> int:
        """Write once-encoded frames to this socket's session (held until its CONNECT is answered).

        SENT when written (or held for after the CONNECT), DROPPED for a volatile packet the client
        could not take now, NOT_SENT for a socket that is gone: the caller counts them.
        """
        held = self.held
        if held is not None:
            held.append(outgoing)
            return SENT
        if not self.connected:
            return NOT_SENT
        session = self.session
        if volatile and not session.can_send_now:
            return DROPPED
        self.messages_out += 1
        if event:
            for listener in self.outgoing_listeners:
                listener(event, *args)
        await session.send_outgoing(outgoing)
        return SENT

    def release(self) -> list[Outgoing]:
        """CONNECT answered: from now on frames go straight out; what was held, in order."""
        held, self.held = self.held or [], None
        self.connected = True
        return held


async def deliver(
    members: Iterable[Member], outgoing: Outgoing, volatile: bool, event: str, args: Any
) -> tuple[int, int]:
    """Write to every member; what goes wrong for one (a listener raising) is logged and skipped.

    Returns (members written to, volatile packets dropped), for the process's metrics.
    """
    sent = dropped = 0
    for member in members:
        try:
            result = await member.deliver(outgoing, volatile, event, args)
        except Exception:
            throttled(
                logger, logging.ERROR, "deliver", "broadcast to %s failed; the others go on", member, exc_info=True
            )
            continue
        if result == SENT:
            sent += 1
        elif result == DROPPED:
            dropped += 1
    return sent, dropped


class Rooms:
    """Which of this process's members are in which room, per namespace: the only copy there is."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, set[Member]]] = {}  # namespace -> room -> members
        self._members: dict[str, dict[str, Member]] = {}  # namespace -> socket id -> member

    def add_member(self, member: Member) -> bool:
        """Register a connected socket; True when it is the first of its namespace here."""
        members = self._members.setdefault(member.namespace, {})
        first = not members
        members[member.id] = member
        return first

    def member(self, namespace: str, socket_id: str) -> Member | None:
        """This process's connected socket with that id in ``namespace``, if there is one."""
        return self._members.get(namespace, {}).get(socket_id)

    def remove_member(self, member: Member) -> tuple[list[str], bool]:
        """Forget a socket and its rooms: (rooms this process no longer has members in, namespace now empty)."""
        emptied = [room for room in list(member.rooms) if self.leave(member, room)]
        members = self._members.get(member.namespace, {})
        if members.get(member.id) is member:
            del members[member.id]
        if not members:
            self._members.pop(member.namespace, None)
        return emptied, not members

    def join(self, member: Member, room: str) -> bool:
        """True when ``member`` is the first local member of ``room``."""
        member.rooms.add(room)
        by_room = self._rooms.setdefault(member.namespace, {})
        members = by_room.get(room)
        if members is None:
            by_room[room] = {member}
            return True
        members.add(member)
        return False

    def leave(self, member: Member, room: str) -> bool:
        """True when ``room`` has no local member left."""
        member.rooms.discard(room)
        by_room = self._rooms.get(member.namespace)
        if by_room is None or room not in by_room:
            return False
        members = by_room[room]
        members.discard(member)
        if members:
            return False
        del by_room[room]
        if not by_room:
            del self._rooms[member.namespace]
        return True

    def select(
        self,
        namespace: str,
        rooms: Iterable[str] = (),
        except_rooms: Iterable[str] = (),
        except_ids: Iterable[str] = (),
    ) -> list[Member]:
        """The local members a broadcast reaches: in any of ``rooms`` (all when empty), none of ``except_rooms``."""
        by_room = self._rooms.get(namespace, {})
        rooms = tuple(rooms)
        if rooms:
            chosen: dict[str, Member] = {}
            for room in rooms:
                for member in by_room.get(room, ()):
                    chosen[member.id] = member
        else:
            chosen = dict(self._members.get(namespace, {}))
        for room in except_rooms:
            for member in by_room.get(room, ()):
                chosen.pop(member.id, None)
        for socket_id in except_ids:
            chosen.pop(socket_id, None)
        return list(chosen.values())

    def first_via(
        self, namespace: str, via: str, rooms: Sequence[str], except_rooms: Iterable[str], except_ids: Iterable[str]
    ) -> list[Member]:
        """The members a broadcast to several rooms reaches through ``via``: not through an earlier room.

        Another process publishes one message per room; a member in several of
        them gets the broadcast only through the first, so exactly once.
        """
        earlier = rooms[: rooms.index(via)] if via in rooms else ()
        return [
            m
            for m in self.select(namespace, (via,), except_rooms, except_ids)
            if not any(r in m.rooms for r in earlier)
        ]

    def members(self, namespace: str | None = None) -> list[Member]:
        """This process's members, of one namespace or all."""
        if namespace is not None:
            return list(self._members.get(namespace, {}).values())
        return [member for members in list(self._members.values()) for member in list(members.values())]

    def namespaces(self) -> dict[str, int]:
        """Namespace -> how many members it has here."""
        return {name: len(members) for name, members in self._members.items()}

    def counts(self, namespace: str) -> dict[str, int]:
        """Every room of ``namespace`` with its local member count, sockets' own rooms left out."""
        ids = self._members.get(namespace, {})
        return {room: len(members) for room, members in self._rooms.get(namespace, {}).items() if room not in ids}

    def groups(self, key: str) -> list[str]:
        """The channel-layer groups this process must be in (after an outage, it subscribes to them afresh)."""
        groups = [group_name(namespace) for namespace in self._members]
        for namespace, by_room in self._rooms.items():
            groups.extend(group_name(namespace, room) for room in by_room if owner_key(room) != key)
        return groups
