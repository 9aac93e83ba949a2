"""Cluster-wide requests between runtimes: fetch, join, leave, disconnect, rooms, and a process that dies."""

import asyncio

import pytest

from realtime.protocol.cluster import (
    DisconnectSockets,
    FetchRooms,
    FetchSockets,
    RoomsChanged,
    SocketsJoin,
    SocketsLeave,
)
from realtime.relays import Route
from realtime.replies import PeerUnavailable
from tests.runtime.test_relays import forward, polling_session

TIMEOUT = 2.0


async def test_fetch_join_leave_and_rooms_answered_by_every_process(cluster):
    a, b, c = cluster
    clients = [await process.connect() for process in cluster for _ in range(2)]
    await clients[2].call("join", "blue")
    answers = await a.runtime.ask_all(FetchSockets(namespace="/", room=None), TIMEOUT)
    assert sorted(s["id"] for answer in answers for s in answer) == sorted(client.id for client in clients)
    assert {s["server"] for answer in answers for s in answer} == {p.runtime.member.id for p in cluster}

    joined = await b.runtime.ask_all(SocketsJoin(namespace="/", room="blue", rooms=("green",)), TIMEOUT)
    assert sum(joined) == 1
    assert sum(await c.runtime.ask_all(SocketsJoin(namespace="/", room=None, rooms=("all",)), TIMEOUT)) == 6
    rooms = {}
    for answer in await a.runtime.ask_all(FetchRooms(namespace="/"), TIMEOUT):
        for room, count in answer.items():
            rooms[room] = rooms.get(room, 0) + count
    assert rooms == {"blue": 1, "green": 1, "all": 6}  # the sockets' own rooms left out
    assert sum(await a.runtime.ask_all(SocketsLeave(namespace="/", room="all", rooms=("all",)), TIMEOUT)) == 6


async def test_disconnect_sockets_across_processes(cluster):
    a, b, _ = cluster
    clients = [await process.connect() for process in cluster]
    await clients[1].call("join", "kick")
    await clients[2].call("join", "kick")
    assert sum(await a.runtime.ask_all(DisconnectSockets(namespace="/", room="kick", close=False), TIMEOUT)) == 2
    for client in clients[1:]:
        assert await client.next(lambda f: f == "41") == "41"  # DISCONNECT: io server disconnect
    assert [m.id for m in b.runtime.rooms.members()] == []
    assert [m.id for m in a.runtime.rooms.members()] == [clients[0].id]


async def test_room_policies_forgotten_everywhere(cluster):
    for process in cluster:
        process.server.policies._rooms = {}  # as if the Room table had been read
    a, b, c = cluster
    assert await a.runtime.tell_all(RoomsChanged())
    await a.runtime.ask_all(FetchRooms(namespace="/"), TIMEOUT)  # a fence: b and c read a's messages in order
    assert b.server.policies._rooms is None
    assert c.server.policies._rooms is None
    assert a.server.policies._rooms == {}  # the sender forgets its own directly (cluster.ainvalidate_room_policies)


async def test_a_dead_process_is_noticed_and_its_requests_fail_at_once(cluster):
    a, b, _ = cluster
    session = await polling_session(b)
    await forward(a, session.sid, "POST", b"40")
    await forward(a, session.sid, "GET")
    held = asyncio.ensure_future(forward(a, session.sid, "GET"))  # b holds it: nothing to send yet
    await b.stop()  # as kill -9: no goodbye, no answer
    answer = await asyncio.wait_for(held, TIMEOUT)  # refused when b is found dead, not at the request's timeout
    assert answer["status"] == 400
    assert not a.runtime.member.peers.is_live(b.runtime.key)
    assert await a.runtime.relays.route(session.sid) is Route.NOWHERE
    with pytest.raises(PeerUnavailable):
        await a.runtime.member.request(b.runtime.key, FetchRooms(namespace="/"), TIMEOUT)
    answers = await a.runtime.ask_all(FetchSockets(namespace="/", room=None), TIMEOUT)
    assert len(answers) == 2  # a and c; nobody waits for b
