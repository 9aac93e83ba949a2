"""Socket.IO parsers: how a packet becomes Engine.IO messages and back, chosen per server.

Socket.IO lets both ends swap the parser as a pair (``parser`` on Node's server and client).
Two are offered, as in Node (this module sits beside the protocol core, not in it: the core is
standard library only, and the msgpack codec is a library's):

- ``json``: socket.io-parser's text packets with binary attachments (socketio.py), the default;
- ``msgpack``: npm's ``socket.io-msgpack-parser`` (v3), one binary Engine.IO message per packet.

Wire facts of the msgpack parser (socket.io-msgpack-parser 3.0 on notepack.io 2.2):

- a packet is one msgpack map ``{"type", "nsp", "data", "id"}``; ``data`` and ``id`` may be absent
  or JavaScript ``undefined``; binary travels inside the map, so there are no BINARY_* packets
  (types 0 to 4 only) and no attachments;
- notepack writes a Node ``Buffer`` as msgpack bin, a browser ``ArrayBuffer`` or typed array as ext
  type 0 in an ext 8/16/32 container, ``undefined`` as fixext 1 type 0 (one zero byte) and a
  ``Date`` as fixext 8 type 0 (milliseconds since the epoch, high 32 bits signed, low unsigned);
  it reads bin as a ``Buffer`` (Node) or ``Uint8Array`` (browser), and ext type 0 back the same way;
- notepack writes UTF-8 by hand and mangles a lone surrogate (Node: U+D800 becomes ``F0 90 80 80``,
  U+10000); what arrives is taken in with ``surrogatepass``, so a surrogate encoded as three bytes
  (``ED A0 80``) decodes to itself and goes back out as the same bytes.

The msgpack package reports an ext's type and bytes but not the container it came in, and only the
container tells a one-byte ``ArrayBuffer`` from ``undefined`` or an eight-byte one from a ``Date``.
Those two lengths are rare, so the fast path decodes with the package and only a packet holding an
ext of length 1 or 8 is walked again, header by header, to read each container byte.
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any, Protocol

import msgpack

from .protocol import socketio
from .protocol.errors import ProtocolError
from .protocol.socketio import Packet, PacketType

__all__ = ["JSON", "MSGPACK", "PARSERS", "Decoder", "Parser", "parser_named"]


class Decoder(Protocol):
    """A connection's packet decoder: frames in, whole packets out."""

    @property
    def waiting(self) -> bool: ...

    def feed(self, frame: str | bytes) -> Packet | None: ...


class Parser(Protocol):
    """A Socket.IO parser: the encoder every recipient shares, and a decoder per connection."""

    name: str

    def encode(self, packet: Packet) -> list[str | bytes]: ...

    def decoder(self, *, max_attachments: int, max_bytes: int | None) -> Decoder: ...


class JsonParser:
    """socket.io-parser: text packets, bytes as numbered attachments (socketio.py)."""

    name = "json"

    def encode(self, packet: Packet) -> list[str | bytes]:
        return socketio.encode(packet)

    def decoder(self, *, max_attachments: int, max_bytes: int | None) -> Decoder:
        return socketio.Decoder(max_attachments=max_attachments, max_bytes=max_bytes)


# -- msgpack ------------------------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# BINARY_* say how the JSON parser carries bytes; the msgpack parser carries them inline.
_PLAIN = {PacketType.BINARY_EVENT: PacketType.EVENT, PacketType.BINARY_ACK: PacketType.ACK}
_MSGPACK_TYPES = {int(t): t for t in PacketType if t not in _PLAIN}
_EXT = frozenset({0xC7, 0xC8, 0xC9})  # ext 8/16/32: what notepack writes an ArrayBuffer in
_UNDEFINED = object()  # JavaScript undefined while a document is walked; never left in what it returns


class _Ambiguous(Exception):
    """An ext type 0 of 1 or 8 bytes: only its container byte says what it is."""


def _default(value: object) -> Any:
    """What msgpack cannot pack itself: bytes-likes as bin, datetimes as notepack's Date."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        millis = (aware - _EPOCH) // dt.timedelta(milliseconds=1)
        return msgpack.ExtType(0, struct.pack(">iI", millis >> 32, millis & 0xFFFFFFFF))
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} with the msgpack parser")


def _date(data: bytes) -> dt.datetime:
    high, low = struct.unpack(">iI", data)
    return _EPOCH + dt.timedelta(milliseconds=high * 2**32 + low)


def _fast_ext(code: int, data: bytes) -> Any:
    if code != 0:
        raise ProtocolError(f"msgpack ext type {code} is not one the Socket.IO parser writes")
    if len(data) in (1, 8):
        raise _Ambiguous
    return data


class MsgpackParser:
    """socket.io-msgpack-parser: one msgpack map per packet, in one binary message."""

    name = "msgpack"

    def __init__(self) -> None:
        self._packer = msgpack.Packer(default=_default, use_bin_type=True, unicode_errors="surrogatepass")

    def encode(self, packet: Packet) -> list[str | bytes]:
        """One binary message. Values msgpack cannot carry (a set, an object) are the caller's bug: ValueError."""
        if not packet.namespace.startswith("/"):
            raise ValueError(f"namespace {packet.namespace!r} must start with '/'")
        body: dict[str, Any] = {"type": int(_PLAIN.get(packet.type, packet.type)), "nsp": packet.namespace}
        if packet.data is not None or packet.type is PacketType.CONNECT_ERROR:
            body["data"] = packet.data
        if packet.id is not None:
            body["id"] = packet.id
        try:
            return [self._packer.pack(body)]
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"cannot encode {packet.type.name} with msgpack: {exc}") from None

    def decoder(self, *, max_attachments: int, max_bytes: int | None) -> Decoder:
        """The attachment caps do not apply: binary travels inside the packet, bounded by MAX_PAYLOAD."""
        return MsgpackDecoder()


