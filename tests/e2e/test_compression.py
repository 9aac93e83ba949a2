"""Compression as clients see it: gzip/deflate polling answers (aiohttp, raw bytes) and permessage-deflate
as socket.io-client's WebSocket (Node's ws) negotiates it, on daphne and on uvicorn.

Polling answers of HTTP_COMPRESSION_THRESHOLD (1 KiB) or more are compressed when Accept-Encoding
takes gzip or deflate, unless every packet in them was emitted with compress(False). WebSocket
compression is the ASGI server's to negotiate: uvicorn does, daphne does not.
"""

import asyncio
import gzip
import json
import zlib

import aiohttp
import pytest

BIG = "x" * 5000


pytestmark = pytest.mark.both_servers  # the session's daphne and uvicorn (tests/conftest.py)


class Poller:
    """A raw Engine.IO polling client that answers pings and keeps each GET's raw answer."""

    def __init__(self, http: aiohttp.ClientSession, url: str, accept_encoding: str) -> None:
        self.http, self.base, self.accept = http, f"{url}/socket.io/?EIO=4&transport=polling", accept_encoding
        self.sid = ""
        self.vary: list[str] = []  # the last answer's Vary headers

    async def open(self) -> None:
        async with self.http.get(self.base, headers={"Accept-Encoding": "identity"}) as response:
            self.sid = json.loads((await response.text())[1:])["sid"]
        await self.post("40")
        await self.until('"welcome"')  # the CONNECT answer and the welcome event are out of the way

    async def post(self, body: str) -> None:
        async with self.http.post(f"{self.base}&sid={self.sid}", data=body.encode()) as response:
            assert response.status == 200

    async def until(self, wanted: str) -> tuple[str | None, bytes, str]:
        """GETs until a message containing ``wanted``: that answer's Content-Encoding, raw body, decoded text."""
        async with asyncio.timeout(10):
            while True:
                async with self.http.get(
                    f"{self.base}&sid={self.sid}", headers={"Accept-Encoding": self.accept}
                ) as response:
                    assert response.status == 200
                    raw = await response.read()
                    coding = response.headers.get("Content-Encoding")
                    vary = response.headers.getall("Vary", [])
                text = {"gzip": gzip.decompress, "deflate": zlib.decompress, None: bytes}[coding](raw).decode()
                if text.count("\x1e2") or text == "2":
                    await self.post("3")
                if wanted in text:
                    self.vary = vary
                    return coding, raw, text


@pytest.mark.parametrize(("accept", "coding"), [("gzip, deflate, br", "gzip"), ("deflate", "deflate")])
async def test_large_polling_answers_are_compressed(server, accept, coding):
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        poller = Poller(http, server.url, accept)
        await poller.open()
        await poller.post(json.dumps(["echo-event", "big", BIG], separators=(",", ":")).join(["42", ""]))
        got, raw, text = await poller.until(BIG)
    assert got == coding
    assert len(raw) < 500 < 5000 < len(text)
    assert "Accept-Encoding" in poller.vary  # a cache must not hand this answer to a client that did not ask


async def test_small_answers_and_clients_that_do_not_ask_are_not_compressed(server):
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        small = Poller(http, server.url, "gzip")
        await small.open()
        await small.post('42["echo-event","small"]')
        assert (await small.until('"small"'))[0] is None  # under 1 KiB
        plain = Poller(http, server.url, "identity")
        await plain.open()
        await plain.post(json.dumps(["echo-event", BIG]).join(["42", ""]))
        coding, raw, _ = await plain.until(BIG)
        assert coding is None and len(raw) > 5000
        assert "Accept-Encoding" in plain.vary


async def test_compress_false_is_honoured_on_polling(server):
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        poller = Poller(http, server.url, "gzip")
        await poller.open()
        await poller.post(json.dumps(["echo-uncompressed", BIG]).join(["42", ""]))
        coding, raw, _ = await poller.until(BIG)
    assert coding is None and len(raw) > 5000


async def test_websocket_compression_is_the_asgi_servers(agent, server):
    socket = await agent.socket("ws").connect(server.url, "websocket")
    extensions = (await socket.state())["extensions"]
    if server.asgi_server == "uvicorn":
        assert "permessage-deflate" in extensions
    else:
        assert extensions == ""  # daphne (autobahn) is not configured to negotiate it
    assert await socket.emit_with_ack("echo", BIG) == [BIG]
