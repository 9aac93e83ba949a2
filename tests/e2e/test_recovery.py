"""Connection state recovery across processes, with socket.io-client@4 (Node) through a round-robin proxy.

Two daphne processes on one Redis with REALTIME["CONNECTION_STATE_RECOVERY"] on. A client loses its
WebSocket, events go to its room and to it directly while it is away, and it reconnects through
the proxy to the other process: same id, its rooms and socket.data back, `recovered` on both
sides, every missed event once, in order, before anything new. Then the same after `kill -9` of
the process that held it. A deliberate disconnect is not recovered.
"""

import aiohttp
import pytest

from tests.cluster import Cluster, ensure_redis_installed
from tests.conftest import run_node

RECONNECT = {
    "transports": ["websocket"],
    "reconnection": True,
    # away for a second, so the test's emits land while it is
    "reconnectionDelay": 1000,
    "reconnectionDelayMax": 1000,
    "randomizationFactor": 0,
}


@pytest.fixture
def recovery_cluster():
    ensure_redis_installed()
    cluster = Cluster(2, env={"REALTIME_RECOVERY": "1"}).start()
    yield cluster
    cluster.stop()


async def connect_on_other_process(agent, url, key):
    """A client on any process but the one with ``key`` (the proxy hands each connection to the next)."""
    for attempt in range(4):
        socket = await agent.socket(f"other{attempt}").connect(url, "websocket")
        if (await socket.emit_with_ack("recovery"))[0]["process"] != key:
            return socket
        await socket.disconnect()
    raise AssertionError("the proxy kept sending every connection to one process")


async def aim_next_connection_away_from(url, key):
    """Advance the round-robin proxy until the next connection goes to a process without ``key``.

    A handshake's sid starts with the key of the process that answered it: once one does, the
    next request goes to the other of the two.
    """
    async with aiohttp.ClientSession() as http:
        for _ in range(4):
            async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as response:
                if (await response.text()).startswith(f'0{{"sid":"{key}'):
                    return
    raise AssertionError("no handshake reached the process holding the client")


async def away_and_back(agent, cluster, kill=False, terminate=False):
    url = cluster.proxy.url
    client = await agent.socket("client").open(url, "websocket", **RECONNECT)
    _, (first_id, _) = await client.next("connect")
    auth, offset = await client.next_event("welcome")  # socket.emit carries an offset too
    assert auth == {} and isinstance(offset, str)
    assert await client.emit_with_ack("remember", "kept") == [True]
    assert await client.emit_with_ack("join", "r") == [["r"]]
    [before] = await client.emit_with_ack("recovery")
    assert (before["id"], before["recovered"], before["rooms"]) == (first_id, False, sorted([first_id, "r"]))
    other = await connect_on_other_process(agent, url, before["process"])
    if kill or terminate:
        [holder] = [s for s in cluster.servers if s.process.pid == before["pid"]]
        holder.kill() if kill else holder.stop()
    else:
        await client.break_transport()
    _, [reason] = await client.next("disconnect")
    assert reason in ("transport close", "transport error", "forced close")  # forced: engine.close() here
    # while it is away: to its room, to it directly (binary too), to its room again
    for spec in (
        {"to": ["r"], "event": "news", "args": [1]},
        {"to": [first_id], "event": "direct", "args": [{"b": b"\x01"}]},
        {"to": ["r"], "event": "news", "args": [2]},
    ):
        assert await other.emit_with_ack("broadcast", spec) == ["sent"]
    if not (kill or terminate):
        await aim_next_connection_away_from(url, before["process"])
    _, (second_id, _) = await client.next("connect", timeout=10)
    assert second_id == first_id
    assert (await client.state())["recovered"] is True
    [after] = await client.emit_with_ack("recovery")
    assert (after["id"], after["recovered"], after["note"]) == (first_id, True, "kept")
    assert after["rooms"] == sorted([first_id, "r"])
    assert after["process"] != before["process"]
    assert await other.emit_with_ack("broadcast", {"to": ["r"], "event": "news", "args": [3]}) == ["sent"]
    seen = []
    while [name for name, *_ in seen].count("news") < 3:
        _, args = await client.next("event", timeout=5)
        seen.append(args)
    delivered = [(name, first) for name, first, *_ in seen if name in ("news", "direct")]
    assert delivered == [("news", 1), ("direct", {"b": b"\x01"}), ("news", 2), ("news", 3)]
    # each with its offset as the last argument, as Node's server sends it, and each offset once
    offsets = [args[-1] for args in seen if args[0] in ("news", "direct")]
    assert all(isinstance(o, str) for o in offsets) and len(set(offsets)) == 4
    # on_connect ran again for the recovered socket; what it emitted (welcome) comes after what was missed
    names = [name for name, *_ in seen]
    assert names.index("welcome") == 3, names


