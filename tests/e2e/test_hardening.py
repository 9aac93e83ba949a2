"""One client must not hurt the others: slow readers, blind pongs, lone surrogates, closing recipients, zombies.

Each test plays the hostile or broken client by hand (tests/rawws.py, raw HTTP)
against a real server process with small limits (tests/limits_settings.py),
next to real well-behaved clients that must not notice.
"""

import asyncio
import contextlib
import json

import aiohttp
import pytest
import socketio

from tests.rawws import RawWebSocket
from tests.servers import ServerProcess

NS = "/hard"


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def limited(request, django_db_setup):
    process = ServerProcess("tests.limits_settings", app="tests.asgi:application", asgi_server=request.param).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def daphne_limited(django_db_setup):
    process = ServerProcess("tests.limits_settings", app="tests.asgi:application").start()
    yield process
    process.stop()


async def good_client(server, room, transports=("websocket",)):
    """A python-socketio client in ``room`` that records every flood event it gets."""
    client = socketio.AsyncClient(reconnection=False)
    client.floods = []
    client.flooded = asyncio.Event()
    client.target = 0

    def on_flood(i, body):
        client.floods.append(i)
        if len(client.floods) >= client.target:
            client.flooded.set()

    client.on("flood", on_flood, namespace=NS)
    await client.connect(server.url, namespaces=[NS], transports=list(transports))
    await client.call("join", room, namespace=NS, timeout=5)
    return client


async def polling_member(http, base, room):
    """A raw polling session connected to NS and in ``room``: (sid, its URL)."""
    async with http.get(base) as r:
        sid = json.loads((await r.text())[1:])["sid"]
    url = f"{base}&sid={sid}"
    async with http.post(url, data=f"40{NS},") as r:
        assert r.status == 200
    async with http.get(url) as r:
        assert (await r.text()).startswith(f"40{NS},")
    async with http.post(url, data=f'42{NS},1["join","{room}"]') as r:
        assert r.status == 200
    async with http.get(url) as r:
        assert f"43{NS},1" in await r.text()
    return sid, url


async def blind_pongs(send, stop):
    """What the attacker of the issue did: a pong every so often, whatever the server sent."""
    while not stop.is_set():
        await send()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def test_websocket_client_that_never_reads_is_dropped_and_its_memory_returned(limited):
    slow, sid = await RawWebSocket.engineio(limited.port)
    slow.send(f"40{NS},")
    await slow.receive_until(f"40{NS},")
    slow.send(f'42{NS},1["join","flood-ws"]')
    await slow.receive_until(f"43{NS},1")
    good = await good_client(limited, "flood-ws")
    good.target = 200
    baseline = limited.rss()
    mark = limited.mark()
    stop = asyncio.Event()

    async def pong():
        slow.send("3")

    pongs = asyncio.create_task(blind_pongs(pong, stop))
    try:
        # 200 broadcasts of 100 KB in bursts of 500 KB: 20 MB for a client that reads nothing
        for _ in range(40):
            assert await good.call("flood", ("flood-ws", 100_000, 5), namespace=NS, timeout=20) == 5
        await limited.await_log(rf"sid={sid} closed: the client does not keep up", since=mark, timeout=10)
        await asyncio.wait_for(good.flooded.wait(), 10)  # the reader that reads got every one
        assert good.floods == list(range(5)) * 40
        assert await slow.closed()
    finally:
        stop.set()
        await pongs
        slow.close()
        await good.disconnect()
    assert limited.rss() - baseline < 8 * 1024 * 1024
    assert "Traceback" not in limited.log()[mark:]


