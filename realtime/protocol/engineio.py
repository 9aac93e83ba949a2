"""Engine.IO packets and HTTP long-polling payloads, v4 and v3.

Wire rules (engine.io-protocol, v4):
- a text packet is one ASCII digit (its type) followed by UTF-8 text;
- a binary message over WebSocket is a binary frame holding only the bytes;
- a polling payload joins packets with the record separator ``\\x1e`` and
  carries a binary message as ``b`` + base64 of its bytes.

Engine.IO v3 (``EIO=3``: Socket.IO v2 clients) frames the same packets differently:
- a binary WebSocket frame starts with the packet type as a byte (``\\x04`` for a message);
- a text polling payload is ``<length>:<packet>`` records, the length in UTF-16 code units (a
  JavaScript string's ``length``), a binary message as ``b4`` + base64; ``EIO=3&b64=1`` asks for that;
- otherwise a payload that holds binary is sent (and may arrive) in the binary form: per packet
  ``\\x00`` (text) or ``\\x01`` (binary), the length as one byte per decimal digit, ``\\xff``, then
  the packet: text as UTF-8 (the length counts bytes), binary as the type byte and the bytes.

``EngineProtocol`` is that difference as a value: the session and the consumers ask it how to
frame, and the state machine (engine.py) reads its ``version`` for the heartbeat's direction.
"""

from __future__ import annotations

import binascii
import enum
import re
from base64 import b64decode, b64encode
from collections.abc import Mapping
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


# -- Engine.IO v3 --------------------------------------------------------------------------------

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")  # two UTF-16 code units each
_MAX_LENGTH_DIGITS = 10  # a record longer than any MAX_PAYLOAD we would accept is junk


def encode_packet_v3(packet: EnginePacket) -> str | bytes:
    """One packet as a v3 WebSocket frame: binary ones lead with their type byte."""
    if isinstance(packet.data, bytes):
        return bytes((int(packet.type),)) + packet.data
    return f"{int(packet.type)}{packet.data}"


