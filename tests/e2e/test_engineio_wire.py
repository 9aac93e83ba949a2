"""The wire, byte for byte, with raw HTTP and WebSocket requests (aiohttp) against daphne."""

import asyncio
import json

import aiohttp
import pytest

PATH = "/engine.io/"


async def handshake(http, server):
    async with http.get(f"{server.url}{PATH}?EIO=4&transport=polling") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
        body = await response.text()
    assert body[0] == "0"
    return json.loads(body[1:])["sid"]


def polling_url(server, sid):
    return f"{server.url}{PATH}?EIO=4&transport=polling&sid={sid}"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize(
    ("method", "query", "status", "body"),
    [
        ("GET", "EIO=4", 400, {"code": 0, "message": "Transport unknown"}),
        ("GET", "EIO=4&transport=flash", 400, {"code": 0, "message": "Transport unknown"}),
        ("GET", "EIO=4&transport=polling&sid=nope", 400, {"code": 1, "message": "Session ID unknown"}),
        ("POST", "EIO=4&transport=polling&sid=nope", 400, {"code": 1, "message": "Session ID unknown"}),
        ("POST", "EIO=4&transport=polling", 400, {"code": 2, "message": "Bad handshake method"}),
        ("PUT", "EIO=4&transport=polling", 400, {"code": 2, "message": "Bad handshake method"}),
        ("DELETE", "EIO=4&transport=polling", 400, {"code": 2, "message": "Bad handshake method"}),
        ("GET", "EIO=4&transport=websocket", 400, {"code": 3, "message": "Bad request"}),
        ("GET", "transport=polling", 400, {"code": 5, "message": "Unsupported protocol version"}),
        ("GET", "EIO=abc&transport=polling", 400, {"code": 5, "message": "Unsupported protocol version"}),
    ],
)
async def test_http_errors_have_the_exact_json_bodies(server, http, method, query, status, body):
    mark = server.mark()
    async with http.request(method, f"{server.url}{PATH}?{query}") as response:
        assert response.status == status
        assert json.loads(await response.read()) == body
    await server.await_log(rf"WARNING realtime\.engineio: {method} {PATH} .*refused: {body['message']}", since=mark)


async def test_put_with_a_live_sid_is_400_not_405(server, http):
    sid = await handshake(http, server)
    async with http.put(polling_url(server, sid), data="4x") as response:
        assert response.status == 400
        assert json.loads(await response.read()) == {"code": 3, "message": "Bad request"}


async def test_hostile_origin_is_forbidden(server, http):
    mark = server.mark()
    headers = {"Origin": "http://evil.example"}
    async with http.get(f"{server.url}{PATH}?EIO=4&transport=polling", headers=headers) as response:
        assert response.status == 403
        assert json.loads(await response.read()) == {"code": 4, "message": "Forbidden"}
        assert "Access-Control-Allow-Origin" not in response.headers
    await server.await_log(r"refused: Forbidden \(code 4", since=mark)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{server.ws_url}{PATH}?EIO=4&transport=websocket", headers=headers)
    assert refused.value.status == 403


