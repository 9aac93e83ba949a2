"""Declared rooms: a client's ``enter`` (``socket.join_checked``) obeys the Room's policy.

Refusals come back as the ack ``{"error": ...}``; undeclared rooms stay free
unless ``REQUIRE_DECLARED_ROOMS``. Rooms are declared from the pytest
process, which shares the cluster's database and Redis: every server process
forgets its cached copy of the declared rooms when one changes.
"""

import itertools

import pytest

from tests.admin_client import make_token, make_user, unique
from tests.servers import ServerProcess

_names = itertools.count()


def declare(**fields):
    from django.contrib.auth.models import Group

    from realtime.models import Room

    users, groups = fields.pop("users", ()), fields.pop("groups", ())
    room = Room.objects.create(name=unique("room"), **fields)
    room.users.set(users)
    room.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
    return room


async def client(agent, cluster, orm, user=None, server=0, transport="websocket"):
    auth = {}
    if user is not None:
        auth["token"] = (await orm(make_token, user))[1]
    return await agent.socket(f"c{next(_names)}").connect(cluster.servers[server].url, transport, auth=auth)


async def enter(socket, room):
    [answer] = await socket.emit_with_ack("enter", room)
    return answer


async def test_undeclared_and_public_rooms_admit_anyone(cluster, agent, orm):
    public = await orm(declare, access="public")
    anonymous = await client(agent, cluster, orm)
    assert await enter(anonymous, "free-for-all") == ["free-for-all"]
    assert await enter(anonymous, public.name) == sorted(["free-for-all", public.name])


async def test_authenticated_rooms_refuse_anonymous_clients(cluster, agent, orm):
    room = await orm(declare, access="authenticated")
    user = await orm(make_user, "member")
    assert await enter(await client(agent, cluster, orm, server=1), room.name) == {"error": "permission denied"}
    assert await enter(await client(agent, cluster, orm, user, server=1, transport="polling"), room.name) == [room.name]


async def test_rooms_for_listed_users_groups_or_a_permission(cluster, agent, orm):
    alice = await orm(make_user, "alice")
    bob = await orm(make_user, "bob", groups=("moderators",))
    carol = await orm(make_user, "carol", perms=("realtime.view_room",))
    users_room = await orm(declare, access="users", users=[alice])
    groups_room = await orm(declare, access="groups", groups=("moderators",))
    perm_room = await orm(declare, access="permission", permission="realtime.view_room")
    sockets = {
        u.username: await client(agent, cluster, orm, u, server=i % 2) for i, u in enumerate((alice, bob, carol))
    }
    admitted = {
        (who, room.access)
        for who, socket in sockets.items()
        for room in (users_room, groups_room, perm_room)
        if await enter(socket, room.name) != {"error": "permission denied"}
    }
    assert admitted == {(alice.username, "users"), (bob.username, "groups"), (carol.username, "permission")}


async def test_closed_and_full_rooms(cluster, agent, orm):
    from realtime.models import Room

    closed = await orm(declare, is_open=False)
    small = await orm(declare, member_limit=2)
    a, b, c = [await client(agent, cluster, orm, server=i % 2) for i in range(3)]
    assert await enter(a, closed.name) == {"error": "room is closed"}
    assert await enter(a, small.name) == [small.name]
    assert await enter(b, small.name) == [small.name]  # on the other process: counted cluster-wide
    assert await enter(c, small.name) == {"error": "room is full"}
    assert await enter(a, small.name) == [small.name]  # already in: no check

    # opening it, from this process, reaches every server's copy of the declared rooms
    await orm(Room.objects.filter(pk=closed.pk).update, is_open=True)  # update(): no signal, cache kept
    assert await enter(c, closed.name) == {"error": "room is closed"}
    room = await orm(Room.objects.get, pk=closed.pk)
    await orm(room.save)
    assert await enter(c, closed.name) == [closed.name]


async def test_a_sync_handler_gets_the_refusal_too(cluster, agent, orm):
    closed = await orm(declare, is_open=False)
    socket = await client(agent, cluster, orm)
    assert await socket.emit_with_ack("sync_enter", closed.name) == [{"error": "room is closed"}]
    assert await socket.emit_with_ack("sync_enter", "open-door") == ["entered"]


@pytest.fixture(scope="module")
def strict_server(django_db_setup):
    process = ServerProcess(
        "tests.settings", app="tests.asgi:application", env={"REALTIME_REQUIRE_DECLARED_ROOMS": "1"}
    ).start()
    yield process
    process.stop()


async def test_require_declared_rooms(strict_server, agent, orm):
    declared = await orm(declare, access="public")
    socket = await agent.socket("strict").connect(strict_server.url, "websocket")
    assert await enter(socket, "made-up") == {"error": "no such room"}
    assert await enter(socket, declared.name) == [declared.name]
    # server code may still join any room: only the client-facing path is checked
    assert await socket.emit_with_ack("join", "made-up") == [sorted(["made-up", declared.name])]
