"""Socket.IO v5 packets: the text encoding and binary attachments.

Wire rules (socket.io-protocol, v5):
- a packet is ``<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]``, and the namespace is
  written only when it is not ``/``;
- bytes anywhere in the data of an EVENT or ACK make it a BINARY_EVENT or BINARY_ACK: each bytes
  value is replaced by ``{"_placeholder":true,"num":N}``, numbered depth first, and travels as the
  N-th binary frame after the text frame.

BINARY_EVENT and BINARY_ACK say how the data travels, not what it means, so they stay on the wire,
as in Node's socket.io-parser: the decoder returns EVENT or ACK whether or not attachments came with
it, and the encoder picks the binary type from the data, whatever type the packet names (a binary
packet must carry at least one attachment: Node refuses ``50-``). So ``decode(encode(p)) == p`` for
every valid packet, except that BINARY_* comes back as EVENT or ACK, and bytearray or memoryview as
bytes. Callers never see BINARY_* from the decoder; matching on it as well does no harm.

The decoder follows socket.io-parser 4.2, including its cap of 10 attachments per packet (which the
JavaScript client applies to what we send it, too). It is stricter where Node lets through a packet
that no client sends and the server could only misread: an EVENT, ACK or CONNECT_ERROR without a
payload, an ACK without an id, an ack id on any other packet than EVENT or ACK, an event name that
is not a string, an ack id a JavaScript peer cannot hold exactly, and numbers past the float range.
Reserved event names are left to the server (``is_reserved_event``): Node's parser refuses them.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from .errors import ProtocolError


class PacketType(enum.IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


_TYPES = {str(int(t)): t for t in PacketType}
# The type an EVENT or ACK takes on when its data holds bytes; the BINARY_* types keep theirs.
_AS_BINARY = {
    PacketType.EVENT: PacketType.BINARY_EVENT,
    PacketType.ACK: PacketType.BINARY_ACK,
    PacketType.BINARY_EVENT: PacketType.BINARY_EVENT,
    PacketType.BINARY_ACK: PacketType.BINARY_ACK,
}
# ...and the type a BINARY_* packet takes on without bytes ("50-" is not a valid packet), or once decoded.
_AS_TEXT = {PacketType.BINARY_EVENT: PacketType.EVENT, PacketType.BINARY_ACK: PacketType.ACK}
_BINARY_TYPES = frozenset({PacketType.BINARY_EVENT, PacketType.BINARY_ACK})
_ACK_TYPES = frozenset({PacketType.ACK, PacketType.BINARY_ACK})
_WITH_ACK_ID = frozenset(_AS_BINARY)  # only events ask for an ack, and only acks answer one
_BINARY_VALUES = (bytes, bytearray, memoryview)
_DIGITS = re.compile(r"[0-9]*")  # ASCII only: str.isdigit() would take "٣" or "²" as a digit

# socket.io-parser's default, and what the JavaScript client accepts from us.
MAX_ATTACHMENTS = 10

# Number.MAX_SAFE_INTEGER: the largest ack id a JavaScript peer holds exactly, so an ack can come back
# with the id it was asked for. Capping the digits first also keeps int() clear of its 4300-digit limit.
MAX_ID = 2**53 - 1
_MAX_ID_DIGITS = len(str(MAX_ID))

# Names the client library fires itself, so a client may not emit them (socket.io v4 docs).
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


@dataclass(frozen=True, slots=True)
class Packet:
    """One Socket.IO packet; ``data`` is decoded JSON with bytes where binary attachments were."""

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None


def is_reserved_event(name: str) -> bool:
    """Whether ``name`` belongs to the client library, so that a client emitting it is refused."""
    return name in RESERVED_EVENTS


# Encoding


def encode(packet: Packet) -> list[str | bytes]:
    """The packet as frames: the text frame first, then one bytes frame per binary attachment.

    Bytes, bytearray or memoryview values anywhere in the data of an EVENT or ACK (nested in lists,
    tuples and dicts at any depth) make it a BINARY_EVENT or BINARY_ACK: each value is replaced by
    ``{"_placeholder":true,"num":N}`` in depth-first order and sent as attachment N; a BINARY_* packet
    without bytes goes out as EVENT or ACK. More than ``MAX_ATTACHMENTS`` attachments are sent, but a
    JavaScript client will refuse them. The JSON is compact, non-ASCII text is written as is, and
    dict keys keep their order. A packet the decoder could not read back (a namespace without a
    leading ``/`` or with a comma, an ack id out of range, NaN, bytes in a packet that cannot carry
    them) is a bug in the caller: ``ValueError``.
    """
    _check_header(packet)
    attachments: list[bytes] = []
    data = _deconstruct(packet.data, attachments) if _has_binary(packet.data) else packet.data
    packet_type = packet.type
    if attachments:
        if packet_type not in _AS_BINARY:
            raise ValueError(f"a {packet_type.name} packet cannot carry binary data")
        packet_type = _AS_BINARY[packet_type]
    else:
        packet_type = _AS_TEXT.get(packet_type, packet_type)
    frames: list[str | bytes] = [_header(packet_type, packet, attachments) + _dumps(data)]
    frames.extend(attachments)
    return frames


def _check_header(packet: Packet) -> None:
    if not packet.namespace.startswith("/") or "," in packet.namespace:
        raise ValueError(f"namespace {packet.namespace!r} must start with '/' and hold no ','")
    if packet.id is not None and not 0 <= packet.id <= MAX_ID:
        raise ValueError(f"ack id {packet.id} is outside 0..{MAX_ID}")


def _header(packet_type: PacketType, packet: Packet, attachments: list[bytes]) -> str:
    header = str(int(packet_type))
    if packet_type in _BINARY_TYPES:
        header += f"{len(attachments)}-"
    if packet.namespace != "/":
        header += packet.namespace + ","
    if packet.id is not None:
        header += str(packet.id)
    return header


def _dumps(data: Any) -> str:
    if data is None:
        return ""
    text = _ENCODER.encode(data)
    if text.isascii():
        return text
    # A lone surrogate (valid in JSON as "\\ud800", which any JS client can send) cannot be written as
    # UTF-8: it goes back out as the JSON escape the client sent, so the frame always encodes.
    return _LONE_SURROGATE.sub(_escape_surrogate, text)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# One encoder and one decoder for the process: json.dumps and json.loads build a new one on every
# call that passes options, which was a measurable share of an echo's cost (make bench, py-spy).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _has_binary(value: Any) -> bool:
    if isinstance(value, _BINARY_VALUES):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_binary(item) for item in value)
    if isinstance(value, dict):
        return any(_has_binary(item) for item in value.values())
    return False


def _deconstruct(value: Any, attachments: list[bytes]) -> Any:
    """``value`` with every binary value moved to ``attachments`` and replaced by its placeholder."""
    if isinstance(value, _BINARY_VALUES):
        attachments.append(bytes(value))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(value, (list, tuple)):
        return [_deconstruct(item, attachments) for item in value]
    if isinstance(value, dict):
        return {key: _deconstruct(item, attachments) for key, item in value.items()}
    return value


# Decoding


class Decoder:
    """Stateful per-connection decoder: binary packets arrive as a text frame followed by N binary frames.

    After a ``ProtocolError`` the decoder has dropped any half-received packet, though the caller is
    expected to close the connection anyway ("parse error").
    """

    __slots__ = ("_attachments", "_bytes", "_expected", "_max_attachments", "_max_bytes", "_pending")

    def __init__(self, *, max_attachments: int = MAX_ATTACHMENTS, max_bytes: int | None = None) -> None:
        # The caps bound what one packet can make us buffer: each attachment may be a whole maxPayload.
        self._max_attachments = max_attachments
        self._max_bytes = max_bytes
        self._pending: Packet | None = None
        self._expected = 0
        self._bytes = 0
        self._attachments: list[bytes] = []

    @property
    def waiting(self) -> bool:
        """True while a binary packet's attachments are outstanding."""
        return self._pending is not None

    def feed(self, frame: str | bytes) -> Packet | None:
        """The packet ``frame`` completes, or None while a binary packet still waits for attachments."""
        if isinstance(frame, str):
            return self._feed_text(frame)
        if isinstance(frame, _BINARY_VALUES):
            return self._feed_binary(bytes(frame))
        raise ProtocolError(f"a frame is str or bytes, not {type(frame).__name__}")

    def _feed_text(self, frame: str) -> Packet | None:
        if self._pending is not None:
            self._reset()
            raise ProtocolError("text frame while binary attachments are outstanding")
        packet, expected = _decode_text(frame, self._max_attachments)
        if packet.type not in _BINARY_TYPES:
            return packet
        self._pending, self._expected = packet, expected
        return self._complete()

    def _feed_binary(self, frame: bytes) -> Packet | None:
        if self._pending is None:
            raise ProtocolError("binary frame when no attachment is expected")
        self._bytes += len(frame)
        if self._max_bytes is not None and self._bytes > self._max_bytes:
            self._reset()
            raise ProtocolError(f"binary attachments over {self._max_bytes} bytes")
        self._attachments.append(frame)
        return self._complete()

    def _complete(self) -> Packet | None:
        """The pending packet with its placeholders filled in, once every attachment has arrived."""
        packet, attachments = self._pending, self._attachments
        if packet is None or len(attachments) < self._expected:
            return None
        self._reset()
        try:
            data = _reconstruct(packet.data, attachments)
        except RecursionError as exc:
            raise ProtocolError("binary packet nested too deeply") from exc
        return Packet(_AS_TEXT[packet.type], packet.namespace, data, packet.id)

    def _reset(self) -> None:
        self._pending, self._expected, self._attachments, self._bytes = None, 0, [], 0