async def test_listed_origin_gets_cors_headers_and_preflight(server, http):
    headers = {"Origin": "http://allowed.example"}
    async with http.get(f"{server.url}{PATH}?EIO=4&transport=polling", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
    preflight = {**headers, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    async with http.options(f"{server.url}{PATH}?EIO=4&transport=polling", headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
        assert response.headers["Access-Control-Allow-Headers"] == "content-type"


async def test_same_origin_needs_no_listing(server, http):
    headers = {"Origin": server.url}
    async with http.get(f"{server.url}{PATH}?EIO=4&transport=polling", headers=headers) as response:
        assert response.status == 200


async def test_post_answers_ok_and_get_returns_the_echo(server, http):
    sid = await handshake(http, server)
    async with http.post(polling_url(server, sid), data="4hello\x1ebAQIDBA==") as response:
        assert response.status == 200
        assert await response.text() == "ok"
    async with http.get(polling_url(server, sid)) as response:
        assert await response.text() == "4hello\x1ebAQIDBA=="


async def test_held_get_waits_for_the_next_ping(server, http):
    sid = await handshake(http, server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(polling_url(server, sid)) as response:
        assert await response.text() == "2"
    assert loop.time() - started > 0.2  # it was held, not answered empty


async def test_duplicate_get_closes_the_session(server, http):
    sid = await handshake(http, server)
    mark = server.mark()
    first = asyncio.ensure_future(http.get(polling_url(server, sid)))
    await server.await_log(rf"sid={sid}: GET held", since=mark)
    async with http.get(polling_url(server, sid) + "&t=burst") as second:
        assert second.status == 400
    response = await first
    assert response.status == 200
    assert await response.text() == "1"
    async with http.get(polling_url(server, sid)) as again:
        assert again.status == 400
        assert json.loads(await again.read())["code"] == 1
    await server.await_log(rf"sid={sid} closed: transport error", since=mark)


async def test_client_close_ends_a_held_get_with_noop_and_forgets_the_sid(server, http):
    sid = await handshake(http, server)
    mark = server.mark()
    held = asyncio.ensure_future(http.get(polling_url(server, sid)))
    await server.await_log(rf"sid={sid}: GET held", since=mark)
    async with http.post(polling_url(server, sid), data="1") as response:
        assert await response.text() == "ok"
    response = await held
    assert await response.text() == "6"
    async with http.get(polling_url(server, sid)) as again:
        assert json.loads(await again.read()) == {"code": 1, "message": "Session ID unknown"}


async def test_malformed_post_is_400_and_closes_the_session(server, http):
    sid = await handshake(http, server)
    mark = server.mark()
    async with http.post(polling_url(server, sid), data="abc") as response:
        assert response.status == 400
    async with http.get(polling_url(server, sid)) as response:
        assert response.status == 400
    await server.await_log(rf"WARNING realtime\.engineio: sid={sid} closed: parse error", since=mark)


async def test_non_utf8_post_is_400(server, http):
    sid = await handshake(http, server)
    async with http.post(polling_url(server, sid), data=b"4\xff\xfe") as response:
        assert response.status == 400
    async with http.get(polling_url(server, sid)) as response:
        assert response.status == 400


async def test_polling_body_over_max_payload_is_413_and_closes(server, http):
    sid = await handshake(http, server)
    mark = server.mark()
    async with http.post(polling_url(server, sid), data="4" + "x" * 1_000_001) as response:
        assert response.status == 413
    async with http.get(polling_url(server, sid)) as response:
        assert response.status == 400
    await server.await_log(r"WARNING realtime\.engineio: .*over MAX_PAYLOAD", since=mark)


async def test_polling_body_at_max_payload_is_accepted(server, http):
    sid = await handshake(http, server)
    body = "4" + "y" * 999_999
    async with http.post(polling_url(server, sid), data=body) as response:
        assert await response.text() == "ok"
    async with http.get(polling_url(server, sid)) as response:
        assert await response.text() == body


async def test_polling_session_without_pongs_times_out(server, http):
    sid = await handshake(http, server)
    mark = server.mark()
    await server.await_log(rf"sid={sid} closed: ping timeout", timeout=2, since=mark)
    async with http.get(polling_url(server, sid)) as response:
        assert response.status == 400


async def test_cancelled_get_closes_the_session(server, http):
    sid = await handshake(http, server)
    mark = server.mark()
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"GET {PATH}?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    await server.await_log(rf"sid={sid}: GET held", since=mark)
    writer.close()  # the client gives up on the held GET
    await server.await_log(rf"sid={sid} closed: transport close", since=mark)
    async with http.get(polling_url(server, sid)) as response:
        assert response.status == 400


# -- WebSocket ---------------------------------------------------------------


async def open_ws(http, server, sid=None):
    query = "EIO=4&transport=websocket" + (f"&sid={sid}" if sid else "")
    return await http.ws_connect(f"{server.ws_url}{PATH}?{query}", autoping=True)


async def test_direct_websocket_handshake_offers_no_upgrade(server, http):
    ws = await open_ws(http, server)
    frame = await ws.receive_str(timeout=2)
    handshake = json.loads(frame[1:])
    assert frame[0] == "0"
    assert handshake["upgrades"] == []
    await ws.send_str("4hi")
    assert await ws.receive_str(timeout=2) == "4hi"
    await ws.send_bytes(b"\x00\x01\xff")
    assert await ws.receive_bytes(timeout=2) == b"\x00\x01\xff"
    await ws.close()


async def test_websocket_without_pongs_is_closed_with_ping_timeout(server, http):
    ws = await open_ws(http, server)
    sid = json.loads((await ws.receive_str(timeout=2))[1:])["sid"]
    mark = server.mark()
    assert await ws.receive_str(timeout=2) == "2"
    closing = await ws.receive(timeout=2)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await server.await_log(rf"sid={sid} closed: ping timeout", since=mark)


async def test_websocket_frame_over_max_payload_closes_with_1009(server, http):
    ws = await open_ws(http, server)
    await ws.receive_str(timeout=2)
    await ws.send_str("4" + "z" * 1_000_000)
    closing = await ws.receive(timeout=5)
    while closing.type is aiohttp.WSMsgType.TEXT and closing.data == "2":  # a ping may come first
        closing = await ws.receive(timeout=5)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert closing.data == 1009


async def test_websocket_garbage_closes_only_that_session(server, http):
    ws = await open_ws(http, server)
    sid = json.loads((await ws.receive_str(timeout=2))[1:])["sid"]
    mark = server.mark()
    await ws.send_str("abc")
    closing = await ws.receive(timeout=2)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await server.await_log(rf"WARNING realtime\.engineio: sid={sid} closed: parse error", since=mark)


async def test_websocket_close_packet_closes(server, http):
    ws = await open_ws(http, server)
    await ws.receive_str(timeout=2)
    await ws.send_str("1")
    closing = await ws.receive(timeout=2)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_websocket_with_unknown_sid_is_refused(server, http):
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await open_ws(http, server, sid="unknown")


# -- upgrade -----------------------------------------------------------------


async def test_upgrade_keeps_buffered_packets_in_order(server, http):
    sid = await handshake(http, server)
    ws = await open_ws(http, server, sid)
    await ws.send_str("2probe")
    assert await ws.receive_str(timeout=2) == "3probe"
    # messages posted over polling during the upgrade are echoed into the buffer ...
    async with http.post(polling_url(server, sid), data="4a\x1e4b") as response:
        assert await response.text() == "ok"
    # ... a GET during the upgrade gets a noop, not the buffer ...
    async with http.get(polling_url(server, sid)) as response:
        assert await response.text() == "6"
    await ws.send_str("5")
    # ... and the buffer arrives over the WebSocket, first and in order.
    assert await ws.receive_str(timeout=2) == "4a"
    assert await ws.receive_str(timeout=2) == "4b"
    await ws.send_str("4c")
    assert await ws.receive_str(timeout=2) == "4c"
    async with http.get(polling_url(server, sid)) as response:
        assert response.status == 400
    await ws.close()


async def test_pending_get_returns_noop_when_the_probe_arrives(server, http):
    sid = await handshake(http, server)
    mark = server.mark()
    held = asyncio.ensure_future(http.get(polling_url(server, sid)))
    await server.await_log(rf"sid={sid}: GET held", since=mark)
    ws = await open_ws(http, server, sid)
    await ws.send_str("2probe")
    assert await ws.receive_str(timeout=2) == "3probe"
    response = await held
    assert await response.text() == "6"
    await ws.send_str("5")
    await ws.send_str("4after")
    assert await ws.receive_str(timeout=2) == "4after"
    await ws.close()


async def test_second_websocket_after_upgrade_is_accepted_then_closed(server, http):
    sid = await handshake(http, server)
    ws = await open_ws(http, server, sid)
    await ws.send_str("2probe")
    await ws.receive_str(timeout=2)
    await ws.send_str("5")
    second = await open_ws(http, server, sid)
    closing = await second.receive(timeout=2)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.send_str("4still")
    assert await ws.receive_str(timeout=2) == "4still"
    await ws.close()
