"""Cluster faults against real daphne processes and a real redis-server: sids naming no live
process, a Redis outage, a hung Redis filling the cross-process queue.

Every fault here is answered at once (an error the client acts on), never by a timeout.
"""

import asyncio
import re
import time

import aiohttp
import pytest

from tests.cluster import Cluster, ensure_redis_installed
from tests.faults import counter, lose_nothing_through
from tests.servers import ServerProcess

UNKNOWN = {"code": 1, "message": "Session ID unknown"}
QUEUE_BYTES = 2 * 1024 * 1024
RECONNECTING = {"reconnection": True, "reconnectionDelay": 100, "reconnectionDelayMax": 300}


@pytest.fixture(scope="module")
def faults():
    """Two processes on a private Redis, with a 2 MiB cross-process queue; tests put Redis back."""
    ensure_redis_installed()
    cluster = Cluster(2, env={"REALTIME_CLUSTER_QUEUE_BYTES": str(QUEUE_BYTES)}).start()
    yield cluster
    cluster.stop()


def polling_url(server, sid=None):
    return f"{server.url}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")


async def handshake(http, server):
    async with http.get(polling_url(server)) as response:
        assert response.status == 200
        return re.search(r'"sid":"([^"]+)"', await response.text())[1]


async def timed(request):
    """(status, body, seconds) of one request."""
    start = time.monotonic()
    async with request as response:
        return response.status, await response.read(), time.monotonic() - start


async def fds_settle(server, baseline, timeout=5.0):
    """The server's open descriptors, once back within a few of ``baseline`` (or the last count seen)."""
    deadline = time.monotonic() + timeout
    # /proc has no event to await: read it until it settles
    while (count := server.open_fds()) > baseline + 3 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return count


async def heard(socket, event="news"):
    await socket.emit_with_ack("echo")  # a round trip: what the server wrote before has landed
    return [args[1:] for kind, args in socket.drain() if kind == "event" and args[0] == event]


# -- a sid naming no live process --------------------------------------------------------


async def test_500_gets_naming_no_process_are_refused_at_once_and_release_their_fds(faults):
    a = faults.servers[0]
    baseline, mark = a.open_fds(), a.mark()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        results = await asyncio.gather(
            *(timed(http.get(polling_url(a, f"0f0f0f{i:020d}"))) for i in range(500))  # key 0f0f0f: nobody's
        )
        held = a.open_fds()
    assert {(status, body) for status, body, _ in results} == {(400, b'{"code":1,"message":"Session ID unknown"}')}
    slowest = max(seconds for *_, seconds in results)
    assert slowest < 3.0, f"slowest refusal took {slowest:.2f} s"
    assert await fds_settle(a, baseline) <= baseline + 3, f"fds: {baseline} before, {held} during"
    # one rate-limited line for the lot, not 500
    assert a.log()[mark:].count("is not a live peer; refused") == 1


async def test_post_and_websocket_naming_no_process_are_refused_at_once(faults):
    a = faults.servers[0]
    async with aiohttp.ClientSession() as http:
        status, body, seconds = await timed(http.post(polling_url(a, "0f0f0fpost"), data=b"40"))
        assert (status, body) == (400, b'{"code":1,"message":"Session ID unknown"}')
        assert seconds < 1.0
        start = time.monotonic()
        ws_url = f"{a.ws_url}/socket.io/?EIO=4&transport=websocket&sid=0f0f0fwebsocket"
        with pytest.raises(aiohttp.WSServerHandshakeError):  # refused like any unknown sid: no accept
            await http.ws_connect(ws_url)
        assert time.monotonic() - start < 1.0


