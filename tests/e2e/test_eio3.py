"""Socket.IO v2 clients (Engine.IO v3, Socket.IO protocol v4) with REALTIME["ALLOW_EIO3"] on.

The real socket.io-client@2 (npm), over polling, WebSocket and polling upgraded, on daphne and
uvicorn: the implicit connection to "/", events and acks both ways, binary, rooms shared with
socket.io-client@4, namespaces with query auth, refusals, disconnect reasons, the client-driven
heartbeat. Raw tests read the v3 wire itself (the Node client asks for base64 over polling, so the
binary payload form is exercised here by hand), and one server with the option off refuses v3.
"""

import asyncio
import json

import aiohttp
import pytest

from tests.servers import ServerProcess

from .test_socketio_node import BINARY_ARGS, JSON_VALUES, disconnect_reason

pytestmark = pytest.mark.both_servers  # every test here runs on daphne and on uvicorn (tests/conftest.py)


@pytest.fixture
def url(server):
    return server.url


async def connect2(agent, name, url, transport, namespace="/", **options):
    return await agent.socket(name).connect(url + namespace, transport, client=2, **options)


async def test_connected_to_main_at_once_with_the_handshake_query_as_auth(agent, url, transport):
    socket = await connect2(agent, "a", url, transport, query={"token": "abc"})
    state = await socket.state()
    assert socket.id == state["sid"]  # on "/", a v2 socket's id is its Engine.IO sid
    assert await socket.next_event("welcome") == [{"token": "abc"}]
    [me] = await socket.emit_with_ack("whoami")
    assert (me["id"], me["namespace"], me["rooms"]) == (socket.id, "/", [socket.id])
    assert me["handshake"]["auth"] == {"token": "abc"}
    assert me["handshake"]["query"]["EIO"] == "3"


async def test_events_and_acks_both_ways(agent, url, transport):
    socket = await connect2(agent, "a", url, transport)
    assert await socket.emit_with_ack("echo", *JSON_VALUES) == JSON_VALUES
    await socket.emit("echo-event", "one", {"two": [2]})
    assert await socket.next_event("echo-event") == ["one", {"two": [2]}]
    await socket.reply("question", "forty", 2)
    assert await socket.emit_with_ack("ask", 2.0, "what?") == [{"answer": ["forty", 2]}]


async def test_binary_both_ways(agent, url, transport):
    socket = await connect2(agent, "a", url, transport)
    assert await socket.emit_with_ack("echo", *BINARY_ARGS) == BINARY_ARGS
    await socket.emit("echo-event", *BINARY_ARGS)
    assert await socket.next_event("echo-event") == BINARY_ARGS
    await socket.reply("question", b"\x00\xff", {"nested": [b"\x01"]})
    assert await socket.emit_with_ack("ask", 2.0, b"\x02") == [{"answer": [b"\x00\xff", {"nested": [b"\x01"]}]}]


async def test_rooms_and_broadcasts_are_shared_with_v4_clients(agent, url, transport):
    old = await connect2(agent, "old", url, transport)
    new = await agent.socket("new").connect(url, transport)
    for socket in (old, new):
        assert await socket.emit_with_ack("join", "mixed") == [["mixed"]]
    sender = await agent.socket("sender").connect(url, transport)
    spec = {"to": ["mixed"], "event": "news", "args": ["text", b"\x01\x02", {"deep": [b"\xfe"]}]}
    assert await sender.emit_with_ack("broadcast", spec) == ["sent"]
    for socket in (old, new):
        assert await socket.next_event("news") == ["text", b"\x01\x02", {"deep": [b"\xfe"]}]
    # and from the v2 client to the room, its own id included as a room
    assert await old.emit_with_ack("broadcast", {"to": ["mixed"], "event": "from-old", "args": [b"\x07"]}) == ["sent"]
    assert await new.next_event("from-old") == [b"\x07"]
    spec = {"to": [old.id], "event": "direct", "args": [1]}
    assert await new.emit_with_ack("broadcast", spec) == ["sent"]
    assert await old.next_event("direct") == [1]