def _decode_text(frame: str, max_attachments: int) -> tuple[Packet, int]:
    """The packet in a text frame (placeholders still in place) and how many attachments follow it."""
    packet_type = _TYPES.get(frame[:1])
    if packet_type is None:
        raise ProtocolError(f"unknown packet type {frame[:1]!r}")
    expected, position = 0, 1
    if packet_type in _BINARY_TYPES:
        expected, position = _attachment_count(frame, position, max_attachments)
    namespace, position = _namespace(frame, position)
    ack_id, position = _ack_id(frame, position)
    payload = frame[position:]
    data = _loads(payload) if payload else None
    packet = Packet(packet_type, namespace, data, ack_id)
    validate(packet, has_payload=bool(payload))
    return packet, expected


def _attachment_count(frame: str, position: int, max_attachments: int) -> tuple[int, int]:
    # A binary packet must say how many attachments follow: "51-", never "5-", "51" or "50-".
    end = frame.find("-", position)
    if end == -1:
        raise ProtocolError("binary packet without an attachment count")
    count = _integer(frame[position:end], "attachment count")
    if not 1 <= count <= max_attachments:
        raise ProtocolError(f"binary packet with {count} attachments, not 1 to {max_attachments}")
    return count, end + 1


def _namespace(frame: str, position: int) -> tuple[str, int]:
    # The namespace runs to the next comma, or to the end: "0/custom" connects to "/custom".
    if frame[position : position + 1] != "/":
        return "/", position
    end = frame.find(",", position)
    if end == -1:
        return frame[position:], len(frame)
    return frame[position:end], end + 1


