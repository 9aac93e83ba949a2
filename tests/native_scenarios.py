"""The server side of the native clients' scenarios (tests/clients/{java,go,rust}, tests/e2e/test_clients_native.py).

Each scenario program talks to ``/native`` and ``/native-second``; the room
broadcast comes from the plain Django view at ``/test/emit/`` (tests/urls.py).
Clients name each socket with a ``tag`` in their CONNECT auth object because
not every library exposes its socket id (rust_socketio does not): the server
files what it saw per tag, and a client asks about one tag from another socket.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from realtime import Namespace, event
from realtime.namespaces import Socket
from tests.sockets import identity

# tag -> the reason on_disconnect saw, as a future so that a question asked on another
# connection waits for the disconnect instead of racing it
_REASONS: dict[str, asyncio.Future[str]] = {}
# tag -> how many times a socket with that tag connected (reconnection counts)
_CONNECTS: dict[str, int] = defaultdict(int)


def _reason(tag: str) -> asyncio.Future[str]:
    if tag not in _REASONS:
        _REASONS[tag] = asyncio.get_running_loop().create_future()
    return _REASONS[tag]


def _type_name(value: Any) -> str:
    """The JSON type a value arrived as (bool before int: bool is an int in Python)."""
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), (list, "array")):
        if isinstance(value, kind):
            return name
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bytes):
        return "binary"
    return "null" if value is None else type(value).__name__


def _engine(socket: Socket) -> dict[str, str]:
    session = socket.session
    return {"sid": session.sid, "transport": session.conn.transport.value}


class NativeScenarios(Namespace):
    namespace = "/native"

    async def on_connect(self, socket: Socket, auth: dict[str, Any]) -> None:
        tag = str(auth.get("tag", ""))
        socket.data["tag"] = tag
        _CONNECTS[tag] += 1

    async def on_disconnect(self, socket: Socket, reason: str) -> None:
        """The first disconnect of a tag is its answer (a reconnected socket keeps its first reason)."""
        future = _reason(socket.data["tag"])
        if not future.done():
            future.set_result(reason)

    async def on_identity(self, socket: Socket) -> dict[str, Any]:
        """Who the token made this socket (the connect-auth scenario), and over which transport."""
        return {**identity(socket), **_engine(socket)}

    async def on_engine(self, socket: Socket) -> dict[str, str]:
        return _engine(socket)

    async def on_echo(self, socket: Socket, *args: Any) -> tuple[Any, ...]:
        return args

    @event("ünïcødé-ēvent ✓")
    async def unicode_echo(self, socket: Socket, *args: Any) -> tuple[Any, ...]:
        """An event name outside ASCII as well as the arguments."""
        return args

    async def on_types(self, socket: Socket, *args: Any) -> tuple[list[str], list[Any]]:
        """The JSON type of each argument as Python decoded it, and the arguments themselves."""
        return [_type_name(a) for a in args], list(args)

    async def on_notify(self, socket: Socket, *args: Any) -> None:
        """No ack asked: the answer is an event of its own."""
        await socket.emit("notified", *args)

    async def on_ask(self, socket: Socket, *args: Any) -> dict[str, Any]:
        """Server-to-client ack: ask the client a question and report its answer."""
        try:
            return {"answer": await socket.emit_with_ack("question", *args, timeout=3)}
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    async def on_binary(self, socket: Socket, blob: Any) -> None:
        """Binary from the client without an ack: describe what arrived in an event."""
        await socket.emit("binary-seen", _describe(blob))

    @event("binary-ack")
    async def binary_ack(self, socket: Socket, blob: Any) -> tuple[Any, ...]:
        """Binary in and out through an ack: the bytes reversed, and what arrived."""
        return (bytes(reversed(blob)) if isinstance(blob, bytes) else None), _describe(blob)

    @event("binary-down")
    async def binary_down(self, socket: Socket) -> None:
        await socket.emit("binary-down", bytes(range(256)))

    @event("binary-nested")
    async def binary_nested(self, socket: Socket) -> None:
        """Bytes inside an object and an array, next to other arguments."""
        await socket.emit("binary-nested", {"a": b"\x00\x01\x02", "list": [b"\xff" * 3, "text"]}, 7)

    async def on_join(self, socket: Socket, room: str) -> list[str]:
        await socket.join(room)
        return sorted(socket.rooms - {socket.id})

    async def on_kick(self, socket: Socket) -> None:
        """The server ends this socket's namespace connection: the client sees io server disconnect."""
        await socket.disconnect()

    async def on_drop(self, socket: Socket) -> None:
        """The server ends the whole Engine.IO connection: the client sees the transport close and reconnects."""
        await socket.session.close("transport close")

    async def on_reason(self, socket: Socket, tag: str) -> str | None:
        """The reason the server saw for the socket tagged ``tag``, waiting up to 3 s for it to go."""
        try:
            return await asyncio.wait_for(asyncio.shield(_reason(tag)), 3)
        except TimeoutError:
            return None

    async def on_connects(self, socket: Socket, tag: str) -> int:
        return _CONNECTS.get(tag, 0)


def _describe(blob: Any) -> dict[str, Any]:
    if not isinstance(blob, bytes):
        return {"type": _type_name(blob)}
    return {"type": "binary", "length": len(blob), "hex": blob.hex()}


class NativeSecond(Namespace):
    """A second namespace, to show it shares the first one's Engine.IO connection."""

    namespace = "/native-second"

    async def on_engine(self, socket: Socket) -> dict[str, str]:
        return {**_engine(socket), "namespace": socket.namespace}