async def test_namespaces_take_their_query_as_auth_and_ids_are_nsp_hash_sid(agent, url, transport):
    team = await connect2(agent, "team", url, transport, "/team-42", query={"x": "1"})
    sid = (await team.state())["sid"]
    assert team.id == f"/team-42#{sid}"
    assert await team.next_event("team") == ["/team-42"]
    [me] = await team.emit_with_ack("whoami")
    assert me == {"id": team.id, "rooms": [team.id], "auth": {"x": "1"}}
    guarded = await connect2(agent, "guarded", url, transport, "/guarded", query={"key": "k"})
    assert await guarded.emit_with_ack("echo", "hi") == [True, "hi"]  # the middleware saw the query's key


async def test_refusals_carry_a_plain_message(agent, url, transport):
    refused = await agent.socket("r").open(url + "/refuse", client=2, query={"token": "bad"})
    kind, (message, data) = await refused.next("connect", "connect_error")
    assert (kind, message, data) == ("connect_error", "Not authorized", "Not authorized")
    unknown = await agent.socket("u").open(url + "/nope", client=2)
    kind, (message, data) = await unknown.next("connect", "connect_error")
    assert (kind, message, data) == ("connect_error", "Invalid namespace", "Invalid namespace")
    good = await connect2(agent, "g", url, transport, "/refuse", query={"token": "good"})
    assert good.id.startswith("/refuse#")


async def test_disconnect_reasons(agent, url, transport):
    observer = await agent.socket("observer").connect(url, transport)
    leaving = await connect2(agent, "leaving", url, transport)
    await leaving.disconnect()
    assert await disconnect_reason(observer, leaving.id) == "client namespace disconnect"
    dropped = await connect2(agent, "dropped", url, transport)
    await dropped.emit("disconnect-me")
    assert await dropped.next("disconnect") == ("disconnect", ["io server disconnect"])
    reason, signals = await observer.emit_with_ack("disconnect-reason", dropped.id)
    assert reason == "server namespace disconnect"
    assert signals == ["connected /", "disconnected server namespace disconnect"]


async def test_the_client_pings_and_the_server_answers(agent, url, transport):
    """PING_INTERVAL is 400 ms and PING_TIMEOUT 300 ms here: three pongs is over a second alive."""
    socket = await connect2(agent, "a", url, transport)
    for _ in range(3):
        await socket.next("pong", timeout=3)
    assert (await socket.state())["connected"] is True
    assert await socket.emit_with_ack("echo", "still here") == ["still here"]


# -- the wire, by hand -----------------------------------------------------------------------------


def records(body: str) -> list[str]:
    """A v3 text payload's records (ASCII here, so lengths are characters)."""
    out = []
    while body:
        length, _, rest = body.partition(":")
        out.append(rest[: int(length)])
        body = rest[int(length) :]
    return out


async def collect(http, base, sid, until, limit=10):
    """GET until a record satisfies ``until``; every record seen."""
    seen = []
    for _ in range(limit):
        async with http.get(f"{base}&sid={sid}") as response:
            assert response.status == 200
            seen += records(await response.text())
        if any(until(r) for r in seen):
            return seen
    raise AssertionError(f"not seen in {seen}")


async def handshake(http, base):
    async with http.get(base) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/plain")
        [open_record] = records(await response.text())
    assert open_record[0] == "0"
    return json.loads(open_record[1:])


async def test_polling_wire(url):
    base = f"{url}/socket.io/?EIO=3&transport=polling"
    async with aiohttp.ClientSession() as http:
        opened = await handshake(http, base)
        assert set(opened) == {"sid", "upgrades", "pingInterval", "pingTimeout"}  # no maxPayload in v3
        sid = opened["sid"]
        seen = await collect(http, base, sid, lambda r: r.startswith('42["welcome"'))
        assert seen[0] == "40"  # connected to "/" without asking, and no payload in the answer
        async with http.post(f"{base}&sid={sid}", data=b"1:2") as response:
            assert (response.status, await response.text()) == (200, "ok")
        assert await collect(http, base, sid, lambda r: r == "3") == ["3"]
        # a binary event in the binary payload form; the ack comes back in it too
        event = b'451-7["echo",{"_placeholder":true,"num":0}]'
        body = b"\x00" + bytes(int(d) for d in str(len(event))) + b"\xff" + event
        body += b"\x01\x04\xff\x04\x00\xff\x01"  # a binary record of 4 bytes: the type byte and 3 bytes
        async with http.post(f"{base}&sid={sid}", data=body) as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with http.get(f"{base}&sid={sid}") as response:
            assert response.headers["content-type"] == "application/octet-stream"
            answer = await response.read()
        ack = b'461-7[{"_placeholder":true,"num":0}]'
        length = bytes(int(d) for d in str(len(ack)))
        assert answer == b"\x00" + length + b"\xff" + ack + b"\x01\x04\xff\x04\x00\xff\x01"


