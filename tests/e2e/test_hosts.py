"""Hosts that are really apart (tests/hosts.py): Redis on one network namespace, two daphne processes
on each of two others, clients here, through a round-robin proxy with a 1 s connect timeout.

A host cut off Redis keeps serving its own clients and loses nothing across hosts; a host cut off
its clients sees them reconnect to the other host and recover their sockets there; a host whose
processes restart rejoins the cluster. Connection state recovery is on.
"""

import asyncio
import time

import pytest

from tests.cluster import ensure_redis_installed
from tests.faults import Listening, collect, steady
from tests.hosts import Hosts, ensure_netns_possible

RECONNECT = {
    "transports": ["websocket"],
    "reconnection": True,
    "reconnectionDelay": 200,
    "reconnectionDelayMax": 500,
    "randomizationFactor": 0,
}


@pytest.fixture(scope="module")
def hosts():
    ensure_netns_possible()
    ensure_redis_installed()
    built = Hosts(env={"REALTIME_RECOVERY": "1"}).start()
    yield built
    built.stop()


def no_tracebacks(hosts, marks):
    for server in hosts.all():
        log = server.log()[marks.get(server.url, 0) :]
        assert "Traceback" not in log and "ERROR" not in log, log


async def test_broadcasts_cross_hosts_once(agent, hosts):
    sockets = [await agent.socket(f"x{i}").connect(s.url, "websocket") for i, s in enumerate(hosts.all())]
    for socket in sockets:
        assert await socket.emit_with_ack("join", "across") == [["across"]]
    for i, sender in enumerate(sockets):
        assert await sender.emit_with_ack("broadcast", {"to": ["across"], "event": "n", "args": [f"from-{i}", 0]}) == [
            "sent"
        ]
    for i, listener in enumerate(sockets):
        wanted = {(f"from-{j}", 0) for j in range(len(sockets)) if j != i}
        assert (await collect(listener, wanted, timeout=5)).keys() == wanted


async def test_a_host_cut_off_redis_for_10_s_serves_its_clients_and_loses_nothing(agent, hosts):
    """h1's back link down for 10 s: its packets to Redis are lost, nothing is refused (a pulled cable)."""
    h1, h2 = hosts.servers["h1"], hosts.servers["h2"]
    marks = {s.url: s.mark() for s in hosts.all()}
    senders = [await agent.socket(f"s{i}").connect(s.url, "websocket") for i, s in enumerate((h1[0], h2[0]))]
    # beside h1's sender, on h1's other process, on h2
    listeners = [await agent.socket(f"l{i}").connect(s.url, "websocket") for i, s in enumerate((h1[0], h1[1], h2[1]))]
    for listener in listeners:
        await listener.emit_with_ack("join", "cut")
    listening = [Listening(listener) for listener in listeners]
    stop = asyncio.Event()
    streams = [asyncio.ensure_future(steady(s, f"from-{i}", "cut", stop)) for i, s in enumerate(senders)]
    await asyncio.sleep(1)  # traffic before the cut
    cut = time.monotonic()
    hosts.cut("h1", "back")
    try:
        await asyncio.sleep(10)  # the cut itself
    finally:
        hosts.mend("h1", "back")
    mended = time.monotonic()
    await asyncio.sleep(1)
    stop.set()
    sent = {message: at for stream in await asyncio.gather(*streams) for message, at in stream.items()}
    heard = [await each.until(set(sent), timeout=30) for each in listening]
    for got in heard:
        assert got.keys() == sent.keys()  # everything, once (collect checks), in each sender's order
        for tag in ("from-0", "from-1"):
            numbers = [n for t, n in got if t == tag]
            assert numbers == sorted(numbers)
    # the clients of h1's sender's own process were served all along, Redis or not
    local = [heard[0][m] - sent[m] for m in sent if m[0] == "from-0" and cut <= sent[m] < mended]
    assert len(local) > 100 and max(local) < 1.0, max(local)
    late = max(got[m] for got in heard for m in sent if cut <= sent[m] < mended) - mended
    print(
        f"h1 cut off Redis 10 s: {len(sent)} broadcasts, 0 lost; the sender's own process served its clients "
        f"within {max(local) * 1000:.0f} ms; everything across processes {late:.1f} s after the link came back"
    )
    no_tracebacks(hosts, marks)


