"""Rooms and broadcast operators, observed by several real socket.io-client sockets."""

import pytest

pytestmark = pytest.mark.both_servers  # every test here runs on daphne and on uvicorn (tests/conftest.py)


async def clients(agent, url, transport, *names):
    return [await agent.socket(name).connect(url, transport) for name in names]


async def heard(socket, event="news"):
    """Every ``event`` a socket heard, after a final marker proves everything before it arrived."""
    await socket.emit_with_ack("echo")  # round trip: earlier server writes to this socket have landed
    return [args[1:] for kind, args in socket.drain() if kind == "event" and args[0] == event]


async def broadcast(sender, **spec):
    assert await sender.emit_with_ack("broadcast", {"event": "news", **spec}) == ["sent"]


async def test_room_membership_is_reported(agent, server, transport):
    (a,) = await clients(agent, server.url, transport, "a")
    assert await a.emit_with_ack("join", "r1", "r2", "ünïcødé 房间 🚪") == [["r1", "r2", "ünïcødé 房间 🚪"]]
    assert await a.emit_with_ack("leave", "r1") == [["r2", "ünïcødé 房间 🚪"]]


async def test_to_one_room_many_rooms_and_except(agent, server, transport):
    a, b, c, d = await clients(agent, server.url, transport, "a", "b", "c", "d")
    for socket, rooms in ((b, ["red"]), (c, ["red", "blue"]), (d, ["blue", "vip"])):
        await socket.emit_with_ack("join", *rooms)

    await broadcast(a, to=["red"], args=[1])
    await broadcast(a, to=["red", "blue"], args=[2])  # c is in both: it hears this once
    await broadcast(a, to=["red", "blue"], **{"except": ["vip"]}, args=[3])
    await broadcast(a, **{"except": ["red"]}, include_self=True, args=[4])  # everyone in "/" but red
    await broadcast(a, args=[5])  # socket.broadcast: everyone but the sender
    await broadcast(a, to=[b.id], args=[6])  # a socket's own room

    assert await heard(a) == [[4]]
    assert await heard(b) == [[1], [2], [3], [5], [6]]
    assert await heard(c) == [[1], [2], [3], [5]]
    assert await heard(d) == [[2], [4], [5]]


async def test_to_a_room_from_the_namespace_includes_the_sender(agent, server, transport):
    a, b = await clients(agent, server.url, transport, "a", "b")
    await a.emit_with_ack("join", "both")
    await b.emit_with_ack("join", "both")
    await broadcast(a, to=["both"], include_self=True, args=["all"])
    assert await heard(a) == [["all"]]
    assert await heard(b) == [["all"]]


async def test_leaving_a_room_stops_delivery(agent, server, transport):
    a, b = await clients(agent, server.url, transport, "a", "b")
    await b.emit_with_ack("join", "temp")
    await broadcast(a, to=["temp"], args=["in"])
    await b.emit_with_ack("leave", "temp")
    await broadcast(a, to=["temp"], args=["out"])
    assert await heard(b) == [["in"]]


async def test_disconnected_sockets_leave_their_rooms(agent, server, transport):
    a, b = await clients(agent, server.url, transport, "a", "b")
    await b.emit_with_ack("join", "gone")
    await b.disconnect()
    await broadcast(a, to=["gone"], include_self=True, args=["x"])
    assert await heard(a) == []


async def test_local_reaches_this_process(agent, server, transport):
    a, b = await clients(agent, server.url, transport, "a", "b")
    await broadcast(a, local=True, args=["local"])
    assert await heard(b) == [["local"]]


async def test_volatile_is_dropped_only_when_the_client_cannot_take_it(agent, server, transport):
    a, b = await clients(agent, server.url, transport, "a", "b")
    await broadcast(a, volatile=True, args=["v"])
    got = await heard(b)
    if transport == "websocket":
        assert got == [["v"]]
    else:
        # a polling (or still upgrading) client between two GETs cannot take it: dropped, never late
        assert got in ([], [["v"]])


async def test_volatile_to_a_polling_client_between_gets_is_dropped(agent, server):
    """b polls with a long pause (no GET held), so a volatile broadcast must not queue for it."""
    (a,) = await clients(agent, server.url, "websocket", "a")
    b = await agent.socket("b").connect(server.url, "polling")
    for i in range(20):
        await broadcast(a, volatile=True, args=[i])
        await broadcast(a, args=[f"n{i}"])
    got = await heard(b)
    plain = [g for g in got if isinstance(g[0], str)]
    assert plain == [[f"n{i}"] for i in range(20)]  # the non-volatile ones all arrive, in order
    results = [g[0] for g in got if isinstance(g[0], int)]
    assert results == sorted(results)  # volatile ones that did arrive are in order, none duplicated


async def test_broadcast_with_acks(agent, server, transport):
    a, b, c = await clients(agent, server.url, transport, "a", "b", "c")
    for socket, answer in ((b, "from b"), (c, "from c")):
        await socket.emit_with_ack("join", "askers")
        await socket.reply("question", answer)
    [result] = await a.emit_with_ack("ask-room", "askers", 2.0)
    assert sorted(result["answers"]) == [["from b"], ["from c"]]  # each client's ack arguments, as a list
    await c.silent("question")  # c now ignores the question (a second listener, never acking)
    d = await agent.socket("d").connect(server.url, transport)
    await d.emit_with_ack("join", "askers")
    await d.silent("question")
    [result] = await a.emit_with_ack("ask-room", "askers", 0.5)
    assert result == {"timeout": "1 of 3 clients did not ack"}


async def test_namespace_broadcast_stays_in_its_namespace(agent, server, transport):
    main = await agent.socket("main").connect(server.url, transport)
    team = await agent.socket("team").connect(server.url + "/team-1", transport)
    await team.emit("shout", "team only")
    assert await team.next_event("shout") == ["/team-1", "team only"]
    assert await heard(main, "shout") == []
