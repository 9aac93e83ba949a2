"""Redis behind Sentinel: the primary SIGKILLed under steady broadcasts, its replica promoted, nothing lost.

Two daphne processes find Redis through three of Debian's redis-sentinel (REDIS_SENTINELS); the
channel layer (channels-redis's sentinel hosts) and the recovery store both follow the failover.
Connection state recovery is on: a socket state written before the failover is read after it from
the promoted replica.
"""

import asyncio
import time

import pytest

from tests.cluster import Cluster, SentinelRedis, ensure_redis_installed
from tests.faults import lose_nothing_through

RECONNECT = {
    "transports": ["websocket"],
    "reconnection": True,
    "reconnectionDelay": 500,
    "reconnectionDelayMax": 500,
    "randomizationFactor": 0,
}


@pytest.fixture(scope="module")
def sentinels():
    ensure_redis_installed()
    ensure_redis_installed("redis-sentinel")
    cluster = Cluster(2, env={"REALTIME_RECOVERY": "1"}, redis=SentinelRedis()).start()
    yield cluster
    cluster.stop()


async def test_the_primary_killed_fails_over_with_nothing_lost_and_recovery_states_kept(agent, sentinels):
    redis = sentinels.redis
    # a client whose state the holder writes to the primary now, before the failover
    client = await agent.socket("client").open(sentinels.proxy.url, "websocket", **RECONNECT)
    _, (client_id, _) = await client.next("connect")
    await client.next_event("welcome")
    assert await client.emit_with_ack("remember", "kept") == [True]
    assert await client.emit_with_ack("join", "r") == [["r"]]
    [before] = await client.emit_with_ack("recovery")
    old = redis.primary_port()
    timings = {}

    async def failover(stop):
        killed = time.monotonic()
        redis.kill_primary()
        async with asyncio.timeout(30):
            while await asyncio.to_thread(redis.primary_port) == old:  # noqa: ASYNC110 - no event crosses processes
                await asyncio.sleep(0.1)  # the sentinels' state, in other processes: polled
        promoted = time.monotonic()
        timings["promotion"] = promoted - killed
        await asyncio.sleep(1)  # keep sending after it
        stop.set()
        return promoted

    delay, sent = await lose_nothing_through(agent, sentinels, failover, "failover")
    print(
        f"Sentinel failover: promoted {timings['promotion']:.1f} s after the primary was killed; "
        f"{sent} broadcasts sent until then, 0 lost, all delivered {delay:.2f} s after the promotion"
    )
    assert redis.primary_port() == redis.replica.port
    assert delay < 2.0

    # the process holding the client dies: the survivor recovers it from the promoted replica
    [holder] = [server for server in sentinels.servers if server.process.pid == before["pid"]]
    holder.kill()
    _, [reason] = await client.next("disconnect", timeout=10)
    assert reason in ("transport close", "transport error")
    _, (again_id, _) = await client.next("connect", timeout=15)
    assert again_id == client_id and (await client.state())["recovered"] is True
    [after] = await client.emit_with_ack("recovery")
    assert (after["note"], after["rooms"], after["recovered"]) == ("kept", sorted([client_id, "r"]), True)
    assert after["process"] != before["process"]
