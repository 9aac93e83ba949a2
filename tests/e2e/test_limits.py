"""Every limit of REALTIME's "Security and limits": the client's answer and one log line, and nobody else hurt.

The server runs tests/limits_settings.py (small limits); the connection limits
get a server of their own each, through REALTIME_LIMITS.
"""

import asyncio
import json

import aiohttp
import pytest
import socketio

from tests.rawws import RawWebSocket
from tests.servers import ServerProcess

NS = "/hard"


@pytest.fixture(scope="module")
def limited(django_db_setup):
    process = ServerProcess("tests.limits_settings", app="tests.asgi:application").start()
    yield process
    process.stop()


def server_with(**limits):
    env = {"REALTIME_LIMITS": json.dumps(limits)}
    return ServerProcess("tests.limits_settings", app="tests.asgi:application", env=env).start()


async def connected(server, namespaces=(NS,)):
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, namespaces=list(namespaces), transports=["websocket"])
    return client


async def handshake(http, server):
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as r:
        return r.status, await r.text()


async def test_connections_per_ip_are_capped_and_freed_again(django_db_setup):
    server = server_with(MAX_CONNECTIONS_PER_IP=5)
    try:
        async with aiohttp.ClientSession() as http:
            answers = [await handshake(http, server) for _ in range(5)]
            assert all(status == 200 for status, _ in answers)
            mark = server.mark()
            status, body = await handshake(http, server)
            assert (status, json.loads(body)) == (503, {"code": 4, "message": "Too many connections"})
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(f"{server.ws_url}/socket.io/?EIO=4&transport=websocket")
            await server.await_log(r"handshake from 127\.0\.0\.1 refused: Too many connections", since=mark)
            # one of the five says goodbye: there is room again
            sid = json.loads(answers[0][1][1:])["sid"]
            async with http.post(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data="1") as r:
                assert r.status == 200
            assert (await handshake(http, server))[0] == 200
    finally:
        server.stop()


async def test_connections_in_total_are_capped(django_db_setup):
    server = server_with(MAX_CONNECTIONS=3)
    try:
        async with aiohttp.ClientSession() as http:
            assert [(await handshake(http, server))[0] for _ in range(4)] == [200, 200, 200, 503]
    finally:
        server.stop()


async def test_handshakes_per_ip_are_rate_limited(django_db_setup):
    server = server_with(HANDSHAKE_RATE_PER_IP="5/m")
    try:
        async with aiohttp.ClientSession() as http:
            statuses = [(await handshake(http, server))[0] for _ in range(7)]
            assert statuses == [200] * 5 + [429] * 2
            status, body = await handshake(http, server)
            assert (status, json.loads(body)) == (429, {"code": 4, "message": "Too many handshakes"})
            log = server.log()
            assert log.count("refused: Too many handshakes") <= 10  # one line each, rate-limited
    finally:
        server.stop()


async def test_namespaces_per_session_are_capped(limited):
    ws, _ = await RawWebSocket.engineio(limited.port)
    ws.send("40")
    await ws.receive_until("40{")
    for name in (NS, "/any"):  # MAX_NAMESPACES = 3
        ws.send(f"40{name},")
        await ws.receive_until(f"40{name},")
    ws.send("40/team-1,")
    assert await ws.receive_until("44/team-1,") == '44/team-1,{"message":"Too many namespaces"}'
    ws.send(f'42{NS},5["one","still here"]')  # the namespaces it has go on working
    assert await ws.receive_until(f"43{NS},5") == f'43{NS},5["still here"]'
    ws.close()


async def test_rooms_per_socket_are_capped(limited):
    client = await connected(limited)
    rooms = [f"room-{i}" for i in range(25)]
    # MAX_ROOMS_PER_SOCKET = 20, its own room included: the 20th extra room is refused
    assert await client.call("join", tuple(rooms[:19]), namespace=NS, timeout=5) == 20
    assert await client.call("join", tuple(rooms[19:]), namespace=NS, timeout=5) == {"error": "too many rooms"}
    assert await client.call("room-size", (NS, "room-18"), namespace=NS, timeout=5) == 1
    assert await client.call("room-size", (NS, "room-19"), namespace=NS, timeout=5) == 0
    await client.disconnect()


