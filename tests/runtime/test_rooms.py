"""Rooms and broadcasts across runtimes: each member gets a broadcast exactly once, wherever it lives."""

from tests.runtime.harness import Client


async def spread(cluster, per_process=2):
    """Clients a0, a1, b0, b1, c0, c1: ``per_process`` connected to each process."""
    clients = {}
    for letter, process in zip("abc", cluster, strict=True):
        for i in range(per_process):
            clients[f"{letter}{i}"] = await process.connect()
    return clients


async def heard(sender: Client, *clients: Client, event="news"):
    """What each client got of ``event``, fenced: ``sender`` then broadcasts "fence" to everyone.

    A process sends its layer messages in order and each receiver reads its
    channel in order, so once a client has the fence, every earlier broadcast
    of the sender that reached it has arrived too; no sleep, no guess.
    """
    await sender.call("broadcast", {"event": "fence", "include_self": True})
    for client in clients:
        await client.next(lambda f: isinstance(f, str) and '["fence"' in f)
    return [client.events(event) for client in clients]


async def test_a_broadcast_to_several_rooms_reaches_every_member_once(cluster):
    s = await spread(cluster)
    for name in ("a1", "b0", "b1", "c0"):
        await s[name].call("join", "room-x", "room-y")
    await s["c1"].call("join", "room-y")
    assert await s["a0"].call("broadcast", {"event": "news", "to": ["room-x", "room-y"], "args": [1]}) == ["sent"]
    names = ["a0", "a1", "b0", "b1", "c0", "c1"]
    got = await heard(s["a0"], *(s[n] for n in names))
    assert dict(zip(names, got, strict=True)) == {"a0": [], **{n: [[1]] for n in names[1:]}}


async def test_a_socket_id_reaches_its_process_directly_and_members_elsewhere(cluster):
    """The holder of a socket does not subscribe its own room's group; other processes' members do."""
    s = await spread(cluster)
    target = s["c0"].id
    holder = cluster[2].runtime
    assert target.startswith(holder.key)
    for name in ("a1", "b0"):
        await s[name].call("join", target)
    assert not any(target in group for group in holder.rooms.groups(holder.key))
    assert await s["b1"].call("broadcast", {"event": "news", "to": [target], "args": ["dm"]}) == ["sent"]
    expected = {"a0": 0, "a1": 1, "b0": 1, "c0": 1, "c1": 0}
    got = await heard(s["b1"], *(s[n] for n in expected))
    assert dict(zip(expected, got, strict=True)) == {n: [["dm"]] * k for n, k in expected.items()}


async def test_except_and_namespace_wide_across_processes(cluster):
    s = await spread(cluster)
    await s["b0"].call("join", "muted")
    await s["c1"].call("join", "muted")
    spec = {"event": "news", "except": ["muted"], "include_self": True, "args": ["all but muted"]}
    assert await s["a0"].call("broadcast", spec) == ["sent"]
    expected = {"a0": 1, "a1": 1, "b0": 0, "b1": 1, "c0": 1, "c1": 0}
    got = await heard(s["a0"], *(s[n] for n in expected))
    assert dict(zip(expected, got, strict=True)) == {n: [["all but muted"]] * k for n, k in expected.items()}


async def test_local_stays_on_its_process(cluster):
    s = await spread(cluster, per_process=1)
    assert await s["a0"].call("broadcast", {"event": "news", "local": True, "include_self": True}) == ["sent"]
    assert await heard(s["a0"], s["a0"], s["b0"], s["c0"]) == [[[]], [], []]


async def test_membership_has_one_owner_and_leaving_unsubscribes(cluster):
    """Rooms answers for the socket (socket.rooms), the namespace and the group list alike."""
    a = cluster[0]
    client = await a.connect()
    await client.call("join", "lobby")
    member = a.runtime.rooms.members("/")[0]
    socket = member.handle
    assert socket.rooms == {client.id, "lobby"}
    assert [m.id for m in a.runtime.rooms.select("/", ["lobby"])] == [client.id]
    assert any("lobby" in group for group in a.runtime.rooms.groups(a.runtime.key))
    await client.call("leave", "lobby")
    assert socket.rooms == {client.id}
    assert a.runtime.rooms.select("/", ["lobby"]) == []
    assert not any("lobby" in group for group in a.runtime.rooms.groups(a.runtime.key))