def _ack_id(frame: str, position: int) -> tuple[int | None, int]:
    match = _DIGITS.match(frame, position)
    digits = match.group() if match else ""
    if not digits:
        return None, position
    return _integer(digits, "ack id"), position + len(digits)


def _integer(digits: str, what: str) -> int:
    if not digits or len(digits) > _MAX_ID_DIGITS or _DIGITS.fullmatch(digits) is None:
        raise ProtocolError(f"invalid {what} {digits[:20]!r}")
    value = int(digits)
    if value > MAX_ID:
        raise ProtocolError(f"{what} {value} is larger than {MAX_ID}")
    return value


# Deepest nesting of arrays and objects a packet may have. json.loads takes about a thousand levels,
# but every later walk of the data (finding binary values, encoding an echo) recurses too, and a
# value the server can read but not send back would fail the handler instead of the parser.
MAX_DEPTH = 100


def _loads(payload: str) -> Any:
    if payload.count("[") + payload.count("{") > MAX_DEPTH and _depth(payload) > MAX_DEPTH:
        raise ProtocolError(f"JSON nested more than {MAX_DEPTH} levels deep")
    try:
        return _DECODER.decode(payload)
    except ProtocolError:
        raise
    except RecursionError as exc:
        raise ProtocolError("JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, and ints past Python's 4300-digit limit
        raise ProtocolError(f"invalid JSON: {exc}") from exc


def _depth(payload: str) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count).

    Only asked of payloads with more brackets than MAX_DEPTH, so the common packet never pays for it.
    """
    deepest = depth = 0
    in_string = escaped = False
    for char in payload:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> NoReturn:
    # JSON has no NaN or Infinity; Python's json module accepts them unless told not to.
    raise ProtocolError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # "1e400" parses as inf, which could not be encoded back as JSON.
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError(f"number {text[:20]!r} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _is_event_args(data: object) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], str)


# What the payload of each type must be once present; CONNECT and DISCONNECT may also have none.
_VALID_PAYLOAD: dict[PacketType, Callable[[object], bool]] = {
    PacketType.CONNECT: lambda data: isinstance(data, dict),
    PacketType.DISCONNECT: lambda data: False,
    PacketType.EVENT: _is_event_args,
    PacketType.ACK: lambda data: isinstance(data, list),
    PacketType.CONNECT_ERROR: lambda data: isinstance(data, (dict, str)),
    PacketType.BINARY_EVENT: _is_event_args,
    PacketType.BINARY_ACK: lambda data: isinstance(data, list),
}
_PAYLOAD_OPTIONAL = frozenset({PacketType.CONNECT, PacketType.DISCONNECT})


def validate(packet: Packet, *, has_payload: bool) -> None:
    """A decoded packet's shape, whichever parser read it: ProtocolError when no client would send it."""
    # "0null" is not "0": a payload that is present must have the type's shape, even JSON null.
    if has_payload and not _VALID_PAYLOAD[packet.type](packet.data):
        raise ProtocolError(f"invalid {packet.type.name} payload")
    if not has_payload and packet.type not in _PAYLOAD_OPTIONAL:
        raise ProtocolError(f"{packet.type.name} packet without a payload")
    if packet.type in _ACK_TYPES and packet.id is None:
        raise ProtocolError(f"{packet.type.name} packet without an ack id")
    if packet.id is not None and packet.type not in _WITH_ACK_ID:
        raise ProtocolError(f"a {packet.type.name} packet cannot carry an ack id")


def _reconstruct(value: Any, attachments: list[bytes]) -> Any:
    """``value`` with each placeholder replaced by the attachment it names."""
    if isinstance(value, list):
        return [_reconstruct(item, attachments) for item in value]
    if isinstance(value, dict):
        if value.get("_placeholder") is True:
            return _attachment(value.get("num"), attachments)
        return {key: _reconstruct(item, attachments) for key, item in value.items()}
    return value


def _attachment(num: object, attachments: list[bytes]) -> bytes:
    if type(num) is not int or not 0 <= num < len(attachments):
        raise ProtocolError(f"placeholder names attachment {num!r} of {len(attachments)}")
    return attachments[num]