async def test_polling_wire_with_b64_and_utf16_lengths(url):
    base = f"{url}/socket.io/?EIO=3&transport=polling&b64=1"
    async with aiohttp.ClientSession() as http:
        sid = (await handshake(http, base))["sid"]
        await collect(http, base, sid, lambda r: r.startswith('42["welcome"'))
        event = '421["echo","é😀"]'  # 16 characters, 17 UTF-16 code units: é is one, 😀 two
        async with http.post(f"{base}&sid={sid}", data=f"17:{event}".encode()) as response:
            assert response.status == 200
        async with http.get(f"{base}&sid={sid}") as response:
            assert await response.text() == '10:431["é😀"]'
        binary = '451-3["echo",{"_placeholder":true,"num":0}]'
        async with http.post(f"{base}&sid={sid}", data=f"{len(binary)}:{binary}6:b4AQI=".encode()) as response:
            assert response.status == 200
        async with http.get(f"{base}&sid={sid}") as response:
            assert response.headers["content-type"].startswith("text/plain")
            assert await response.text() == '36:461-3[{"_placeholder":true,"num":0}]6:b4AQI='


async def test_silence_after_the_handshake_is_a_ping_timeout(url):
    """No ping within PING_INTERVAL + PING_TIMEOUT (700 ms): the server never pings a v3 client."""
    base = f"{url}/socket.io/?EIO=3&transport=polling"
    async with aiohttp.ClientSession() as http:
        sid = (await handshake(http, base))["sid"]
        await collect(http, base, sid, lambda r: r.startswith('42["welcome"'))
        async with asyncio.timeout(5):
            async with http.get(f"{base}&sid={sid}") as response:  # held: nothing comes, no ping either
                assert "2" not in records(await response.text())
            async with http.get(f"{base}&sid={sid}") as response:
                assert response.status == 400
                assert await response.json() == {"code": 1, "message": "Session ID unknown"}


async def test_websocket_wire(url):
    ws_url = f"{url.replace('http', 'ws')}/socket.io/?EIO=3&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        opened = await ws.receive_str(timeout=5)
        assert opened[0] == "0" and "maxPayload" not in json.loads(opened[1:])
        assert await ws.receive_str(timeout=5) == "40"
        assert (await ws.receive_str(timeout=5)).startswith('42["welcome"')
        await ws.send_str("2")
        assert await ws.receive_str(timeout=5) == "3"
        await ws.send_str('451-1["echo",{"_placeholder":true,"num":0}]')
        await ws.send_bytes(b"\x04\x01\x02")  # a v3 binary frame: the type byte, then the bytes
        assert await ws.receive_str(timeout=5) == '461-1[{"_placeholder":true,"num":0}]'
        assert await ws.receive_bytes(timeout=5) == b"\x04\x01\x02"


async def test_off_by_default_with_a_message_that_names_the_option(agent, django_db_setup):
    process = ServerProcess("tests.settings", app="tests.asgi:application", env={"REALTIME_ALLOW_EIO3": "0"}).start()
    try:
        handshake = f"{process.url}/socket.io/?EIO=3&transport=polling"
        async with aiohttp.ClientSession() as http, http.get(handshake) as response:
            assert response.status == 400
            body = await response.json()
        assert body["code"] == 5 and 'REALTIME["ALLOW_EIO3"] = True' in body["message"]
        refused = await agent.socket("a").open(process.url, "polling", client=2)
        assert (await refused.next("connect", "connect_error"))[0] == "connect_error"
        log = process.log_path.read_text()
        assert "Unsupported protocol version: Engine.IO v3" in log  # the refusal's one log line says it too
    finally:
        process.stop()
