"""Stopping daphne closes every session first, and handlers hear why; in a cluster, clients move on."""

import contextlib
import re
import time

import aiohttp
import pytest

from tests.clients.node import NodeAgent
from tests.cluster import Cluster, ensure_redis_installed
from tests.servers import ServerProcess


@pytest.fixture
def doomed_server():
    server = ServerProcess("tests.settings", app="tests.asgi:application").start()
    yield server
    server.stop()


async def test_sigterm_disconnects_with_server_shutting_down(doomed_server):
    agent = await NodeAgent().start()
    try:
        socket = await agent.socket("a").connect(doomed_server.url, "websocket")
        assert await socket.emit_with_ack("echo", 1) == [1]
        doomed_server.process.terminate()  # SIGTERM, as a process manager would
        assert (await socket.next("disconnect"))[0] == "disconnect"
        doomed_server.process.wait(10)
        assert f"on_disconnect {socket.id}: server shutting down" in doomed_server.log()
    finally:
        await agent.close()


RECONNECTING = {"reconnection": True, "reconnectionDelay": 100, "reconnectionDelayMax": 400, "randomizationFactor": 0}


@pytest.fixture
def pair():
    """Two processes on a private Redis behind the round-robin proxy; the test stops one."""
    ensure_redis_installed()
    cluster = Cluster(2, env={"REALTIME_PING_TIMEOUT": "2000"}).start()  # pongs through a proxy, loaded cores
    yield cluster
    cluster.stop()


async def key_of(server) -> str:
    url = f"{server.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return re.search(r'"sid":"([^"]+)"', await response.text())[1][:6]


async def served_by(socket, key, deadline):
    """Wait for ``socket`` to be connected to the process whose key is ``key`` (reconnecting on its own)."""
    while not ((state := await socket.state())["connected"] and state["sid"].startswith(key)):
        assert time.monotonic() < deadline, f"{socket.name} not on {key}: {state}"
        with contextlib.suppress(TimeoutError):  # a connect event, or a fresh look at its state
            await socket.next("connect", timeout=0.5)


@pytest.mark.xfail(
    strict=False,
    reason="flaky under load: after a's exit some polling clients of b lose their held GET "
    "(closed 'transport close' at b) and are still reconnecting at the 10 s bound; not yet diagnosed",
)
async def test_sigterm_moves_every_client_to_the_other_process(agent, pair):
    """Polling, WebSocket and upgraded clients without sticky sessions: all end up on b, promptly."""
    a, b = pair.servers
    key_a, key_b = await key_of(a), await key_of(b)
    clients, owners = [], {}
    for i, transport in enumerate(["polling"] * 4 + ["websocket"] * 3 + ["upgrade"] * 2):
        socket = await agent.socket(f"c{i}").connect(pair.proxy.url, transport, **RECONNECTING)
        assert await socket.emit_with_ack("echo", i) == [i]
        clients.append((socket, transport))
        owners[socket.name] = (await socket.state())["sid"][:6]
    on_a = [(s, t) for s, t in clients if owners[s.name] == key_a]
    assert {t for _, t in on_a} >= {"polling", "websocket"}, owners  # the proxy spread them over both

    mark = a.mark()
    started = time.monotonic()
    a.process.terminate()  # SIGTERM, as a process manager would
    for socket, transport in on_a:  # told at once that the transport is gone, not "io server disconnect"
        _, [reason] = await socket.next("disconnect", timeout=3)
        assert reason in ("transport close", "transport error"), (transport, reason)
    told = time.monotonic() - started
    for socket, transport in clients:  # and every client, wherever it was, is served by b
        await served_by(socket, key_b, deadline=started + 10)
        assert await socket.emit_with_ack("echo", "on b") == ["on b"], transport
    moved = time.monotonic() - started
    assert a.process.wait(10) == 0
    log = a.log()[mark:]
    assert re.search(r"shutting down: closing \d+ sessions", log)
    assert log.count(": server shutting down") >= len(on_a)  # handlers heard why
    assert told < 3 and moved < 10, (told, moved)