async def test_volatile_packets_are_dropped_for_a_client_that_does_not_keep_up(daphne_limited):
    """A non-reading client in a room flooded with volatile broadcasts loses them instead of its connection."""
    server = daphne_limited
    slow, sid = await RawWebSocket.engineio(server.port)
    slow.send(f"40{NS},")
    await slow.receive_until(f"40{NS},")
    slow.send(f'42{NS},1["join","volatile-flood"]')
    await slow.receive_until(f"43{NS},1")
    good = await good_client(server, "volatile-flood")
    baseline = server.rss()
    mark = server.mark()
    for _ in range(40):  # 20 MB of volatile broadcasts: never more than VOLATILE_BACKLOG held for it
        assert await good.call("flood", ("volatile-flood", 100_000, 5, True), namespace=NS, timeout=20) == 5
    assert server.rss() - baseline < 8 * 1024 * 1024
    assert f"sid={sid} closed" not in server.log()[mark:]
    # what must arrive does: the backlog grows past MAX_BUFFERED_BYTES and the client is dropped
    for _ in range(10):
        await good.call("flood", ("volatile-flood", 100_000, 5), namespace=NS, timeout=20)
    await server.await_log(rf"sid={sid} closed: the client does not keep up", since=mark, timeout=10)
    slow.close()
    await good.disconnect()


async def test_polling_client_that_never_gets_is_dropped(limited):
    base = f"{limited.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        sid, url = await polling_member(http, base, "flood-poll")
        good = await good_client(limited, "flood-poll")
        good.target = 100
        mark = limited.mark()
        stop = asyncio.Event()

        async def pong():
            async with http.post(url, data="3") as r:
                await r.read()

        pongs = asyncio.create_task(blind_pongs(pong, stop))
        try:
            for _ in range(10):
                assert await good.call("flood", ("flood-poll", 10_000, 10), namespace=NS, timeout=20) == 10
            # dropped by whichever comes first: its backlog, or the ping it never collected
            await limited.await_log(
                rf"sid={sid} closed: (the client does not keep up|ping timeout)", since=mark, timeout=10
            )
            await asyncio.wait_for(good.flooded.wait(), 10)
        finally:
            stop.set()
            await pongs
            await good.disconnect()
        async with http.get(url) as r:  # what is left for it: the close packet, or nothing at all
            assert r.status == 400 or await r.text() == "1"


async def test_blind_pongs_do_not_keep_a_polling_client_that_never_gets_alive(limited):
    base = f"{limited.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as r:
            sid = json.loads((await r.text())[1:])["sid"]
        mark = limited.mark()
        stop = asyncio.Event()

        async def pong():
            async with http.post(f"{base}&sid={sid}", data="3") as r:
                await r.read()

        pongs = asyncio.create_task(blind_pongs(pong, stop))
        try:
            # PING_INTERVAL 400 ms + PING_TIMEOUT 300 ms: its ping waits unread in the buffer
            await limited.await_log(rf"sid={sid} closed: ping timeout", since=mark, timeout=5)
        finally:
            stop.set()
            await pongs


async def test_lone_surrogate_is_sent_back_as_its_json_escape_to_every_transport(limited):
    base = f"{limited.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        _, url = await polling_member(http, base, "surrogates")
        websocket_member = await good_client(limited, "surrogates")
        relayed = asyncio.get_running_loop().create_future()
        websocket_member.on("relayed", lambda *args: relayed.set_result(args), namespace=NS)
        sender, _ = await RawWebSocket.engineio(limited.port)
        sender.send(f"40{NS},")
        await sender.receive_until(f"40{NS},")
        held = asyncio.ensure_future(http.get(url))  # the polling member waits for the broadcast
        sender.send(f'42{NS},7["relay","surrogates","a\\ud800b"]')  # valid JSON any JS client can send
        ack = await sender.receive_until(f"43{NS},7")
        assert ack == f'43{NS},7["relayed","a\\ud800b"]'
        assert await asyncio.wait_for(relayed, 5) == ("a\ud800b",)
        async with await asyncio.wait_for(held, 5) as r:
            assert r.status == 200
            assert await r.text() == f'42{NS},["relayed","a\\ud800b"]'
        sender.close()
        await websocket_member.disconnect()


