"""Hostile and broken input gets the protocol's answer while a well-behaved client carries on."""

import asyncio
import json

import aiohttp
import engineio
import pytest

PATH = "/engine.io/"


async def open_polling(http, server):
    async with http.get(f"{server.url}{PATH}?EIO=4&transport=polling") as response:
        return json.loads((await response.text())[1:])["sid"]


async def bad_inputs(http, server):
    """Each abuse, with the status (or close) it must earn and the warning it must log."""
    base = f"{server.url}{PATH}"
    checks = []

    sid = await open_polling(http, server)
    async with http.post(f"{base}?EIO=4&transport=polling&sid={sid}", data="garbage") as r:
        checks.append(("malformed packet", r.status, 400, rf"sid={sid} closed: parse error"))

    sid = await open_polling(http, server)
    async with http.post(f"{base}?EIO=4&transport=polling&sid={sid}", data=b"4\xc3\x28") as r:
        checks.append(("non-UTF-8 text", r.status, 400, rf"sid={sid} closed: parse error"))

    sid = await open_polling(http, server)
    async with http.post(f"{base}?EIO=4&transport=polling&sid={sid}", data=b"4" + b"a" * 1_000_100) as r:
        checks.append(("body over the limit", r.status, 413, rf"over MAX_PAYLOAD \(sid={sid}\)"))

    async with http.request("PATCH", f"{base}?EIO=4&transport=polling") as r:
        checks.append(("wrong method", r.status, 400, r"PATCH /engine.io/ .* refused: Bad handshake method"))

    async with http.get(f"{base}?EIO=4&transport=polling&sid=doesnotexist") as r:
        checks.append(("unknown sid", r.status, 400, r"refused: Session ID unknown \(code 1, sid=doesnotexist\)"))

    sid = await open_polling(http, server)
    async with http.post(f"{base}?EIO=4&transport=polling&sid={sid}", data="1") as r:
        assert r.status == 200
    async with http.get(f"{base}?EIO=4&transport=polling&sid={sid}") as r:
        checks.append(("closed sid", r.status, 400, rf"refused: Session ID unknown \(code 1, sid={sid}\)"))

    async with http.get(f"{base}?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}) as r:
        checks.append(("hostile origin", r.status, 403, r"refused: Forbidden \(code 4"))

    ws = await http.ws_connect(f"{server.ws_url}{PATH}?EIO=4&transport=websocket")
    ws_sid = json.loads((await ws.receive_str(timeout=2))[1:])["sid"]
    await ws.send_bytes(b"\x00")  # binary is fine ...
    await ws.receive_bytes(timeout=2)
    await ws.send_str("\x00\x01not a packet")  # ... garbage text is not
    closing = await ws.receive(timeout=2)
    while closing.type is aiohttp.WSMsgType.TEXT:
        closing = await ws.receive(timeout=2)
    checks.append(("garbage WebSocket frame", closing.type, aiohttp.WSMsgType.CLOSE, rf"sid={ws_sid} closed: parse"))
    return checks


async def test_bad_input_is_answered_and_logged_while_a_good_client_keeps_talking(server):
    good = engineio.AsyncClient()
    echoes: asyncio.Queue = asyncio.Queue()
    good.on("message", echoes.put_nowait)
    await good.connect(server.url, engineio_path="/engine.io/", transports=["websocket"])

    stop = asyncio.Event()
    progressed = asyncio.Event()
    exchanged = 0
    target = None  # set once the abuse is over: how far the good client must get afterwards

    async def chatter():
        nonlocal exchanged
        while not stop.is_set():
            await good.send(f"good {exchanged}")
            assert await asyncio.wait_for(echoes.get(), 5) == f"good {exchanged}"
            exchanged += 1
            if target is not None and exchanged > target:
                progressed.set()

    talking = asyncio.create_task(chatter())
    mark = server.mark()
    try:
        async with aiohttp.ClientSession() as http:
            checks = await bad_inputs(http, server)
        target = exchanged + 20
        for name, got, expected, log_pattern in checks:
            assert got == expected, name
            await server.await_log(rf"WARNING realtime\.engineio: .*{log_pattern}", since=mark)
        # every warning is one line per abuse, not a traceback
        assert "Traceback" not in server.log()[mark:]
        await asyncio.wait_for(progressed.wait(), 5)
    finally:
        stop.set()
        await talking
        await good.disconnect()
    assert exchanged > 20


@pytest.mark.parametrize("count", [200])
async def test_sids_are_unique_and_unguessable(server, count):
    async with aiohttp.ClientSession() as http:
        sids = [await open_polling(http, server) for _ in range(count)]
    assert len(set(sids)) == count
    assert all(len(s) == 26 and s.replace("-", "").replace("_", "").isalnum() for s in sids)
    # 120 random bits each: no two share a long prefix
    assert len({s[6:14] for s in sids}) == count
