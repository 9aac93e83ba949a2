"""Helpers for tests and for the conformance server."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sessions import Session


class EchoHandler:
    """Sends every Engine.IO message back unchanged: text as text, binary as binary.

    It proves the transport path end to end before any Socket.IO logic
    exists, and it is what the Engine.IO conformance suite expects.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    async def on_open(self) -> None:
        pass

    async def on_message(self, data: str | bytes) -> None:
        await self.session.send(data)

    async def on_close(self, reason: str) -> None:
        pass
