"""Runtimes in this event loop, over one in-memory layer: no server process, no Redis."""

import pytest
from channels.layers import InMemoryChannelLayer

from tests.runtime.harness import Process


@pytest.fixture(autouse=True)
def no_registry(settings):
    """No registry (it writes to the database from a thread); heartbeats every 100 ms, so a death shows in 0.3 s."""
    settings.REALTIME = {**settings.REALTIME, "REGISTRY": False, "HEARTBEAT_INTERVAL": 100}


@pytest.fixture
async def cluster():
    """Three processes, a b and c, that know each other (their hellos answered) before the test starts."""
    layer = InMemoryChannelLayer(capacity=10_000)
    processes = [Process(layer) for _ in range(3)]
    for process in processes:
        await process.start()
    for process in processes:
        for other in processes:
            if other is not process:
                assert await process.runtime.member.peers.await_live(other.runtime.key)
    yield processes
    for process in processes:
        await process.stop()
