"""A WebSocket client written out by hand, for clients no library would be: ones that stop reading.

Every client library reads its socket in the background, so none of them can
play a client that never reads. This one does the RFC 6455 handshake and frame
format itself over a socket with a small receive buffer, reads only when told
to, and can send frames blind (pongs nobody asked for).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str, rcvbuf: int = 4096) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: it sets the window
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)  # the server may still be starting
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    @classmethod
    async def engineio(cls, port: int, rcvbuf: int = 4096) -> tuple[RawWebSocket, str]:
        """A direct WebSocket Engine.IO session: (client, sid)."""
        ws = await cls.connect(port, "/socket.io/?EIO=4&transport=websocket", rcvbuf)
        opening = await ws.receive(30)
        assert isinstance(opening, str) and opening[0] == "0", opening
        return ws, json.loads(opening[1:])["sid"]

    def send(self, text: str) -> None:
        payload = text.encode("utf-8", "surrogatepass")
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def receive(self, timeout: float = 5) -> str | bytes | None:
        """The next data frame (None for a close frame or a dropped connection)."""
        try:
            return await asyncio.wait_for(self._frame(), timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def _frame(self) -> str | bytes | None:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(size)
        opcode = first & 0x0F
        if opcode == 0x8:
            return None
        if opcode == 0x9:  # a WebSocket ping: answer it, it is not a data frame
            return await self._frame()
        return payload.decode() if opcode == 0x1 else payload

    async def receive_until(self, prefix: str, timeout: float = 5) -> str:
        """Read text frames until one starts with ``prefix`` (answering Engine.IO pings on the way)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.receive(max(0.01, deadline - loop.time()))
            if frame is None:
                raise AssertionError(f"connection closed while waiting for {prefix!r}")
            if frame == "2":
                self.send("3")
            elif isinstance(frame, str) and frame.startswith(prefix):
                return frame

    async def closed(self, timeout: float = 10) -> bool:
        """True once the server has closed or dropped the connection (reading whatever comes first)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), max(0.01, deadline - loop.time()))
            except (TimeoutError, ConnectionError):
                return isinstance(self.reader.exception(), ConnectionError)
            if not chunk:
                return True
        return False

    def close(self) -> None:
        self.writer.transport.abort()
