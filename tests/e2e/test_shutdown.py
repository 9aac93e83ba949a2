"""Stopping daphne closes every session first, and handlers hear why; in a cluster, clients move on."""

import contextlib
import itertools
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


# Every client of the stopped process is on the other one within this many seconds of the SIGTERM:
# a reconnect is a 503'd or 400'd attempt or two, 100-400 ms apart (RECONNECTING), on a loaded machine.
SETTLED_WITHIN = 5.0


async def test_sigterm_moves_every_client_to_the_other_process(agent, pair):
    """Polling, WebSocket and upgraded clients without sticky sessions: all end up on b, promptly.

    The clients of a are told of a lost transport, never ``io server disconnect``
    (which would stop them reconnecting); the clients of b keep their sessions,
    although half of their requests went through a (forwarded): a answers every
    request it took before it exits, so the proxy never sees one dropped.
    """
    a, b = pair.servers
    key_a, key_b = await key_of(a), await key_of(b)
    clients, sids = [], {}
    # clients until each process owns two polling, a WebSocket and an upgraded one; where a handshake
    # lands is up to the proxy's turn (and every request before it): one nobody needs is closed
    wanted = {(t, k): 2 if t == "polling" else 1 for t in ("polling", "websocket", "upgrade") for k in (key_a, key_b)}
    for attempt in itertools.count():
        if not (missing := [need for need, count in wanted.items() if count > 0]):
            break
        assert attempt < 40, (wanted, sids)
        transport = missing[0][0]
        socket = await agent.socket(f"c{attempt}").connect(pair.proxy.url, transport, **RECONNECTING)
        sid = (await socket.state())["sid"]
        if wanted[(transport, sid[:6])] <= 0:
            await socket.disconnect()
            await key_of(pair.proxy)  # one more request: the next handshake is not at the same point of the turn
            continue
        wanted[(transport, sid[:6])] -= 1
        assert await socket.emit_with_ack("echo", attempt) == [attempt]
        clients.append((socket, transport))
        sids[socket.name] = sid
    on_a = [(s, t) for s, t in clients if sids[s.name].startswith(key_a)]
    on_b = [(s, t) for s, t in clients if sids[s.name].startswith(key_b)]

    mark = a.mark()
    started = time.monotonic()
    a.process.terminate()  # SIGTERM, as a process manager would
    for socket, transport in on_a:  # told at once that the transport is gone, not "io server disconnect"
        _, [reason] = await socket.next("disconnect", timeout=3)
        assert reason in ("transport close", "transport error"), (transport, reason)
    told = time.monotonic() - started
    settled = {}
    for socket, transport in clients:  # and every client, wherever it was, is served by b
        await served_by(socket, key_b, deadline=started + 10)
        settled[f"{socket.name} {transport}"] = round(time.monotonic() - started, 2)
        assert await socket.emit_with_ack("echo", "on b") == ["on b"], transport
    print(f"\nSIGTERM to a: clients of a told in {told:.2f} s; connected to b after (s): {settled}")
    assert a.process.wait(10) == 0
    # a's exit cost b's clients nothing: same session, no disconnect; except a WebSocket that a relayed
    # to b (the upgrade went to a): that connection was a's, and it went as a transport close
    relayed = set(re.findall(rf"sid=({key_b}\S+): WebSocket relayed by {key_a}", b.log()))
    for socket, transport in on_b:
        seen = [e for e in socket.drain() if e[0] in ("disconnect", "connect")]
        if sids[socket.name] in relayed:
            assert seen and seen[0] in (("disconnect", ["transport close"]), ("disconnect", ["transport error"]))
        else:
            assert (await socket.state())["sid"] == sids[socket.name] and not seen, (transport, seen)
    assert not re.search(r"resent|502", pair.proxy.log()), pair.proxy.log()  # nothing a took was dropped
    log = a.log()[mark:]
    assert re.search(r"shutting down: closing \d+ sessions", log)
    assert "shut down: sessions closed\n" in log  # every forwarded request answered, every answer sent
    assert log.count(": server shutting down") >= len(on_a)  # handlers heard why
    assert told < 3 and max(settled.values()) < SETTLED_WITHIN, (told, settled)