class MsgpackDecoder:
    """One packet per binary message; text messages are refused, as by the npm parser."""

    __slots__ = ()

    @property
    def waiting(self) -> bool:
        return False  # no attachments: a packet is always whole

    def feed(self, frame: str | bytes) -> Packet | None:
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise ProtocolError("the msgpack parser takes binary messages only")
        raw = bytes(frame)
        try:
            body = msgpack.unpackb(
                raw, ext_hook=_fast_ext, raw=False, unicode_errors="surrogatepass", strict_map_key=True
            )
        except _Ambiguous:
            body = _Walker(raw).document()
        except ProtocolError:
            raise
        except (ValueError, TypeError, OverflowError, msgpack.UnpackException, RecursionError) as exc:
            raise ProtocolError(f"invalid msgpack: {type(exc).__name__}") from None
        return _packet(body)


def _packet(body: Any) -> Packet:
    """The packet in a decoded map, checked as socket.io-msgpack-parser checks it, and as socketio.py does."""
    if not isinstance(body, dict):
        raise ProtocolError("a msgpack packet is a map")
    kind = body.get("type")
    packet_type = _MSGPACK_TYPES.get(kind) if type(kind) is int else None
    if packet_type is None:
        raise ProtocolError(f"invalid packet type {kind!r}")
    namespace = body.get("nsp")
    if not isinstance(namespace, str) or not namespace.startswith("/"):
        raise ProtocolError("invalid namespace")
    ack_id = body.get("id")
    if ack_id is not None and (type(ack_id) is not int or not 0 <= ack_id <= socketio.MAX_ID):
        raise ProtocolError("invalid packet id")
    packet = Packet(packet_type, namespace, body.get("data"), ack_id)
    socketio.validate(packet, has_payload="data" in body)
    return packet


class _Walker:
    """The slow path: a msgpack document read header by header, so that each ext's container is known.

    Scalars, strings and bin are still unpacked by the package; only maps, arrays and exts are
    read here, which is all it takes to tell ``undefined`` and ``Date`` from an ``ArrayBuffer``.
    """

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.unpacker = msgpack.Unpacker(
            raw=False, unicode_errors="surrogatepass", strict_map_key=True, ext_hook=self._ext, max_buffer_size=len(raw)
        )
        self.unpacker.feed(raw)
        self.container = 0

    def document(self) -> Any:
        try:
            value = self.value(0)
            if self.unpacker.tell() != len(self.raw):
                raise ProtocolError("invalid msgpack: bytes after the packet")
            return value
        except ProtocolError:
            raise
        except (ValueError, TypeError, IndexError, OverflowError, msgpack.UnpackException, StopIteration) as exc:
            raise ProtocolError(f"invalid msgpack: {type(exc).__name__}") from None

    def value(self, depth: int) -> Any:
        if depth > 512:
            raise ProtocolError("msgpack packet nested too deeply")
        head = self.raw[self.unpacker.tell()]
        if 0x90 <= head <= 0x9F or head in (0xDC, 0xDD):
            # undefined in an array is null, as JSON.stringify writes it
            values = [self.value(depth + 1) for _ in range(self.unpacker.read_array_header())]
            return [None if value is _UNDEFINED else value for value in values]
        if 0x80 <= head <= 0x8F or head in (0xDE, 0xDF):
            # ...and a key whose value is undefined is not there (a packet's data or id included)
            items: dict[Any, Any] = {}
            for _ in range(self.unpacker.read_map_header()):
                key = self.value(depth + 1)
                if not isinstance(key, str):
                    raise ProtocolError("a map key is a string")
                value = self.value(depth + 1)
                if value is not _UNDEFINED:
                    items[key] = value
            return items
        self.container = head
        return self.unpacker.unpack()

    def _ext(self, code: int, data: bytes) -> Any:
        if code != 0:
            raise ProtocolError(f"msgpack ext type {code} is not one the Socket.IO parser writes")
        if self.container == 0xD4 and data == b"\x00":
            return _UNDEFINED
        if self.container == 0xD7:
            return _date(data)
        if self.container in _EXT:
            return data
        raise ProtocolError("msgpack ext type 0 in a container notepack does not write")


JSON = JsonParser()
MSGPACK = MsgpackParser()
PARSERS: dict[str, Parser] = {parser.name: parser for parser in (JSON, MSGPACK)}


def parser_named(name: str) -> Parser:
    """``REALTIME["PARSER"]``'s parser; ValueError names the ones there are."""
    try:
        return PARSERS[name]
    except KeyError:
        raise ValueError(f"unknown parser {name!r}: choose one of {sorted(PARSERS)}") from None
