"""Real Engine.IO clients against a real daphne process: engine.io-client (Node) and python-engineio."""

import asyncio
import base64

import engineio
import pytest

pytestmark = pytest.mark.both_servers  # every test here runs on daphne and on uvicorn (tests/conftest.py)


COUNT = 1000
BINARY_EVERY = 10


def expected_messages(count=COUNT, binary_every=BINARY_EVERY):
    """What the echo handler must send back, in order, as tests/js/eio_stream.mjs describes it."""
    out = []
    for i in range(count):
        if binary_every and i % binary_every == binary_every - 1:
            data = bytes([i % 256, 0, 255, (i >> 8) % 256])
            out.append("b:" + base64.b64encode(data).decode())
        else:
            out.append(f"t:m{i} ✓ é")
    return out


def test_node_client_streams_1000_messages_each_way(server, node, transport):
    report = node("eio_stream.mjs", server.url, {"transport": transport, "count": COUNT, "binaryEvery": BINARY_EVERY})
    assert report["error"] is None
    assert report["received"] == expected_messages()
    handshake = report["handshake"]
    assert set(handshake) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert (handshake["pingInterval"], handshake["pingTimeout"], handshake["maxPayload"]) == (400, 300, 1_000_000)
    assert len(handshake["sid"]) == 26  # 6-character process key + 120 random bits
    if transport == "websocket":
        assert handshake["upgrades"] == []
        assert (report["openTransport"], report["finalTransport"]) == ("websocket", "websocket")
    elif transport == "polling":
        assert handshake["upgrades"] == ["websocket"]
        assert (report["openTransport"], report["finalTransport"]) == ("polling", "polling")
    else:
        assert (report["openTransport"], report["finalTransport"]) == ("polling", "websocket")
        # the upgrade happened while the stream was flowing, not before or after it
        assert 0 < report["upgradedAfterSent"] < COUNT


def test_node_client_survives_several_heartbeats(server, node, transport):
    """A stream slower than the 400 ms ping interval: pings and pongs interleave with data."""
    report = node(
        "eio_stream.mjs", server.url, {"transport": transport, "count": 30, "window": 1, "delay": 50, "timeout": 20000}
    )
    assert report["error"] is None
    assert len(report["received"]) == 30


PYTHON_TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": ["polling", "websocket"]}


async def test_python_engineio_client_streams_1000_messages(server, transport):
    client = engineio.AsyncClient()
    received: list = []
    done = asyncio.Event()

    @client.on("message")
    async def on_message(data):
        received.append(data)
        if len(received) == COUNT:
            done.set()

    await client.connect(server.url, engineio_path="/engine.io/", transports=PYTHON_TRANSPORTS[transport])
    try:
        sent = []
        for i in range(COUNT):
            data = bytes([i % 256, 1, 2]) if i % BINARY_EVERY == 0 else f"py{i} ✓"
            sent.append(data)
            await client.send(data)
        await asyncio.wait_for(done.wait(), 20)
        assert received == sent
        assert client.transport() == ("polling" if transport == "polling" else "websocket")
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transport_name", ["polling", "websocket"])
async def test_python_engineio_client_sees_server_pings(server, transport_name):
    """Longer than a ping interval plus timeout: the session must still be open (pongs accepted)."""
    client = engineio.AsyncClient()
    closed = asyncio.Event()
    client.on("disconnect", closed.set)
    await client.connect(server.url, engineio_path="/engine.io/", transports=[transport_name])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(closed.wait(), 1.5)
    echoed = asyncio.Event()
    client.on("message", lambda data: echoed.set())
    await client.send("still here")
    await asyncio.wait_for(echoed.wait(), 5)
    await client.disconnect()