async def test_a_process_that_just_started_forwards_at_once_and_a_killed_ones_sids_are_refused(faults):
    """The start-up window: a new process asks its peers to announce themselves before refusing a key."""
    a = faults.servers[0]
    c = ServerProcess("tests.settings", app="tests.asgi:application", env=faults.env).start()
    try:
        await c.await_log(r"Listening on TCP address", timeout=15)  # up, but not a cluster member before a request
        async with aiohttp.ClientSession() as http:
            sid_a = await handshake(http, a)  # fresh: a's session would time out while c starts
            # c's very first request names a's sid: c has not heard a's heartbeat yet, and forwards anyway
            status, body, _ = await timed(http.get(polling_url(c, sid_a)))
            assert status == 200 and body.startswith(b"2"), body  # a's ping, forwarded back by c
            sid_c = await handshake(http, c)
            await a.await_log(rf"peer \S+:{sid_c[:6]} joined", timeout=5)
            mark = a.mark()
            c.kill()
            # asked before a has noticed: answered when c is found dead (3 heartbeats of 300 ms), not held
            status, body, seconds = await timed(http.get(polling_url(a, sid_c)))
            assert (status, body) == (400, b'{"code":1,"message":"Session ID unknown"}')
            assert seconds < 2.5, seconds
            await a.await_log(r"considered dead", since=mark)
            status, body, seconds = await timed(http.get(polling_url(a, sid_c)))
            assert status == 400 and seconds < 0.5
    finally:
        c.stop()


# -- Redis outages ------------------------------------------------------------------------


async def test_redis_outage_local_goes_on_forwarding_fails_fast_and_broadcasts_wait(agent, faults):
    a, b = faults.servers
    x = await agent.socket("x").connect(a.url, "websocket")
    p = await agent.socket("p").connect(a.url, "polling")
    y = await agent.socket("y").connect(b.url, "websocket")
    q = await agent.socket("q").connect(faults.proxy.url, "polling", **RECONNECTING)
    for socket in (x, y):
        await socket.emit_with_ack("join", "o")
    spec = {"event": "news", "to": ["o"], "include_self": True}
    assert await x.emit_with_ack("broadcast", {**spec, "args": ["before"]}) == ["sent"]
    assert await y.next_event("news") == ["before"]  # across Redis: awaited, not assumed by a round trip to b
    assert await heard(y) == []
    assert await heard(x) == [["before"]]
    sid_p = (await p.state())["sid"]

    marks = [a.mark(), b.mark()]
    faults.redis.stop()
    for server, mark in zip((a, b), marks, strict=True):
        await server.await_log(r"WARNING realtime\.node: channel layer unreachable", since=mark)
    # local traffic goes on, over both transports, and a new client can connect (CONNECT waits on no Redis)
    for i in range(5):
        assert await x.emit_with_ack("echo", i) == [i]
        assert await p.emit_with_ack("echo", i) == [i]
    z = await agent.socket("z").connect(a.url, "polling")
    assert await z.emit_with_ack("join", "o") == [["o"]]
    # the demo chat comes and goes: its notices wait in the outbox, its handlers raise nothing
    for i in range(3):
        chat = await agent.socket(f"chat{i}").connect(f"{(a, b)[i % 2].url}/chat", "websocket", auth={"nick": f"n{i}"})
        await chat.next_event("welcome")
        await chat.disconnect()
    # a broadcast waits in the outbox: its sender is not refused, local members get it now
    assert await x.emit_with_ack("broadcast", {**spec, "args": ["during"]}) == ["sent"]
    assert await heard(x) == [["during"]]
    assert await heard(z) == [["during"]]
    assert await heard(y) == []
    # a forwarded request fails fast, and a client without sticky sessions learns at once
    async with aiohttp.ClientSession() as http:
        status, body, seconds = await timed(http.get(polling_url(b, sid_p)))
    assert (status, body) == (400, b'{"code":1,"message":"Session ID unknown"}') and seconds < 1.0
    _, [reason] = await q.next("disconnect", timeout=3)
    assert reason in ("transport error", "transport close")

    faults.redis.start()
    for server, mark in zip((a, b), marks, strict=True):
        await server.await_log(
            r"channel layer reachable again; cross-process traffic resumes \((\d+) cross-process messages kept "
            r"to publish now, (\d+) lost during the outage, (\d+) channel-layer errors not logged",
            since=mark,
            timeout=10,
        )
        log = server.log()[mark:]
        assert log.count("channel layer unreachable") == 1
        assert "ERROR" not in log and "Traceback" not in log, log  # channels-redis's tracebacks are ours now
    # what waited is delivered once the layer is back, once; everything resumes by itself
    assert await y.next_event("news", timeout=5) == ["during"]
    assert await heard(y) == []
    assert (await q.next("connect", timeout=10))[0] == "connect"
    assert await q.emit_with_ack("echo", "back") == ["back"]
    assert await x.emit_with_ack("broadcast", {**spec, "args": ["after"]}) == ["sent"]
    assert await y.next_event("news") == ["after"]


