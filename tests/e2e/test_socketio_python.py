"""python-socketio's AsyncClient and Client against the real server: the core cases."""

import asyncio
import threading

import pytest
import socketio

pytestmark = pytest.mark.both_servers  # every test here runs on daphne and on uvicorn (tests/conftest.py)


TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": ["polling", "websocket"]}


@pytest.fixture
async def client(server, transport):
    sio = socketio.AsyncClient(reconnection=False)
    yield sio
    if sio.connected:
        await sio.disconnect()


async def test_async_client_core_cases(server, client, transport):
    welcome = asyncio.get_running_loop().create_future()
    client.on("welcome", lambda auth: welcome.set_result(auth))
    client.on("question", lambda *args: ("answer", *args))
    await client.connect(server.url, transports=TRANSPORTS[transport], auth={"token": "py"})
    assert await asyncio.wait_for(welcome, 5) == {"token": "py"}

    values = [1, 2.5, None, True, "é😀", {"a": [1, {"b": None}]}]
    assert await client.call("echo", values, timeout=5) == values
    blob = {"bin": bytes(range(256)), "nested": [b"\x00", "x"]}
    assert await client.call("echo", blob, timeout=5) == blob
    # the server asks, this client answers
    assert await client.call("ask", (2.0, "q"), timeout=5) == {"answer": ["answer", "q"]}

    disconnected = asyncio.Event()
    client.on("disconnect", lambda *reason: disconnected.set())
    await client.emit("disconnect-me")
    await asyncio.wait_for(disconnected.wait(), 5)


async def test_async_client_refused_and_unknown_namespace(server, transport):
    refused = socketio.AsyncClient(reconnection=False)
    errors = []
    refused.on("connect_error", lambda data: errors.append(data), namespace="/refuse")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(server.url, namespaces=["/refuse"], transports=TRANSPORTS[transport], auth={"token": "x"})
    assert errors == [{"message": "Not authorized", "data": {"reason": "bad token", "got": "x"}}]

    unknown = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError, match=r"Invalid namespace|One or more namespaces"):
        await unknown.connect(server.url, namespaces=["/nope"], transports=TRANSPORTS[transport])


async def test_async_client_multiplexes_namespaces(server, client, transport):
    teams = asyncio.Queue()
    client.on("team", teams.put_nowait, namespace="/team-5")
    await client.connect(server.url, namespaces=["/", "/team-5", "/decorated"], transports=TRANSPORTS[transport])
    assert await asyncio.wait_for(teams.get(), 5) == "/team-5"
    assert await client.call("echo", "root", timeout=5) == "root"
    assert await client.call("double", 4, namespace="/decorated", timeout=5) == 8


def test_sync_client(server):
    """The blocking Client, as a Django management command or script would use it."""
    sio = socketio.Client(reconnection=False)
    got = threading.Event()
    seen = []
    sio.on("echo-event", lambda *args: (seen.append(args), got.set()))
    sio.connect(server.url, transports=["websocket"])
    try:
        assert sio.call("echo", ("sync", {"n": 1}), timeout=5) == ("sync", {"n": 1})
        sio.emit("echo-event", (b"\x01\x02", "x"))
        assert got.wait(5)
        assert seen == [(b"\x01\x02", "x")]
    finally:
        sio.disconnect()