async def test_pending_acks_from_the_client_are_capped(limited):
    ws, _ = await RawWebSocket.engineio(limited.port)
    ws.send(f"40{NS},")
    await ws.receive_until(f"40{NS},")
    for ack_id in range(1, 9):  # MAX_PENDING_ACKS = 5: the sixth and later wait for nothing
        ws.send(f'42{NS},{ack_id}["wait",1]')
    refusals = [await ws.receive_until(f"43{NS},{i}") for i in (6, 7, 8)]
    assert refusals == [f'43{NS},{i}[{{"error":"too many pending acks"}}]' for i in (6, 7, 8)]
    answers = [await ws.receive_until(f"43{NS},{i}", timeout=5) for i in range(1, 6)]
    assert answers == [f'43{NS},{i}["waited"]' for i in range(1, 6)]
    ws.close()


async def test_pending_acks_to_the_client_are_capped(limited):
    client = await connected(limited)
    client.on("never", lambda: None, namespace=NS)  # a handler that never answers (returns no ack value)
    assert await client.call("ask", 8, namespace=NS, timeout=5) == 3  # 5 pending, 3 refused
    await client.disconnect()


async def test_running_handlers_per_session_are_capped(limited):
    ws, _ = await RawWebSocket.engineio(limited.port)
    ws.send(f"40{NS},")
    await ws.receive_until(f"40{NS},")
    for _ in range(8):  # MAX_RUNNING_HANDLERS = 8, no ack asked
        ws.send(f'42{NS},["wait",1]')
    ws.send(f'42{NS},50["one","late"]')
    assert await ws.receive_until(f"43{NS},50") == f'43{NS},50[{{"error":"too many events in progress"}}]'
    ws.close()


async def test_attachments_over_the_byte_limit_close_the_session(limited):
    ws, sid = await RawWebSocket.engineio(limited.port)
    ws.send(f"40{NS},")
    await ws.receive_until(f"40{NS},")
    mark = limited.mark()
    ws.send(f'452-{NS},["echo",{{"_placeholder":true,"num":0}},{{"_placeholder":true,"num":1}}]')
    ws.writer.write(_binary_frame(b"\x00" * 60_000))
    ws.writer.write(_binary_frame(b"\x00" * 60_000))  # 120 KB > MAX_ATTACHMENT_BYTES = 100 KB
    await limited.await_log(rf"sid={sid} closed: parse error \(binary attachments over 100000 bytes\)", since=mark)
    assert await ws.closed()


async def test_attachments_that_never_come_close_the_session(limited):
    ws, sid = await RawWebSocket.engineio(limited.port)
    ws.send(f"40{NS},")
    await ws.receive_until(f"40{NS},")
    mark = limited.mark()
    ws.send(f'451-{NS},["echo",{{"_placeholder":true,"num":0}}]')  # and then no attachment
    await limited.await_log(rf"sid={sid} closed: binary attachments late", since=mark, timeout=5)
    assert await ws.closed()


async def test_event_rate_limits_refuse_then_disconnect(limited):
    client = await connected(limited)
    disconnected = asyncio.Event()
    client.on("disconnect", lambda *a: disconnected.set(), namespace=NS)
    # RATE_LIMITS {"counted": "5/s"}: five pass, the rest of the burst is refused
    answers = await asyncio.gather(*(client.call("counted", namespace=NS, timeout=5) for _ in range(8)))
    assert answers.count("ok") == 5 and answers.count({"error": "rate limited"}) == 3
    # @rate_limit("5/s") on the handler works the same
    answers = await asyncio.gather(*(client.call("limited", namespace=NS, timeout=5) for _ in range(7)))
    assert answers.count("ok") == 5 and answers.count({"error": "rate limited"}) == 2
    mark = limited.mark()
    for _ in range(30):  # RATE_LIMIT_STRIKES = 20 refusals within 10 s: disconnected
        await client.emit("counted", namespace=NS)
    await asyncio.wait_for(disconnected.wait(), 5)
    await limited.await_log(r"disconnected: over its rate 20 times", since=mark)
    await client.disconnect()


def _binary_frame(payload: bytes) -> bytes:
    mask = b"\x00\x00\x00\x00"
    size = len(payload)
    header = bytes([0x82, 0x80 | 126]) + size.to_bytes(2, "big") if size < 65536 else b""
    return header + mask + payload
