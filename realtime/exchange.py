"""One polling GET or POST against a Session, whoever carries the HTTP answer back.

The PollingConsumer answers its own HTTP request; a forwarded request (see
forwarding.py) is answered through the channel layer. Both are a
PollResponder: they differ only in ``respond``.
"""

from __future__ import annotations

import logging

from .logs import throttled
from .protocol.engine import PollAnswer, Transport
from .protocol.engineio import EnginePacket, EnginePacketType, EngineProtocol
from .protocol.http import BAD_REQUEST, Refusal
from .sessions import Session

logger = logging.getLogger("realtime.engineio")

TEXT = (b"content-type", b"text/plain; charset=UTF-8")
BINARY = (b"content-type", b"application/octet-stream")  # an Engine.IO v3 binary payload
JSON = (b"content-type", b"application/json")
# A handshake refused while the process shuts down: Engine.IO has no code for it, so the
# status says it (503, try elsewhere) and the body reuses "Bad request".
SHUTTING_DOWN = Refusal(503, 3, "Server shutting down")


class PollResponder:
    """Knows the polling rules; subclasses know how to send an HTTP answer."""

    answered = False
    held_by: Session | None = None

    async def respond(self, status: int, body: bytes, *headers: tuple[bytes, bytes], compress: bool = False) -> None:
        """Send the answer; ``compress``: it may be compressed (the HTTP side decides whether it is)."""
        raise NotImplementedError

    async def get(self, session: Session) -> None:
        answer = await session.poll(self)
        if answer is PollAnswer.REFUSE:
            throttled(
                logger,
                logging.WARNING,
                "GET refused",
                "sid=%s: polling GET refused (transport upgraded, closed or GET already held)",
                session.sid,
            )
            await self.respond(400, BAD_REQUEST.body, JSON)
        elif answer is PollAnswer.WAIT:
            self.held_by = session

    async def post(self, session: Session, body: bytes) -> None:
        await session.catch_up()
        if session.closed or session.transport is Transport.WEBSOCKET:
            await self.respond(400, BAD_REQUEST.body, JSON)
            return
        packets = await session.read_payload(body)
        if packets is None:
            await self.respond(400, BAD_REQUEST.body, JSON)
            return
        await session.inbound_done()
        await self.respond(200, b"ok", TEXT)
        session.receive_later(packets)

    async def cancelled(self) -> None:
        """The client gave up on this request; a held GET then ends the session (spec)."""
        if self.held_by is not None and not self.answered:
            await self.held_by.poll_cancelled(self)

    # -- PollSink, used by the Session ------------------------------------------------
    async def deliver(self, packets: list[EnginePacket], protocol: EngineProtocol) -> None:
        """Answer this GET, now or after holding it; compressible unless every message said compress(False).

        Only messages count: a ping batched with a compress(False) event would otherwise decide for it
        (it does in Node), and an answer of nothing but control packets is a few bytes anyway.
        """
        compress = any(packet.compress for packet in packets if packet.type is EnginePacketType.MESSAGE)
        body, binary = protocol.encode_payload(packets)
        await self.respond(200, body, BINARY if binary else TEXT, compress=compress)

    async def refuse_upgraded(self) -> None:
        """An upgrade took this held GET's transport away."""
        throttled(
            logger,
            logging.WARNING,
            "held GET refused",
            "sid=%s: held polling GET refused: the session upgraded to websocket",
            self.sid_label(),
        )
        await self.respond(400, BAD_REQUEST.body, JSON)

    def sid_label(self) -> str:
        return self.held_by.sid if self.held_by is not None else "?"
