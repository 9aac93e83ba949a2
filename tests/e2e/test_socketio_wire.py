"""Socket.IO packets on the wire, raw over aiohttp's WebSocket client."""

import json

import aiohttp
import pytest

from tests.clients.node import NodeAgent

pytestmark = pytest.mark.both_servers  # every test here runs on daphne and on uvicorn (tests/conftest.py)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def raw(http, server):
    ws = await http.ws_connect(f"{server.ws_url}/socket.io/?EIO=4&transport=websocket")
    frame = await ws.receive_str(timeout=2)
    assert frame[0] == "0"
    return ws, json.loads(frame[1:])["sid"]


async def next_data(ws):
    """The next frame that is not a ping (answering it, as a client must)."""
    while True:
        message = await ws.receive(timeout=3)
        if message.type is aiohttp.WSMsgType.TEXT and message.data == "2":
            await ws.send_str("3")
            continue
        return message


async def test_connect_answers_with_a_socket_id_that_is_not_the_sid(http, server):
    ws, sid = await raw(http, server)
    await ws.send_str('40{"token":"t"}')
    answer = (await next_data(ws)).data
    assert answer.startswith("40{")
    assert set(json.loads(answer[2:])) == {"sid"}
    assert json.loads(answer[2:])["sid"] != sid
    assert (await next_data(ws)).data == '42["welcome",{"token":"t"}]'
    await ws.send_str("40/nope,")
    assert (await next_data(ws)).data == '44/nope,{"message":"Invalid namespace"}'
    await ws.close()


async def test_no_namespace_within_connect_timeout_closes_the_session(http, server):
    ws, sid = await raw(http, server)
    mark = server.mark()
    message = await next_data(ws)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.TEXT)
    await server.await_log(rf"sid={sid} closed: no namespace connected within CONNECT_TIMEOUT", since=mark)


@pytest.mark.parametrize(
    "bad",
    ['42{"not":"an array"}', "42abc", "4zz", '42["connect"]', '44{"message":"x"}', "45-[]", '42[1,"x"]'],
)
async def test_malformed_packets_close_only_that_session(http, server, bad):
    agent = await NodeAgent().start()
    try:
        good = await agent.socket("good").connect(server.url, "websocket")
        ws, sid = await raw(http, server)
        await ws.send_str("40")
        assert (await next_data(ws)).data.startswith("40")
        await next_data(ws)  # welcome
        mark = server.mark()
        await ws.send_str(bad)
        closing = await next_data(ws)
        while closing.type is aiohttp.WSMsgType.TEXT:
            closing = await next_data(ws)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await server.await_log(rf"WARNING realtime\.socketio: sid={sid} closed: parse error", since=mark)
        assert await good.emit_with_ack("echo", "unaffected") == ["unaffected"]
    finally:
        await agent.close()