def decode_packet_v3(frame: str | bytes) -> EnginePacket:
    """One v3 WebSocket frame as a packet."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        frame = bytes(frame)
        if frame[:1] != b"\x04":
            raise ProtocolError("binary frame is not a message (type byte 4)")
        return EnginePacket(EnginePacketType.MESSAGE, frame[1:])
    return decode_packet(frame)


def utf16_length(text: str) -> int:
    """``text.length`` in JavaScript: characters outside the BMP count two."""
    return len(text) + len(_ASTRAL.findall(text)) if not text.isascii() else len(text)


def _record_v3(packet: EnginePacket) -> str:
    if isinstance(packet.data, bytes):
        return f"b{int(packet.type)}" + b64encode(packet.data).decode("ascii")
    return f"{int(packet.type)}{packet.data}"


def encode_payload_v3(packets: list[EnginePacket], binary: bool) -> bytes:
    """Packets as a v3 polling body: the binary form when allowed and needed, else length-prefixed text."""
    if binary and any(p.binary for p in packets):
        out = bytearray()
        for packet in packets:
            if isinstance(packet.data, bytes):
                body = bytes((int(packet.type),)) + packet.data
                out.append(1)
            else:
                body = f"{int(packet.type)}{packet.data}".encode()
                out.append(0)
            out += bytes(int(d) for d in str(len(body)))
            out.append(255)
            out += body
        return bytes(out)
    text = "".join(f"{utf16_length(r)}:{r}" for r in map(_record_v3, packets))
    return text.encode()


def decode_payload_v3(body: bytes | str) -> list[EnginePacket]:
    """A v3 polling body, text or binary form (told apart by its first byte); malformed fails it whole."""
    if isinstance(body, (bytes, bytearray)) and body[:1] in (b"\x00", b"\x01"):
        return _decode_binary_payload(bytes(body))
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("payload is not UTF-8") from exc
    if not body:
        raise ProtocolError("empty payload")
    if _ASTRAL.search(body) is None:
        return _decode_text_payload(body)
    # lengths count UTF-16 code units: walk the body in those, two bytes each
    units = body.encode("utf-16-le", "surrogatepass")
    return _decode_text_payload(units.decode("latin-1"), units)


def _decode_text_payload(text: str, units: bytes | None = None) -> list[EnginePacket]:
    """``<length>:<record>`` records. With ``units`` the positions count UTF-16 units (2 bytes each)."""
    packets: list[EnginePacket] = []
    step = 1 if units is None else 2
    position, end = 0, len(text)
    while position < end:
        colon = text.find(":" if units is None else ":\x00", position)
        digits = text[position:colon:step] if colon != -1 and (colon - position) % step == 0 else ""
        if not digits or len(digits) > _MAX_LENGTH_DIGITS or not digits.isascii() or not digits.isdigit():
            raise ProtocolError("bad record length in v3 payload")
        length = int(digits) * step
        start = colon + step
        if start + length > end:
            raise ProtocolError("v3 payload record runs past the body")
        if units is None:
            record = text[start : start + length]
        else:
            record = units[start : start + length].decode("utf-16-le", "surrogatepass")
        packets.append(_decode_record_v3(record))
        position = start + length
    return packets


def _decode_record_v3(record: str) -> EnginePacket:
    if record[:1] == "b":
        if record[1:2] != "4":
            raise ProtocolError("base64 packet is not a message")
        try:
            return EnginePacket(EnginePacketType.MESSAGE, b64decode(record[2:], validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError("bad base64 in binary packet") from exc
    return decode_packet(record)


def _decode_binary_payload(body: bytes) -> list[EnginePacket]:
    packets: list[EnginePacket] = []
    position, end = 0, len(body)
    while position < end:
        kind = body[position]
        if kind not in (0, 1):
            raise ProtocolError("bad record kind in binary v3 payload")
        stop = body.find(b"\xff", position + 1, position + 2 + _MAX_LENGTH_DIGITS)
        digits = body[position + 1 : stop] if stop != -1 else b""
        if not digits or any(d > 9 for d in digits):
            raise ProtocolError("bad record length in binary v3 payload")
        length = int("".join(str(d) for d in digits))
        start = stop + 1
        if length == 0 or start + length > end:
            raise ProtocolError("binary v3 payload record runs past the body")
        record = body[start : start + length]
        if kind == 1:
            packets.append(decode_packet_v3(record))
        else:
            try:
                packets.append(decode_packet(record.decode("utf-8")))
            except UnicodeDecodeError as exc:
                raise ProtocolError("text record is not UTF-8") from exc
        position = start + length
    return packets


@dataclass(frozen=True, slots=True)
class EngineProtocol:
    """How one session's packets are framed: Engine.IO v4, or v3 with or without binary payloads."""

    version: int
    binary_payloads: bool = False  # v3 only: False when the handshake asked for b64=1

    def encode_frame(self, packet: EnginePacket) -> str | bytes:
        return encode_packet(packet) if self.version == 4 else encode_packet_v3(packet)

    def decode_frame(self, frame: str | bytes) -> EnginePacket:
        return decode_packet(frame) if self.version == 4 else decode_packet_v3(frame)

    def encode_payload(self, packets: list[EnginePacket]) -> tuple[bytes, bool]:
        """A polling body, and whether it is in the binary form (application/octet-stream)."""
        if self.version == 4:
            return encode_payload(packets).encode(), False
        body = encode_payload_v3(packets, self.binary_payloads)
        return body, body[:1] in (b"\x00", b"\x01")

    def decode_payload(self, body: bytes) -> list[EnginePacket]:
        return decode_payload(body) if self.version == 4 else decode_payload_v3(body)


EIO4 = EngineProtocol(4)
EIO3 = EngineProtocol(3, binary_payloads=True)
EIO3_BASE64 = EngineProtocol(3, binary_payloads=False)


def protocol_of(query: Mapping[str, str]) -> EngineProtocol:
    """The framing a handshake asked for (``EIO`` already checked): v3 with ``b64`` set wants base64."""
    if query.get("EIO") != "3":
        return EIO4
    b64 = query.get("b64")
    return EIO3_BASE64 if b64 not in (None, "", "0", "false") else EIO3