async def test_a_host_cut_off_its_clients_sees_them_recover_on_the_other_host(agent, hosts):
    """h1's front link down: its clients' pings fail, they reconnect through the proxy to h2, and recover."""
    marks = {s.url: s.mark() for s in hosts.all()}
    clients, before = [], []
    for i in range(8):  # round robin: two on each process
        client = await agent.socket(f"c{i}").open(hosts.proxy.url, "websocket", **RECONNECT)
        await client.next("connect")
        assert await client.emit_with_ack("join", "front") == [["front"]]
        clients.append(client)
        before.append((await client.emit_with_ack("recovery"))[0])
    on_h1 = {s.process.pid for s in hosts.servers["h1"]}
    moved = [i for i, state in enumerate(before) if state["pid"] in on_h1]
    assert len(moved) == 4
    sender = await agent.socket("sender").connect(hosts.servers["h2"][0].url, "websocket")
    hosts.cut("h1", "front")
    try:
        for i in moved:
            _, [reason] = await clients[i].next("disconnect", timeout=10)
            assert reason in ("ping timeout", "transport close", "transport error")
        spec = {"to": ["front"], "event": "n", "args": ["while-away", 0]}
        assert await sender.emit_with_ack("broadcast", spec) == ["sent"]
        for i in moved:
            _, (again_id, _) = await clients[i].next("connect", timeout=15)
            assert again_id == before[i]["id"] and (await clients[i].state())["recovered"] is True
            [after] = await clients[i].emit_with_ack("recovery")
            assert after["pid"] not in on_h1 and after["rooms"] == before[i]["rooms"]
        for client in clients:  # what was sent while they were away reached every one, once
            assert (await collect(client, {("while-away", 0)}, timeout=5)).keys() == {("while-away", 0)}
    finally:
        hosts.mend("h1", "front")
    no_tracebacks(hosts, marks)


async def test_a_hosts_processes_restarted_rejoin_and_their_clients_recover_on_the_other_host(agent, hosts):
    marks = {s.url: s.mark() for s in hosts.all()}
    client = None
    for i in range(4):  # one client on an h1 process
        candidate = await agent.socket(f"r{i}").open(hosts.proxy.url, "websocket", **RECONNECT)
        await candidate.next("connect")
        [state] = await candidate.emit_with_ack("recovery")
        if state["pid"] in {s.process.pid for s in hosts.servers["h1"]}:
            client, before = candidate, state
            break
    assert client is not None
    assert await client.emit_with_ack("join", "restart") == [["restart"]]
    old = hosts.servers["h1"]
    for server in old:  # the host restarts: both processes SIGTERMed at once, as a deploy of the host does
        server.process.terminate()
    for server in old:
        await asyncio.to_thread(server.stop)  # waits for it to exit
    _, (again_id, _) = await client.next("connect", timeout=15)
    assert again_id == before["id"] and (await client.state())["recovered"] is True
    [after] = await client.emit_with_ack("recovery")
    assert after["pid"] in {s.process.pid for s in hosts.servers["h2"]}
    hosts.servers["h1"] = [hosts.server("h1", server.port).start() for server in old]
    for server in hosts.servers["h1"]:
        server.wait_for_log(r"Listening on TCP address", timeout=20)
    fresh = [await agent.socket(f"fresh{i}").connect(s.url, "websocket") for i, s in enumerate(hosts.servers["h1"])]
    for server in hosts.servers["h1"]:  # its first request made it a member: it hears the three others
        await server.await_log(r"(?s)(peer \S+ joined.*){3}", timeout=15)
    spec = {"to": ["restart"], "event": "n", "args": ["from-restarted", 0]}
    assert await fresh[1].emit_with_ack("broadcast", spec) == ["sent"]
    assert (await collect(client, {("from-restarted", 0)}, timeout=5)).keys() == {("from-restarted", 0)}
    for server in hosts.all():
        log = server.log()[marks.get(server.url, 0) :] if server not in hosts.servers["h1"] else server.log()
        assert "Traceback" not in log, log
