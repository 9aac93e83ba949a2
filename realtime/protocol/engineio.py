"""Engine.IO v4 packets and HTTP long-polling payloads.

Wire rules (engine.io-protocol, v4):
- a text packet is one ASCII digit (its type) followed by UTF-8 text;
- a binary message over WebSocket is a binary frame holding only the bytes;
- a polling payload joins packets with the record separator ``\\x1e`` and
  carries a binary message as ``b`` + base64 of its bytes.
"""

from __future__ import annotations

import binascii
import enum
from base64 import b64decode, b64encode
from dataclasses import dataclass, field

from .errors import ProtocolError

SEPARATOR = "\x1e"


class EnginePacketType(enum.IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_TYPES = {str(int(t)): t for t in EnginePacketType}


@dataclass(frozen=True, slots=True)
class EnginePacket:
    """One Engine.IO packet; ``data`` is bytes only for a binary MESSAGE."""

    type: EnginePacketType
    data: str | bytes = ""
    # whether an HTTP answer carrying it may be compressed (Socket.IO's compress(False) says no);
    # not part of the packet's identity, and never on the wire
    compress: bool = field(default=True, compare=False)

    @property
    def binary(self) -> bool:
        return isinstance(self.data, bytes)


# Packets the server sends often, built once.
PING = EnginePacket(EnginePacketType.PING)
PONG = EnginePacket(EnginePacketType.PONG)
NOOP = EnginePacket(EnginePacketType.NOOP)
CLOSE = EnginePacket(EnginePacketType.CLOSE)
UPGRADE = EnginePacket(EnginePacketType.UPGRADE)


def encode_packet(packet: EnginePacket) -> str | bytes:
    """One packet as a WebSocket frame: text frames are typed, binary ones raw."""
    if isinstance(packet.data, bytes):
        return packet.data
    return f"{int(packet.type)}{packet.data}"


def decode_packet(frame: str | bytes) -> EnginePacket:
    """One WebSocket frame (or one record of a polling payload) as a packet."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return EnginePacket(EnginePacketType.MESSAGE, bytes(frame))
    if not frame:
        raise ProtocolError("empty packet")
    packet_type = _TYPES.get(frame[0])
    if packet_type is None:
        raise ProtocolError(f"unknown packet type {frame[0]!r}")
    return EnginePacket(packet_type, frame[1:])


def encode_payload(packets: list[EnginePacket]) -> str:
    """Packets as one polling response body."""
    return SEPARATOR.join(_encode_record(p) for p in packets)


def _encode_record(packet: EnginePacket) -> str:
    if isinstance(packet.data, bytes):
        return "b" + b64encode(packet.data).decode("ascii")
    return f"{int(packet.type)}{packet.data}"


def decode_payload(body: bytes | str) -> list[EnginePacket]:
    """A polling request body as packets; any malformed record fails it whole."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("payload is not UTF-8") from exc
    return [_decode_record(record) for record in body.split(SEPARATOR)]


def _decode_record(record: str) -> EnginePacket:
    if record[:1] == "b":
        data = record[1:]
        if "\n" in data or "\r" in data:
            # socket.io-client-java 2.x wraps its base64 in MIME lines ("\n" every 76 characters and at the
            # end); the reference server's decoder skips line breaks, so ours does too
            data = data.replace("\r", "").replace("\n", "")
        try:
            return EnginePacket(EnginePacketType.MESSAGE, b64decode(data, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError("bad base64 in binary packet") from exc
    return decode_packet(record)
