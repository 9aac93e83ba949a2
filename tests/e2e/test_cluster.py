"""Several daphne processes on one private Redis: the behaviour of one process, across all of them."""

import asyncio
import json
import time
import urllib.request

import pytest

from tests.cluster import Cluster, ensure_redis_installed


@pytest.fixture(scope="module")
def cluster():
    ensure_redis_installed()
    cluster = Cluster(3).start()
    yield cluster
    cluster.stop()


async def heard(socket, event="news"):
    await socket.emit_with_ack("echo")  # a round trip: what the server wrote before has landed
    return [args[1:] for kind, args in socket.drain() if kind == "event" and args[0] == event]


async def heard_across(socket, count, event="news"):
    """``count`` events that may cross Redis, awaited one by one, then whatever else came.

    A round trip to the socket's own process says nothing of a message still crossing Redis from
    another one, so what is expected is waited for; the round trip after it catches duplicates.
    """
    expected = [await socket.next_event(event) for _ in range(count)]
    return expected + await heard(socket, event)


async def spread(agent, cluster, per_server=2, transport="websocket"):
    """``per_server`` sockets connected straight to each process, named a0, a1, b0, ..."""
    sockets = {}
    for letter, server in zip("abc", cluster.servers, strict=False):
        for i in range(per_server):
            sockets[f"{letter}{i}"] = await agent.socket(f"{letter}{i}").connect(server.url, transport)
    return sockets


async def test_room_broadcast_reaches_every_process_exactly_once(agent, cluster):
    s = await spread(agent, cluster)
    for name in ("a1", "b0", "b1", "c0"):
        await s[name].emit_with_ack("join", "room-x", "room-y")  # in both rooms: still once
    await s["c1"].emit_with_ack("join", "room-y")
    assert await s["a0"].emit_with_ack("broadcast", {"event": "news", "to": ["room-x", "room-y"], "args": [1]}) == [
        "sent"
    ]
    for name in ("a1", "b0", "b1", "c0", "c1"):
        assert await heard_across(s[name], 1) == [[1]], name
    assert await heard(s["a0"]) == []


async def test_except_and_namespace_wide_across_processes(agent, cluster):
    s = await spread(agent, cluster)
    await s["b0"].emit_with_ack("join", "muted")
    await s["c1"].emit_with_ack("join", "muted")
    spec = {"event": "news", "except": ["muted"], "include_self": True, "args": ["all but muted"]}
    assert await s["a0"].emit_with_ack("broadcast", spec) == ["sent"]
    for name, expected in {"a0": 1, "a1": 1, "b0": 0, "b1": 1, "c0": 1, "c1": 0}.items():
        assert await heard_across(s[name], expected) == [["all but muted"]] * expected, name


async def test_local_stays_on_its_process(agent, cluster):
    s = await spread(agent, cluster, per_server=1)
    assert await s["a0"].emit_with_ack("broadcast", {"event": "news", "local": True, "include_self": True}) == ["sent"]
    assert await heard(s["a0"]) == [[]]
    assert await heard(s["b0"]) == []


async def test_emit_to_a_socket_id_on_another_process(agent, cluster):
    s = await spread(agent, cluster, per_server=1)
    assert await s["a0"].emit_with_ack("broadcast", {"event": "news", "to": [s["c0"].id], "args": ["dm"]}) == ["sent"]
    # waited for: a round trip to c0's own process says nothing of a message still crossing Redis
    assert await s["c0"].next_event("news") == ["dm"]
    assert await heard(s["c0"]) == []  # and only once


