"""The messages the processes of a cluster send each other over the channel layer, as values.

Every process of a deployment, two versions of it during a rolling restart
included, has to agree on these dicts. Written down once here, with one type
string and typed fields per message, the wire format can be reviewed in one
place, and a receiver refuses a malformed message at the door
(``MalformedMessage``) instead of failing somewhere inside a handler.

Wire rules (what channels-redis's msgpack and the in-memory layer both keep):
- a message is a dict: ``"type"`` is ``realtime.<verb>``, the other values are
  str, bytes, bool, int, float, None, lists, and dicts with str keys;
- msgpack gives tuples back as lists, so the dataclasses hold tuples
  (immutable) and ``encode`` writes lists; user data passes through untouched;
- every message carries ``"origin"``, the sender's process key; a request also
  carries ``"request_id"`` and ``"reply_to"`` (the key to answer), and its
  answer is a ``realtime.reply`` quoting that request_id (``Envelope``);
- keys a receiver does not know are ignored, so a newer process may add one;
  a field with a default may be missing (an older process does not send it),
  and decodes as its default;
- an envelope may carry ``"trace"``, the W3C ``traceparent`` of the span that
  sent it (REALTIME["TRACING"]), so the receiver's span joins the sender's trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from .fields import CODECS, JSON, Decode, Encode, Wrong, decoder, encoder, fields_of
from .fields import MalformedMessage as MalformedMessage  # raised by decode(): importers find it here

# A W3C traceparent is 55 characters; anything much longer is not one.
MAX_TRACEPARENT = 128


def _wire(key: str) -> Mapping[str, str]:
    """Field metadata for a field whose wire key is not its Python name (the wire keeps today's keys)."""
    return {"wire": key}


class Message:
    """Base of the channel-layer messages; ``TYPE`` is the one place a message's type string is written."""

    __slots__ = ()
    TYPE: ClassVar[str]
    # Kept through a channel-layer outage and published when it is back (realtime.outbox): what
    # changes state or reaches clients. Requests, replies and relayed traffic only make sense now.
    DURABLE: ClassVar[bool] = False

    @property
    def durable(self) -> bool:
        return self.DURABLE

    def _problem(self) -> str | None:
        """What makes well-typed fields still unusable together; None when nothing does."""
        return None


# -- the cluster member (member.py) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who a process is, as its heartbeat tells the peers; ``id`` is what logs and the dashboard show."""

    id: str
    key: str
    host: str
    pid: int
    started: float


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """A process is alive: peers silent for three heartbeat intervals are dead.

    ``hello`` (start-up, the end of an outage) asks every peer to answer with
    its own heartbeat at once, so the new process knows them in one round trip.
    ``answer`` marks that reply: it proves the peer receives again after an
    outage, so what the asker kept for it may be published (realtime.outbox).
    """

    TYPE: ClassVar[str] = "realtime.heartbeat"
    info: PeerInfo
    hello: bool
    answer: bool = False


@dataclass(frozen=True, slots=True)
class Goodbye(Message):
    """A process is shutting down: its peers refuse its sids at once instead of waiting for it to die."""

    TYPE: ClassVar[str] = "realtime.goodbye"
    key: str
    id: str


@dataclass(frozen=True, slots=True)
class Reply(Message):
    """The answer to a request; ``request_id`` is the request's, so the asker finds who waits for it."""

    TYPE: ClassVar[str] = "realtime.reply"
    request_id: str
    body: JSON


# -- broadcasts and rooms (broadcast.py, policy.py) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast(Message):
    """One broadcast for one room group, frames already encoded: a process only writes them out.

    One copy goes to each target room's group (``via`` names the room; None
    when the broadcast has no rooms and goes to the namespace's group). A
    process reached through several rooms serves a socket only through the
    first of them in ``rooms``, so every socket gets it once; that is why
    ``via`` must be one of ``rooms``.
    """

    TYPE: ClassVar[str] = "realtime.broadcast"
    DURABLE: ClassVar[bool] = True
    namespace: str = field(metadata=_wire("ns"))
    rooms: tuple[str, ...]
    except_rooms: tuple[str, ...]
    except_ids: tuple[str, ...]
    volatile: bool
    event: str
    args: tuple[JSON, ...]
    frames: tuple[str | bytes, ...]
    via: str | None
    compress: bool = True  # False: emitted with compress(False), see EnginePacket.compress
    offset: str | None = None  # connection state recovery: the offset its frames carry, if any

    @property
    def durable(self) -> bool:
        return not self.volatile  # "now or never": a volatile broadcast is not kept through an outage

    def _problem(self) -> str | None:
        if not self.rooms:
            return None if self.via is None else "'via' must be None when 'rooms' is empty"
        return None if self.via in self.rooms else "'via' must be one of 'rooms'"


@dataclass(frozen=True, slots=True)
class BroadcastAck(Message):
    """Request: emit to this process's sockets in ``rooms`` and collect their acks within ``timeout`` s.

    The answer is ``{"answers": [...], "missing": n}``: each process says how many of its
    sockets did not answer in time, so the asker knows a missing ack from a process that is silent.
    """

    TYPE: ClassVar[str] = "realtime.broadcast_ack"
    namespace: str = field(metadata=_wire("ns"))
    rooms: tuple[str, ...]
    except_rooms: tuple[str, ...]
    except_ids: tuple[str, ...]
    event: str
    args: tuple[JSON, ...]
    timeout: float

    def _problem(self) -> str | None:
        return None if 0 <= self.timeout <= 86_400 else "'timeout' must be between 0 and 86400 seconds"


@dataclass(frozen=True, slots=True)
class RoomsChanged(Message):
    """The Room table changed: every process forgets its cached room policies."""

    TYPE: ClassVar[str] = "realtime.rooms_changed"
    DURABLE: ClassVar[bool] = True


# -- cluster-wide operations (cluster.py); each process answers for its own sockets --------------


@dataclass(frozen=True, slots=True)
class FetchSockets(Message):
    """Request: describe the sockets in ``room`` (the whole namespace when None or empty)."""

    TYPE: ClassVar[str] = "realtime.fetch_sockets"
    namespace: str = field(metadata=_wire("ns"))
    room: str | None


@dataclass(frozen=True, slots=True)
class SocketsJoin(Message):
    """Request: the sockets in ``room`` (all when None) join ``rooms``; the answer is how many did."""

    TYPE: ClassVar[str] = "realtime.sockets_join"
    DURABLE: ClassVar[bool] = True
    namespace: str = field(metadata=_wire("ns"))
    room: str | None
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SocketsLeave(Message):
    """Request: the sockets in ``room`` (all when None) leave ``rooms``; the answer is how many did."""

    TYPE: ClassVar[str] = "realtime.sockets_leave"
    DURABLE: ClassVar[bool] = True
    namespace: str = field(metadata=_wire("ns"))
    room: str | None
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DisconnectSockets(Message):
    """Request: disconnect the sockets in ``room`` (all when None); ``close`` ends their connections too."""

    TYPE: ClassVar[str] = "realtime.disconnect_sockets"
    DURABLE: ClassVar[bool] = True
    namespace: str = field(metadata=_wire("ns"))
    room: str | None
    close: bool


@dataclass(frozen=True, slots=True)
class FetchRooms(Message):
    """Request: this process's rooms of the namespace with their local member counts, to be summed."""

    TYPE: ClassVar[str] = "realtime.rooms"
    namespace: str = field(metadata=_wire("ns"))


@dataclass(frozen=True, slots=True)
class ServerEvent(Message):
    """Request: run ``event``'s server-side handler with ``args``; its return value is the answer."""

    TYPE: ClassVar[str] = "realtime.server_event"
    DURABLE: ClassVar[bool] = True
    event: str
    args: tuple[JSON, ...]


@dataclass(frozen=True, slots=True)
class CredentialsChanged(Message):
    """Fire and forget: drop the sockets of revoked tokens and users, re-arm moved token expiries.

    Primary keys travel as text (ints and UUIDs alike); an expiry is an ISO
    8601 string, None for a token that no longer expires.
    """

    TYPE: ClassVar[str] = "realtime.credentials_changed"
    DURABLE: ClassVar[bool] = True
    tokens: tuple[str, ...]
    users: tuple[str, ...]
    expiries: tuple[tuple[str, str | None], ...]


# -- forwarding to a session's owner (consumers/forwarding.py) ----------------------------------


@dataclass(frozen=True, slots=True)
class Poll(Message):
    """Request: a polling GET or POST for a sid another process owns; the answer is the HTTP response."""

    TYPE: ClassVar[str] = "realtime.poll"
    path: str
    sid: str
    method: str
    body: bytes


@dataclass(frozen=True, slots=True)
class PollCancel(Message):
    """The client of a forwarded GET went away: the owner stops holding it."""

    TYPE: ClassVar[str] = "realtime.poll_cancel"
    request_id: str = field(metadata=_wire("cancels"))


@dataclass(frozen=True, slots=True)
class PollRelease(Message):
    """The forwarding process is shutting down: the owner answers the held GET now and keeps the session."""

    TYPE: ClassVar[str] = "realtime.poll_release"
    request_id: str = field(metadata=_wire("releases"))


@dataclass(frozen=True, slots=True)
class RelayAttach(Message):
    """Request: attach a WebSocket held by the sender to the owner's session, as its upgrade probe."""

    TYPE: ClassVar[str] = "realtime.ws_attach"
    path: str
    sid: str
    relay_id: str


@dataclass(frozen=True, slots=True)
class RelayIn(Message):
    """A frame the relayed WebSocket's client sent, for the owner's session."""

    TYPE: ClassVar[str] = "realtime.ws_in"
    relay_id: str
    frame: str | bytes


@dataclass(frozen=True, slots=True)
class RelayGone(Message):
    """The relayed WebSocket closed at the relaying process: a transport close for the owner."""

    TYPE: ClassVar[str] = "realtime.ws_gone"
    relay_id: str


@dataclass(frozen=True, slots=True)
class RelayOut(Message):
    """A frame from the owner's session, for the relaying process to write to its WebSocket."""

    TYPE: ClassVar[str] = "realtime.ws_out"
    relay_id: str
    frame: str | bytes


@dataclass(frozen=True, slots=True)
class RelayShut(Message):
    """The owner ends the relayed WebSocket with close ``code``."""

    TYPE: ClassVar[str] = "realtime.ws_shut"
    relay_id: str
    code: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as it travels: who sent it, and for a request where the answer goes.

    A request is any message with ``request_id`` and ``reply_to`` (both or
    neither); a Reply is never one, its own ``request_id`` names what it answers.
    """

    origin: str
    message: Message
    request_id: str | None = None
    reply_to: str | None = None
    # the sender's W3C traceparent (REALTIME["TRACING"]): the receiver's span is its child
    trace: str | None = field(default=None, compare=False)
    # a durable message's number at its origin: a publish retried after a timeout may land twice,
    # and the receiver drops the second (realtime.outbox.Seen)
    seq: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.request_id is None) != (self.reply_to is None):
            raise ValueError("a request has both request_id and reply_to, other messages neither")
        if self.reply_to is not None and isinstance(self.message, Reply):
            raise ValueError("a reply is not a request")


def _peer_info_codec() -> tuple[Decode, Encode, str]:
    fields = fields_of(PeerInfo)
    decode_fields = decoder(PeerInfo, fields, f"{Heartbeat.TYPE} 'info'")

    def decode(value: Any) -> PeerInfo:
        if not isinstance(value, dict):
            raise Wrong
        return decode_fields(value)

    return decode, encoder(fields, {}), "a dict"


CODECS[PeerInfo] = _peer_info_codec()

# -- the registry: the message classes, their codecs built once at import -----------------------

MESSAGE_CLASSES: tuple[type[Message], ...] = (
    Heartbeat,
    Goodbye,
    Reply,
    Broadcast,
    BroadcastAck,
    RoomsChanged,
    FetchSockets,
    SocketsJoin,
    SocketsLeave,
    DisconnectSockets,
    FetchRooms,
    ServerEvent,
    CredentialsChanged,
    Poll,
    PollCancel,
    PollRelease,
    RelayAttach,
    RelayIn,
    RelayGone,
    RelayOut,
    RelayShut,
)
MESSAGE_TYPES: Mapping[str, type[Message]] = MappingProxyType({cls.TYPE: cls for cls in MESSAGE_CLASSES})
if len(MESSAGE_TYPES) != len(MESSAGE_CLASSES):
    raise TypeError("two message classes share a type string")


def _codec(cls: type[Message]) -> tuple[Callable[[dict[str, Any]], Message], Callable[[Any], dict[str, Any]]]:
    fields = fields_of(cls)
    return decoder(cls, fields, cls.TYPE), encoder(fields, {"type": cls.TYPE})


_CODECS_BY_TYPE = MappingProxyType({cls.TYPE: _codec(cls) for cls in MESSAGE_CLASSES})


def encode(envelope: Envelope) -> dict[str, Any]:
    """The dict to hand to the channel layer: the message's fields, its origin, and a request's two keys."""
    wire = _CODECS_BY_TYPE[envelope.message.TYPE][1](envelope.message)
    wire["origin"] = envelope.origin
    if envelope.reply_to is not None:
        wire["request_id"] = envelope.request_id
        wire["reply_to"] = envelope.reply_to
    if envelope.trace is not None:
        wire["trace"] = envelope.trace
    if envelope.seq is not None:
        wire["seq"] = envelope.seq
    return wire


def decode(raw: object) -> Envelope:
    """What the channel layer delivered, checked; MalformedMessage (and nothing else) when it is unusable."""
    if not isinstance(raw, dict):
        raise MalformedMessage(f"a channel-layer message is a dict, not {type(raw).__name__}")
    kind = raw.get("type")
    codec = _CODECS_BY_TYPE.get(kind) if isinstance(kind, str) else None
    if codec is None:
        shown = repr(kind[:100]) if isinstance(kind, str) else type(kind).__name__
        raise MalformedMessage(f"unknown channel-layer message type {shown}")
    message = codec[0](raw)
    problem = message._problem()
    if problem is not None:
        raise MalformedMessage(f"{kind}: {problem}")
    origin = raw.get("origin")
    if not isinstance(origin, str):
        raise MalformedMessage(f"{kind}: 'origin' must be a str" if "origin" in raw else f"{kind}: 'origin' is missing")
    trace = raw.get("trace")
    if trace is not None and not (isinstance(trace, str) and len(trace) <= MAX_TRACEPARENT):
        trace = None  # a trace context is a hint: an unusable one is ignored, the message is not refused
    seq = raw.get("seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63):
        raise MalformedMessage(f"{kind}: 'seq' must be a non-negative int")
    if isinstance(message, Reply):
        if "reply_to" in raw:
            raise MalformedMessage(f"{kind}: a reply has no 'reply_to'")
        return Envelope(origin, message, trace=trace, seq=seq)
    if "reply_to" not in raw and "request_id" not in raw:
        return Envelope(origin, message, trace=trace, seq=seq)
    request_id, reply_to = raw.get("request_id"), raw.get("reply_to")
    if isinstance(request_id, str) and isinstance(reply_to, str):
        return Envelope(origin, message, request_id, reply_to, trace, seq)
    raise MalformedMessage(f"{kind}: a request needs both 'request_id' and 'reply_to', each a str")