async def test_redis_killed_for_10_s_loses_no_broadcast(agent, faults):
    """Redis SIGKILLed for 10 s under steady broadcasts from both processes, restarted on its port."""

    async def outage(stop):
        faults.redis.stop()
        await asyncio.sleep(10)  # the outage itself
        faults.redis.start()
        back = time.monotonic()
        await asyncio.sleep(1)  # keep sending after it
        stop.set()
        return back

    delay, sent = await lose_nothing_through(agent, faults, outage, "killed")
    print(f"Redis killed 10 s: {sent} broadcasts sent during it, 0 lost, all delivered {delay:.2f} s after its return")
    assert delay < 2.0


async def test_redis_stalled_for_20_s_loses_no_broadcast_and_retries_land_once(agent, faults):
    """Redis SIGSTOPped for 20 s: a publish in flight times out, is retried, and lands only once."""
    a, b = faults.servers

    async def stall(stop):
        faults.redis.pause()
        try:
            await asyncio.sleep(20)  # the stall itself
        finally:
            faults.redis.resume()
        back = time.monotonic()
        await asyncio.sleep(1)
        stop.set()
        return back

    marks = [a.mark(), b.mark()]
    before = [await counter(server, "realtime_cluster_messages_retried_total") for server in (a, b)]
    delay, sent = await lose_nothing_through(agent, faults, stall, "stalled")
    print(f"Redis stalled 20 s: {sent} broadcasts sent during it, 0 lost, all delivered {delay:.2f} s after it woke")
    assert delay < 2.0
    for server, mark in zip((a, b), marks, strict=True):
        assert "channel layer unreachable (TimeoutError" in server.log()[mark:]
    # each process's publish in flight when Redis froze timed out and went again; what landed twice was dropped
    retried = [await counter(server, "realtime_cluster_messages_retried_total") for server in (a, b)]
    assert all(after > earlier for after, earlier in zip(retried, before, strict=True)), (before, retried)


async def test_a_hung_redis_fills_the_queue_to_its_byte_cap_then_drops_with_one_warning(agent, faults):
    """Redis stopped (SIGSTOP) for less than a layer timeout: the queue holds 2 MiB, then drops and tells."""
    a, b = faults.servers
    x = await agent.socket("x").connect(a.url, "websocket")
    y = await agent.socket("y").connect(b.url, "websocket")
    for socket in (x, y):
        await socket.emit_with_ack("join", "files")
    mark = a.mark()
    faults.redis.pause()  # nothing leaves and nothing fails: the queue grows
    try:
        spec = {"event": "file", "to": ["files"], "args": [bytes(512 * 1024)]}  # ~1 MiB queued: args and frames
        acks = await asyncio.gather(*(x.emit_with_ack("broadcast", spec) for _ in range(6)))
        await a.await_log(r"WARNING realtime\.node: cross-process queue full", since=mark)
    finally:
        faults.redis.resume()
    sent = acks.count(["sent"])
    assert 1 <= sent < 6, acks  # the first were queued...
    assert acks.count([{"error": "cluster unavailable"}]) == 6 - sent  # ...the rest dropped, their senders told
    for _ in range(sent):  # what was queued arrives once Redis answers again
        [blob] = await y.next_event("file", timeout=10)
        assert len(blob) == 512 * 1024
    assert await heard(y, "file") == []
    assert a.log()[mark:].count("cross-process queue full") == 1  # rate-limited: one line for all the drops
    assert await x.emit_with_ack("broadcast", {"event": "news", "to": ["files"], "args": ["small"]}) == ["sent"]
    assert await y.next_event("news") == ["small"]