async def test_a_socket_ids_room_joined_on_other_processes_reaches_each_member_once(agent, cluster):
    """A socket's own room is no group where it lives (direct routing), yet others may join it."""
    s = await spread(agent, cluster, per_server=2)
    target = s["c0"].id
    assert len(target) == 20
    for name in ("a1", "b0", "c1"):  # another process's socket, and one beside the target
        await s[name].emit_with_ack("join", target, "room-z")
    for sender in ("a0", "b1"):
        spec = {"event": "news", "to": [target, "room-z"], "args": [sender]}
        assert await s[sender].emit_with_ack("broadcast", spec) == ["sent"]
        for name in ("a1", "b0", "c0", "c1"):  # the ack comes before other processes deliver: wait for it
            assert await s[name].next_event("news") == [sender], (sender, name)
            assert await heard(s[name]) == [], (sender, name)  # once
    await s["b0"].emit_with_ack("leave", target, "room-z")
    assert await s["a0"].emit_with_ack("broadcast", {"event": "news", "to": [target], "args": ["left"]}) == ["sent"]
    for name in ("a1", "c0", "c1"):
        assert await s[name].next_event("news") == ["left"], name
    assert await heard(s["b0"]) == []


def post_json(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


async def test_emit_from_a_django_view_reaches_all_processes(agent, cluster):
    s = await spread(agent, cluster, per_server=1)
    for socket in s.values():
        await socket.emit_with_ack("join", "viewers")
    body = {"event": "news", "args": ["from a view"], "to": "viewers"}
    assert await asyncio.to_thread(post_json, f"{cluster.servers[1].url}/test/emit/", body) == {"ok": True}
    for socket in s.values():
        assert await socket.next_event("news") == ["from a view"]


async def test_emit_from_the_management_command(agent, cluster):
    s = await spread(agent, cluster, per_server=1)
    await s["b0"].emit_with_ack("join", "ops")
    result = await asyncio.to_thread(cluster.manage, "realtime_emit", "news", '["cli", 1]', "--to", "ops")
    assert result.returncode == 0, result.stderr
    assert "emitted 'news' to ops" in result.stdout
    assert await s["b0"].next_event("news") == ["cli", 1]
    assert await heard(s["a0"]) == []


SHELL_ON_COMMIT = """
from django.db import transaction
from realtime.broadcast import emit_on_commit
with transaction.atomic():
    emit_on_commit("news", "committed", to="tx")
try:
    with transaction.atomic():
        emit_on_commit("news", "rolled back", to="tx")
        raise RuntimeError("roll back")
except RuntimeError:
    pass
emit_on_commit("news", "autocommit", to="tx")
"""


async def test_emit_on_commit_sends_after_commit_and_never_after_rollback(agent, cluster):
    s = await spread(agent, cluster, per_server=1)
    await s["c0"].emit_with_ack("join", "tx")
    result = await asyncio.to_thread(cluster.manage, "shell", "-c", SHELL_ON_COMMIT)
    assert result.returncode == 0, result.stderr
    assert await s["c0"].next_event("news") == ["committed"]
    assert await s["c0"].next_event("news") == ["autocommit"]
    assert await heard(s["c0"]) == []


async def test_fetch_sockets_rooms_and_disconnect_across_processes(agent, cluster):
    ops = await agent.socket("ops").connect(cluster.servers[0].url + "/cluster", "websocket")
    s = await spread(agent, cluster, per_server=1)
    for name in ("b0", "c0"):
        await s[name].emit_with_ack("join", "fetched")
    [found] = await ops.emit_with_ack("fetch", "fetched")
    assert sorted(f[0] for f in found) == sorted([s["b0"].id, s["c0"].id])
    assert len({f[2] for f in found}) == 2  # from two different processes
    [rooms] = await ops.emit_with_ack("rooms")
    assert rooms["fetched"] == 2

    sync_view = await asyncio.to_thread(
        lambda: json.loads(urllib.request.urlopen(f"{cluster.servers[2].url}/test/sockets/?room=fetched").read())
    )
    assert sorted(x["id"] for x in sync_view["sockets"]) == sorted([s["b0"].id, s["c0"].id])

    assert await ops.emit_with_ack("join_room", "fetched", ["joined-later"]) == [2]
    [rooms] = await ops.emit_with_ack("rooms")
    assert rooms["joined-later"] == 2

    assert await ops.emit_with_ack("disconnect_room", "fetched") == [2]
    for name in ("b0", "c0"):
        assert await s[name].next("disconnect") == ("disconnect", ["io server disconnect"])
    [found] = await ops.emit_with_ack("fetch", "fetched")
    assert found == []


async def test_server_side_emit_collects_every_process(agent, cluster):
    ops = await agent.socket("ops").connect(cluster.servers[1].url + "/cluster", "websocket")
    [answers] = await ops.emit_with_ack("server_emit", "hi")
    assert len(answers) == 3
    assert {a[1] for a in answers} == {"hi"}
    assert len({a[0] for a in answers}) == 3


async def test_a_broadcasts_emit_with_ack_collects_every_clients_answer_on_every_process(agent, cluster):
    """As Node's io.timeout(ms).emitWithAck with an adapter: clients on the three processes answer."""
    s = await spread(agent, cluster, per_server=2)
    for name, socket in s.items():
        await socket.emit_with_ack("join", "asked")
        await socket.reply("question", name)
    [result] = await s["b0"].emit_with_ack("ask-room", "asked", 2.0)
    assert sorted(answer for [answer] in result["answers"]) == sorted(s)


async def test_a_client_that_does_not_answer_on_another_process_is_a_timeout_not_a_wait(agent, cluster):
    s = await spread(agent, cluster, per_server=1)
    for name, socket in s.items():
        await socket.emit_with_ack("join", "half-asked")
        await (socket.silent("question") if name == "c0" else socket.reply("question", name))
    start = time.monotonic()
    [result] = await s["a0"].emit_with_ack("ask-room", "half-asked", 0.5)
    assert result == {"timeout": "1 of 3 clients did not ack"}  # c's count came back: not a silent process
    assert time.monotonic() - start < 0.5 + 1.0 + 1.0  # the timeout, the way back, a loaded machine's margin


async def test_server_side_emit_with_ack_answers_from_every_other_process(agent, cluster):
    """Node's serverSideEmitWithAck: the other processes' answers, not this one's; a timeout says how many came."""
    keys = []
    for server in cluster.servers:
        ops = await agent.socket(f"key-{len(keys)}").connect(server.url + "/cluster", "websocket")
        keys.append((await ops.emit_with_ack("key"))[0])
    ops = await agent.socket("ops").connect(cluster.servers[0].url + "/cluster", "websocket")
    [result] = await ops.emit_with_ack("server_emit_with_ack", "nobody", 2.0)
    assert sorted(result["answers"]) == sorted(keys[1:])
    c0 = await agent.socket("c0").connect(cluster.servers[2].url, "websocket")
    sender = await agent.socket("sender").connect(cluster.servers[0].url, "websocket")
    [result] = await ops.emit_with_ack("server_emit_with_ack", keys[2], 0.5)  # c answers after 3 s
    assert result == {"timeout": "timeout reached: only 1 responses received out of 2"}
    # meanwhile c's handler still runs, and c goes on receiving from the layer: it is not in the way
    spec = {"event": "news", "to": [c0.id], "args": ["not held up"]}
    assert await sender.emit_with_ack("broadcast", spec) == ["sent"]
    assert await c0.next_event("news", timeout=1.0) == ["not held up"]


@pytest.mark.parametrize("transport", ["polling", "upgrade", "websocket"])
async def test_round_robin_proxy_without_affinity(agent, cluster, transport):
    """Every request may land on another process: the owner answers through the layer."""
    socket = await agent.socket("p").connect(cluster.proxy.url, transport)
    other = await agent.socket("q").connect(cluster.servers[2].url, "websocket")
    await socket.emit_with_ack("join", "proxied")
    for i in range(30):
        assert await socket.emit_with_ack("echo", i, "x" * i) == [i, "x" * i]
    await other.emit_with_ack("broadcast", {"event": "news", "to": ["proxied"], "args": ["via layer"]})
    assert await socket.next_event("news") == ["via layer"]
    state = await socket.state()
    assert state["connected"]
    assert state["transport"] == ("polling" if transport == "polling" else "websocket")
    logs = "".join(server.log() for server in cluster.servers)
    if transport == "polling":
        assert f"sid={state['sid']}: GET forwarded by" in logs
        assert f"sid={state['sid']}: POST forwarded by" in logs


@pytest.fixture
def celery_worker(cluster, tmp_path):
    worker = cluster.celery_worker(tmp_path / "celery.log")
    yield worker
    worker.terminate()
    worker.wait(20)


async def test_celery_worker_emits(agent, cluster, celery_worker):
    s = await spread(agent, cluster, per_server=1)
    await s["a0"].emit_with_ack("join", "celery")
    send = "from project.celery import notify; notify.delay('news', {'from': 'celery'}, room='celery')"
    result = await asyncio.to_thread(cluster.python, send)
    assert result.returncode == 0, result.stderr
    assert await s["a0"].next_event("news", timeout=30) == [{"from": "celery"}]
    assert await heard(s["b0"]) == []


@pytest.fixture
def small_cluster():
    """A cluster of two that a test may damage (kill a process, restart Redis)."""
    cluster = Cluster(2).start()
    yield cluster
    cluster.stop()


async def test_a_killed_process_vanishes_and_the_others_keep_serving(agent, small_cluster):
    a, b = small_cluster.servers
    ops = await agent.socket("ops").connect(a.url + "/cluster", "websocket")
    x = await agent.socket("x").connect(a.url, "websocket")
    y = await agent.socket("y").connect(b.url, "websocket")
    for socket in (x, y):
        await socket.emit_with_ack("join", "k")
    [found] = await ops.emit_with_ack("fetch", "k")
    assert sorted(f[0] for f in found) == sorted([x.id, y.id])

    mark = a.mark()
    b.kill()
    assert await y.next("disconnect") == ("disconnect", ["transport close"])
    [found] = await ops.emit_with_ack("fetch", "k")  # answers within CLUSTER_TIMEOUT, without b
    assert [f[0] for f in found] == [x.id]
    # detected within 3 heartbeats (300 ms each here)
    await a.await_log(r"peer \S+ silent for 3 heartbeats: considered dead", since=mark, timeout=3)
    [rooms] = await ops.emit_with_ack("rooms")
    assert rooms["k"] == 1
    assert await x.emit_with_ack("echo", "still served") == ["still served"]


async def test_redis_restart_under_load(agent, small_cluster):
    a, b = small_cluster.servers
    x = await agent.socket("x").connect(a.url, "websocket")
    y = await agent.socket("y").connect(b.url, "websocket")
    for socket in (x, y):
        await socket.emit_with_ack("join", "r")
    spec = {"event": "news", "to": ["r"], "include_self": True}
    await x.emit_with_ack("broadcast", {**spec, "args": ["before"]})
    assert await heard_across(y, 1) == [["before"]]
    assert await heard(x) == [["before"]]

    mark_a, mark_b = a.mark(), b.mark()
    small_cluster.redis.stop()
    # local traffic never stops
    for i in range(20):
        assert await x.emit_with_ack("echo", i) == [i]
    await x.emit_with_ack("broadcast", {**spec, "args": ["during"]})
    assert await heard(x) == [["during"]]
    for server, mark in ((a, mark_a), (b, mark_b)):
        await server.await_log(r"WARNING realtime\.node: channel layer unreachable", since=mark)

    small_cluster.redis.start()
    # cross-process traffic resumes by itself
    async with asyncio.timeout(20):
        while True:
            await x.emit_with_ack("broadcast", {**spec, "args": ["after"]})
            if ["after"] in await heard(y):
                break
            await asyncio.sleep(0.2)  # retry cadence while the layer reconnects, not synchronisation
    for server, mark in ((a, mark_a), (b, mark_b)):  # the logs say what happened
        log = server.log()[mark:]
        assert "channel layer unreachable" in log
        await server.await_log(r"channel layer reachable again; cross-process traffic resumes", since=mark)
