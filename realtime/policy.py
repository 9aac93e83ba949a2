"""Room policies: who may join a declared ``Room`` (``Socket.join_checked``).

The declared rooms are read once per process into memory and kept until a
``Room`` changes anywhere (receivers.py asks every process to forget them), so
joining an undeclared room, or a public one, costs no query. Only policies
that depend on the user (groups, permission) or on the room's size (a member
limit) do more work, and only for the rooms that have them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async

from .conf import realtime_settings
from .exceptions import EventRefused

# namespace -> every room of it with its member count, cluster-wide (the server asks the cluster)
RoomCounts = Callable[[str], Awaitable[dict[str, int]]]

ROOM_CLOSED = "room is closed"
ROOM_FULL = "room is full"
NO_SUCH_ROOM = "no such room"
PERMISSION_DENIED = "permission denied"


class RoomRefused(EventRefused):
    """A client may not join a room; raised by ``join_checked``, answered as the ack ``{"error": message}``."""


@dataclass(frozen=True)
class RoomPolicy:
    namespace: str
    name: str
    access: str
    user_ids: frozenset[Any]
    group_names: frozenset[str]
    permission: str
    member_limit: int | None
    is_open: bool


class RoomPolicies:
    """This process's copy of the Room table and the checks made against it.

    Owned by the Socket.IO server, which hands it ``counts`` (a cluster-wide
    member count, asked only for rooms with a member limit); ``invalidate``
    drops the copy, so the next checked join reads the table again.
    """

    def __init__(self, counts: RoomCounts) -> None:
        self.counts = counts
        self._rooms: dict[tuple[str, str], RoomPolicy] | None = None
        self._generation = 0

    async def get(self, namespace: str, room: str) -> RoomPolicy | None:
        if self._rooms is None:
            generation = self._generation
            rooms: dict[tuple[str, str], RoomPolicy] = await database_sync_to_async(_load)()
            if generation == self._generation:  # not invalidated while loading
                self._rooms = rooms
            return rooms.get((namespace, room))
        return self._rooms.get((namespace, room))

    def invalidate(self) -> None:
        self._generation += 1
        self._rooms = None

    async def check_join(self, namespace: str, room: str, user: Any) -> None:
        """Raise ``RoomRefused`` unless ``user`` may join ``room`` of ``namespace`` now."""
        policy = await self.get(namespace, room)
        if policy is None:
            if realtime_settings()["REQUIRE_DECLARED_ROOMS"]:
                raise RoomRefused(NO_SUCH_ROOM)
            return
        if not policy.is_open:
            raise RoomRefused(ROOM_CLOSED)
        if not await _admits(policy, user):
            raise RoomRefused(PERMISSION_DENIED)
        if policy.member_limit is not None:
            members = (await self.counts(namespace)).get(room, 0)
            if members >= policy.member_limit:
                raise RoomRefused(ROOM_FULL)


def _load() -> dict[tuple[str, str], RoomPolicy]:
    from .models import Room

    return {
        (room.namespace, room.name): RoomPolicy(
            namespace=room.namespace,
            name=room.name,
            access=room.access,
            user_ids=frozenset(user.pk for user in room.users.all()),
            group_names=frozenset(group.name for group in room.groups.all()),
            permission=room.permission,
            member_limit=room.member_limit,
            is_open=room.is_open,
        )
        for room in Room.objects.prefetch_related("users", "groups")
    }


async def _admits(policy: RoomPolicy, user: Any) -> bool:
    access = policy.access
    if access == "public":
        return True
    if not user.is_authenticated:
        return False
    if access == "authenticated":
        return True
    if access == "users":
        return user.pk in policy.user_ids
    if access == "groups":
        return bool(await database_sync_to_async(_in_groups)(user, policy.group_names))
    return bool(await database_sync_to_async(user.has_perm)(policy.permission))


def _in_groups(user: Any, names: frozenset[str]) -> bool:
    return bool(names) and user.groups.filter(name__in=names).exists()
