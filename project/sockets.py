"""The demo chat that `make run` serves at /: nicknames, rooms, acknowledged messages, typing, files.

The page (templates/demo.html, static/demo/demo.js) connects to the ``/chat``
namespace with ``auth = {nick, room}``, so a reconnected client comes back
under the same name in the same room without extra round trips.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from realtime import ClusterUnavailable, Namespace

logger = logging.getLogger("realtime.demo")

DEFAULT_ROOM = "lobby"
MAX_NICK = 24
MAX_ROOM = 32
MAX_TEXT = 2_000
# A file travels as one binary frame over WebSocket, or base64 (4/3 larger) in a polling body;
# both must stay under MAX_PAYLOAD (1,000,000 bytes), or the server closes the connection instead
# of answering with an error.
MAX_FILE_BYTES = 512 * 1024
# Types a browser may show inline; anything else is offered as a download.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class Chat(Namespace):
    namespace = "/chat"

    async def on_connect(self, socket, auth):
        socket.data["nick"] = _clean(auth.get("nick"), MAX_NICK) or f"guest-{socket.id[:4]}"
        room = _clean(auth.get("room"), MAX_ROOM) or DEFAULT_ROOM
        await self._enter(socket, room)
        await socket.emit("welcome", {"nick": socket.data["nick"], "room": room, "maxFileBytes": MAX_FILE_BYTES})

    async def on_disconnect(self, socket, reason):
        room = socket.data.get("room")
        if room is not None:
            await self._typing(room, socket, False)
            await self._notice(room, f"{socket.data['nick']} disconnected")

    async def on_nick(self, socket, nick: Any = None):
        """Rename; the ack is the name actually kept (trimmed and shortened)."""
        new = _clean(nick, MAX_NICK)
        if not new:
            return {"error": "a nickname needs at least one visible character"}
        old, socket.data["nick"] = socket.data["nick"], new
        if new != old:
            await self._notice(socket.data["room"], f"{old} is now {new}")
        return {"nick": new}

    async def on_join(self, socket, room: Any = None):
        """Move to another room (one at a time); the ack names it."""
        room = _clean(room, MAX_ROOM)
        if not room:
            return {"error": "a room needs a name"}
        if room != socket.data["room"]:
            await self._leave(socket)
            await self._enter(socket, room)
        return {"room": room}

    async def on_message(self, socket, text: Any = None):
        """Send ``text`` to the others in the room; the ack tells the sender it was delivered."""
        if not isinstance(text, str) or not text.strip():
            return {"error": "empty message"}
        if len(text) > MAX_TEXT:
            return {"error": f"messages are limited to {MAX_TEXT} characters"}
        receipt = _receipt()
        await socket.to(socket.data["room"]).emit("message", {**receipt, "nick": socket.data["nick"], "text": text})
        return receipt

    async def on_typing(self, socket, typing: Any = False):
        await self._typing(socket.data["room"], socket, bool(typing))

    async def on_file(self, socket, file: Any = None):
        """Pass a file (``{name, type, data: bytes}``) on to the room, as binary."""
        data = file.get("data") if isinstance(file, dict) else None
        if not isinstance(data, bytes):
            return {"error": "send {name, type, data} with data as an ArrayBuffer"}
        if len(data) > MAX_FILE_BYTES:
            return {"error": f"files are limited to {MAX_FILE_BYTES // 1024} KiB"}
        name = _clean(file.get("name"), 120) or "file"
        mime = file.get("type") if file.get("type") in INLINE_TYPES else "application/octet-stream"
        receipt = _receipt()
        payload = {**receipt, "nick": socket.data["nick"], "name": name, "type": mime, "size": len(data), "data": data}
        await socket.to(socket.data["room"]).emit("file", payload)
        return receipt

    # -- helpers ----------------------------------------------------------------
    async def _enter(self, socket, room: str) -> None:
        socket.data["room"] = room
        await socket.join(room)
        await self._notice(room, f"{socket.data['nick']} joined #{room}", sender=socket)

    async def _leave(self, socket) -> None:
        room = socket.data["room"]
        await self._typing(room, socket, False)
        await socket.leave(room)
        await self._notice(room, f"{socket.data['nick']} left #{room}")

    async def _typing(self, room: str, socket, typing: bool) -> None:
        await _tell(socket.to(room), "typing", {"id": socket.id, "nick": socket.data["nick"], "typing": typing})

    async def _notice(self, room: str, text: str, sender=None) -> None:
        """A line for everyone in the room (but ``sender``, who sees the ack or welcome instead)."""
        target = sender.to(room) if sender is not None else self.to(room)
        await _tell(target, "notice", {"text": text, "at": _now()})


async def _tell(target, event: str, payload: dict[str, Any]) -> None:
    """Emit a notice or a typing indicator, which a join, a rename or a disconnect does not fail for.

    Through a Redis outage it waits in the outbox like any broadcast; only once the outbox is full
    (``ClusterUnavailable``) is it lost to the other processes' clients, and one line says so.
    """
    try:
        await target.emit(event, payload)
    except ClusterUnavailable:
        logger.warning("%s not sent to the other processes: the cross-process outbox is full", event)


def _clean(value: Any, limit: int) -> str:
    """``value`` as a one-line, trimmed string of at most ``limit`` characters ("" when unusable)."""
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:limit]


def _receipt() -> dict[str, str]:
    return {"id": secrets.token_urlsafe(6), "at": _now()}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