async def test_recovered_on_another_process(agent, recovery_cluster):
    await away_and_back(agent, recovery_cluster)


async def test_a_deliberate_disconnect_is_not_recovered(agent, recovery_cluster):
    url = recovery_cluster.proxy.url
    client = await agent.socket("client").connect(url, "websocket")
    await client.next_event("welcome")
    await client.disconnect()
    again = await agent.socket("again").connect(url, "websocket")
    assert again.id != client.id and (await again.state())["recovered"] is False


async def test_recovered_after_kill_9_of_the_process_that_held_it(agent, recovery_cluster):
    await away_and_back(agent, recovery_cluster, kill=True)


async def test_recovered_after_sigterm_of_the_process_that_held_it(agent, recovery_cluster):
    """A deploy: the process shuts down ("server shutting down"), its clients recover on the other."""
    await away_and_back(agent, recovery_cluster, terminate=True)


@pytest.mark.parametrize("kill", [False, True], ids=["transport-lost", "kill-9"])
def test_recovered_in_chromium(recovery_cluster, browser_ready, kill):
    pids = [server.process.pid for server in recovery_cluster.servers]
    report = run_node("browser_recovery.mjs", recovery_cluster.proxy.url, {"kill": kill, "pids": pids}, timeout=90)
    assert report["error"] is None, report["error"]
    assert report["pageErrors"] == []
    before, after = report["before"], report["after"]
    assert (before["recovered"], before["rooms"]) == (False, sorted([before["id"], "r"]))
    assert after["recovered"] is True  # the page's socket.recovered
    assert (after["id"], after["rooms"], after["note"]) == (before["id"], before["rooms"], "kept")
    assert after["process"] != before["process"]
    seen = report["seen"]
    reconnected = [i for i, (name, *_) in enumerate(seen) if name == "(connect)"][1]
    assert seen[reconnected][1:] == [before["id"], True]
    events = [(name, args[0]) for name, *args in seen[reconnected:] if name in ("news", "direct")]
    assert events == [("news", 1), ("direct", "two"), ("news", 3), ("news", 4)]


async def test_what_was_sent_while_redis_was_away_arrives_with_offsets_a_client_recovers_from(agent, recovery_cluster):
    """Redis (channel layer and recovery store) away: broadcasts wait in the outbox, packets in the backlog.

    The client stays on b through the outage; what a sent meanwhile reaches it once Redis is back, each
    with its offset. Then it loses its transport: it recovers from the offset of a packet sent during the
    outage, which a wrote to the store late (without that backlog, the offset would be unknown).
    """
    a, b = recovery_cluster.servers
    client = await agent.socket("client").open(b.url, "websocket", **RECONNECT)
    _, (client_id, _) = await client.next("connect")
    await client.next_event("welcome")
    assert await client.emit_with_ack("join", "r") == [["r"]]
    sender = await agent.socket("sender").connect(a.url, "websocket")
    marks = [a.mark(), b.mark()]
    recovery_cluster.redis.stop()
    for server, mark in zip((a, b), marks, strict=True):
        await server.await_log(r"channel layer unreachable", since=mark)
    for i in (1, 2):
        assert await sender.emit_with_ack("broadcast", {"to": ["r"], "event": "news", "args": [i]}) == ["sent"]
    await a.await_log(r"recovery store unreachable, packets kept", since=marks[0])
    recovery_cluster.redis.start()
    missed = [await client.next_event("news", timeout=5) for _ in range(2)]
    assert [args[0] for args in missed] == [1, 2]
    assert all(isinstance(args[-1], str) for args in missed)  # each with its offset
    await a.await_log(r"recovery store reachable again: [1-9]\d* packets", since=marks[0], timeout=5)

    await client.break_transport()
    await client.next("disconnect")
    assert await sender.emit_with_ack("broadcast", {"to": ["r"], "event": "news", "args": [3]}) == ["sent"]
    _, (again_id, _) = await client.next("connect", timeout=10)
    assert again_id == client_id and (await client.state())["recovered"] is True
    assert (await client.next_event("news"))[0] == 3
    for server, mark in zip((a, b), marks, strict=True):
        log = server.log()[mark:]
        assert "ERROR" not in log and "Traceback" not in log, log