async def test_recipients_closing_mid_broadcast_cut_nothing_short(limited):
    """300 clients close at once while a room broadcast with acks goes on: every ack comes, no traceback."""
    closing = []
    for _ in range(300):
        ws, _ = await RawWebSocket.engineio(limited.port, rcvbuf=65536)
        ws.send(f"40{NS},")
        await ws.receive_until(f"40{NS},")
        ws.send(f'42{NS},1["join","closing"]')
        await ws.receive_until(f"43{NS},1")
        closing.append(ws)
    watcher = await good_client(limited, "closing")
    watcher.target = 200
    sender = socketio.AsyncClient(reconnection=False)
    await sender.connect(limited.url, namespaces=[NS], transports=["websocket"])
    mark = limited.mark()

    async def close_all():
        for ws in closing:
            ws.writer.write(b"\x88\x82" + b"\x00\x00\x00\x00" + b"\x03\xe8")  # a close frame, code 1000
        await asyncio.gather(*(ws.closed(5) for ws in closing))

    closer = asyncio.create_task(close_all())
    answers = [await sender.call("flood", ("closing", 1_000, 10), namespace=NS, timeout=10) for _ in range(20)]
    await closer
    assert answers == [10] * 20
    await asyncio.wait_for(watcher.flooded.wait(), 10)
    assert watcher.floods == list(range(10)) * 20
    log = limited.log()[mark:]
    assert "Traceback" not in log and "Task exception was never retrieved" not in log
    await sender.disconnect()
    await watcher.disconnect()


async def test_socket_whose_on_connect_fails_leaves_the_rooms_it_joined(daphne_limited):
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(daphne_limited.url, namespaces=["/zombie"], transports=["websocket"])
    observer = socketio.AsyncClient(reconnection=False)
    await observer.connect(daphne_limited.url, namespaces=[NS], transports=["websocket"])
    assert await observer.call("room-size", ("/zombie", "zombies"), namespace=NS, timeout=5) == 0
    await observer.disconnect()


async def test_wrong_number_of_arguments_gets_an_error_ack_and_no_traceback(daphne_limited):
    ws, _ = await RawWebSocket.engineio(daphne_limited.port)
    ws.send(f"40{NS},")
    await ws.receive_until(f"40{NS},")
    mark = daphne_limited.mark()
    for ack_id in range(1, 31):
        ws.send(f'42{NS},{ack_id}["one"]')  # on_one(socket, value): the value is missing
        assert await ws.receive_until(f"43{NS},{ack_id}") == f'43{NS},{ack_id}[{{"error":"invalid arguments"}}]'
    ws.send(f'42{NS},99["one","fine"]')
    assert await ws.receive_until(f"43{NS},99") == f'43{NS},99["fine"]'
    log = daphne_limited.log()[mark:]
    assert "Traceback" not in log
    assert 1 <= log.count("invalid arguments") <= 10  # rate-limited: at most a burst of lines
    ws.close()


@pytest.mark.parametrize("transport", ["polling"])
async def test_polling_disconnect_right_after_connect_is_a_client_disconnect(daphne_limited, transport):
    """The POST carrying CONNECT is answered before the CONNECT reply goes out, as Node does."""
    client = socketio.AsyncClient(reconnection=False)
    mark = daphne_limited.mark()
    await client.connect(daphne_limited.url, namespaces=[NS], transports=["polling"])
    socket_id = client.get_sid(NS)
    await client.disconnect()
    match = await daphne_limited.await_log(rf"on_disconnect {NS} {socket_id}: (.*)", since=mark, timeout=5)
    assert match.group(1) == "client namespace disconnect"


async def test_server_dropping_the_transport_sends_no_close_packet_and_the_client_reconnects(daphne_limited):
    client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.1, reconnection_delay_max=0.2)
    connects = asyncio.Queue()
    client.on("connect", lambda: connects.put_nowait(client.get_sid(NS)), namespace=NS)
    mark = daphne_limited.mark()
    await client.connect(daphne_limited.url, namespaces=[NS], transports=["websocket"])
    first = await asyncio.wait_for(connects.get(), 5)
    await client.emit("drop", namespace=NS)
    second = await asyncio.wait_for(connects.get(), 10)  # python clients reconnect unless told goodbye
    assert second != first
    match = await daphne_limited.await_log(rf"on_disconnect {NS} {first}: (.*)", since=mark, timeout=5)
    assert match.group(1) == "forced close"
    await client.disconnect()
