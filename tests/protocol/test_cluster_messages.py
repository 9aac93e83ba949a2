"""Channel-layer messages: today's dicts exactly, round trips through msgpack, garbage refused as such."""

import dataclasses

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from realtime.protocol.cluster import (
    MESSAGE_CLASSES,
    MESSAGE_TYPES,
    Broadcast,
    BroadcastAck,
    CredentialsChanged,
    DisconnectSockets,
    Envelope,
    FetchRooms,
    FetchSockets,
    Goodbye,
    Heartbeat,
    MalformedMessage,
    Message,
    PeerInfo,
    Poll,
    PollCancel,
    PollRelease,
    RelayAttach,
    RelayGone,
    RelayIn,
    RelayOut,
    RelayShut,
    Reply,
    RoomsChanged,
    ServerEvent,
    SocketsJoin,
    SocketsLeave,
    decode,
    encode,
)
from realtime.protocol.errors import ProtocolError

try:
    import msgpack  # what channels-redis serialises with
except ImportError:  # pragma: no cover
    msgpack = None

INFO = PeerInfo(id="web-1:4242:a1b2c3", key="a1b2c3", host="web-1", pid=4242, started=1700000000.25)
WIRE_INFO = {"id": "web-1:4242:a1b2c3", "key": "a1b2c3", "host": "web-1", "pid": 4242, "started": 1700000000.25}
BINARY_FRAME = '51-/chat,["upload",{"_placeholder":true,"num":0}]'
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def request(message):
    return Envelope("a1b2c3", message, request_id="a1b2c3-0", reply_to="a1b2c3")


# What member.py, runtime.py (broadcasts), cluster.py and relays.py send, key for key (the wire of before the refactor).
CASES = [
    (
        Envelope("a1b2c3", Heartbeat(INFO, hello=True)),
        {"type": "realtime.heartbeat", "info": WIRE_INFO, "origin": "a1b2c3", "hello": True, "answer": False},
    ),
    (
        Envelope("a1b2c3", Heartbeat(INFO, hello=False)),
        {"type": "realtime.heartbeat", "info": WIRE_INFO, "origin": "a1b2c3", "hello": False, "answer": False},
    ),
    (
        Envelope("a1b2c3", Goodbye(key="a1b2c3", id="web-1:4242:a1b2c3")),
        {"type": "realtime.goodbye", "key": "a1b2c3", "id": "web-1:4242:a1b2c3", "origin": "a1b2c3"},
    ),
    (
        Envelope("d4e5f6", Reply("a1b2c3-7", {"status": 200, "body": b"4hi", "headers": [[b"cache-control", b"no"]]})),
        {
            "type": "realtime.reply",
            "request_id": "a1b2c3-7",
            "body": {"status": 200, "body": b"4hi", "headers": [[b"cache-control", b"no"]]},
            "origin": "d4e5f6",
        },
    ),
    (
        Envelope("d4e5f6", Reply("a1b2c3-8", None)),
        {"type": "realtime.reply", "request_id": "a1b2c3-8", "body": None, "origin": "d4e5f6"},
    ),
    (
        Envelope(
            "a1b2c3", Broadcast("/chat", (), (), (), False, "message", ("hi", {"n": 1}), ('42/chat,["x"]',), None)
        ),
        {
            "type": "realtime.broadcast",
            "ns": "/chat",
            "rooms": [],
            "except_rooms": [],
            "except_ids": [],
            "volatile": False,
            "event": "message",
            "args": ["hi", {"n": 1}],
            "frames": ['42/chat,["x"]'],
            "via": None,
            "compress": True,
            "offset": None,
            "origin": "a1b2c3",
        },
    ),
    (
        Envelope(
            "a1b2c3",
            Broadcast(
                "/chat",
                ("lobby", "vip"),
                ("muted",),
                ("Xy3_sock",),
                True,
                "upload",
                (b"\x01",),
                (BINARY_FRAME, b"\x01"),
                "vip",
                False,
                "a1b2c3-1f",
            ),
        ),
        {
            "type": "realtime.broadcast",
            "ns": "/chat",
            "rooms": ["lobby", "vip"],
            "except_rooms": ["muted"],
            "except_ids": ["Xy3_sock"],
            "volatile": True,
            "event": "upload",
            "args": [b"\x01"],
            "frames": ['51-/chat,["upload",{"_placeholder":true,"num":0}]', b"\x01"],
            "via": "vip",
            "compress": False,
            "offset": "a1b2c3-1f",
            "origin": "a1b2c3",
        },
    ),
    (
        Envelope("a1b2c3", RoomsChanged()),
        {"type": "realtime.rooms_changed", "origin": "a1b2c3"},
    ),
    (
        request(FetchSockets("/", None)),
        {
            "type": "realtime.fetch_sockets",
            "ns": "/",
            "room": None,
            "origin": "a1b2c3",
            "request_id": "a1b2c3-0",
            "reply_to": "a1b2c3",
        },
    ),
    (
        request(FetchSockets("/chat", "lobby")),
        {
            "type": "realtime.fetch_sockets",
            "ns": "/chat",
            "room": "lobby",
            "origin": "a1b2c3",
            "request_id": "a1b2c3-0",
            "reply_to": "a1b2c3",
        },
    ),
    (
        request(SocketsJoin("/chat", "lobby", ("vip", "news"))),
        {
            "type": "realtime.sockets_join",
            "ns": "/chat",
            "room": "lobby",
            "rooms": ["vip", "news"],
            "origin": "a1b2c3",
            "request_id": "a1b2c3-0",
            "reply_to": "a1b2c3",
        },
    ),
    (
        request(SocketsLeave("/", None, ("vip",))),
        {
            "type": "realtime.sockets_leave",
            "ns": "/",
            "room": None,
            "rooms": ["vip"],
            "origin": "a1b2c3",
            "request_id": "a1b2c3-0",
            "reply_to": "a1b2c3",
        },
    ),
    (
        request(DisconnectSockets("/chat", "lobby", True)),
        {
            "type": "realtime.disconnect_sockets",
            "ns": "/chat",
            "room": "lobby",
            "close": True,
            "origin": "a1b2c3",
            "request_id": "a1b2c3-0",
            "reply_to": "a1b2c3",
        },
    ),
    (
        request(BroadcastAck("/chat", ("lobby",), (), ("s1",), "poll", ("which?", b"\x01"), 2.5)),
        {
            "type": "realtime.broadcast_ack",
            "ns": "/chat",
            "rooms": ["lobby"],
            "except_rooms": [],
            "except_ids": ["s1"],
            "event": "poll",
            "args": ["which?", b"\x01"],
            "timeout": 2.5,
            "origin": "a1b2c3",
            "request_id": "a1b2c3-0",
            "reply_to": "a1b2c3",
        },
    ),
    (
        request(FetchRooms("/chat")),
        {"type": "realtime.rooms", "ns": "/chat", "origin": "a1b2c3", "request_id": "a1b2c3-0", "reply_to": "a1b2c3"},
    ),
    (
        request(ServerEvent("reindex", (1, "x", None, [b"\x00"]))),
        {
            "type": "realtime.server_event",
            "event": "reindex",
            "args": [1, "x", None, [b"\x00"]],
            "origin": "a1b2c3",
            "request_id": "a1b2c3-0",
            "reply_to": "a1b2c3",
        },
    ),
    (
        Envelope(
            "a1b2c3",
            CredentialsChanged(("12",), ("7", "3f2b1c"), (("12", "2026-01-01T00:00:00+00:00"), ("13", None))),
        ),
        {
            "type": "realtime.credentials_changed",
            "tokens": ["12"],
            "users": ["7", "3f2b1c"],
            "expiries": {"12": "2026-01-01T00:00:00+00:00", "13": None},
            "origin": "a1b2c3",
        },
    ),
    (
        Envelope("a1b2c3", CredentialsChanged((), (), ())),
        {"type": "realtime.credentials_changed", "tokens": [], "users": [], "expiries": {}, "origin": "a1b2c3"},
    ),
    (
        Envelope("a1b2c3", Poll("/socket.io/", "d4e5f6Q1w2", "POST", b"4hello"), "a1b2c3-3", "a1b2c3"),
        {
            "type": "realtime.poll",
            "path": "/socket.io/",
            "sid": "d4e5f6Q1w2",
            "method": "POST",
            "body": b"4hello",
            "origin": "a1b2c3",
            "request_id": "a1b2c3-3",
            "reply_to": "a1b2c3",
        },
    ),
    (
        Envelope("a1b2c3", PollCancel("a1b2c3-3")),
        {"type": "realtime.poll_cancel", "cancels": "a1b2c3-3", "origin": "a1b2c3"},
    ),
    (
        Envelope("a1b2c3", PollRelease("a1b2c3-3")),
        {"type": "realtime.poll_release", "releases": "a1b2c3-3", "origin": "a1b2c3"},
    ),
    (
        Envelope("a1b2c3", RelayAttach("/socket.io/", "d4e5f6Q1w2", "a1b2c3-5"), "a1b2c3-6", "a1b2c3"),
        {
            "type": "realtime.ws_attach",
            "path": "/socket.io/",
            "sid": "d4e5f6Q1w2",
            "relay_id": "a1b2c3-5",
            "origin": "a1b2c3",
            "request_id": "a1b2c3-6",
            "reply_to": "a1b2c3",
        },
    ),
    (
        Envelope("a1b2c3", RelayIn("a1b2c3-5", '42["x"]')),
        {"type": "realtime.ws_in", "relay_id": "a1b2c3-5", "frame": '42["x"]', "origin": "a1b2c3"},
    ),
    (
        Envelope("a1b2c3", RelayIn("a1b2c3-5", b"\x00\xff")),
        {"type": "realtime.ws_in", "relay_id": "a1b2c3-5", "frame": b"\x00\xff", "origin": "a1b2c3"},
    ),
    (
        Envelope("a1b2c3", RelayGone("a1b2c3-5")),
        {"type": "realtime.ws_gone", "relay_id": "a1b2c3-5", "origin": "a1b2c3"},
    ),
    (
        Envelope("d4e5f6", RelayOut("a1b2c3-5", b"\x01")),
        {"type": "realtime.ws_out", "relay_id": "a1b2c3-5", "frame": b"\x01", "origin": "d4e5f6"},
    ),
    (
        Envelope("d4e5f6", RelayShut("a1b2c3-5", 1011)),
        {"type": "realtime.ws_shut", "relay_id": "a1b2c3-5", "code": 1011, "origin": "d4e5f6"},
    ),
]


@pytest.mark.parametrize(("envelope", "wire"), CASES, ids=[wire["type"] for _, wire in CASES])
def test_messages_are_todays_dicts(envelope, wire):
    assert encode(envelope) == wire  # == on dicts also tells a list from a tuple
    assert decode(wire) == envelope


def test_every_message_type_is_in_the_table():
    assert {wire["type"] for _, wire in CASES} == set(MESSAGE_TYPES)


def test_the_registry_is_built_from_the_classes():
    assert list(MESSAGE_TYPES.values()) == list(MESSAGE_CLASSES)
    # by name: slots=True makes a new class, and the one it replaced may linger among the subclasses
    assert {cls.__qualname__ for cls in Message.__subclasses__()} == {cls.__qualname__ for cls in MESSAGE_CLASSES}
    for type_string, cls in MESSAGE_TYPES.items():
        assert type_string == cls.TYPE and type_string.startswith("realtime.")


@pytest.mark.parametrize(("envelope", "wire"), CASES, ids=[wire["type"] for _, wire in CASES])
def test_messages_are_frozen_value_objects(envelope, wire):
    message = envelope.message
    assert not hasattr(message, "__dict__")  # slots
    for field in dataclasses.fields(message):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, field.name, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        envelope.origin = "x"


def test_envelope_refuses_half_a_request_and_a_reply_that_asks():
    with pytest.raises(ValueError):
        Envelope("a1b2c3", RoomsChanged(), request_id="a1b2c3-0")
    with pytest.raises(ValueError):
        Envelope("a1b2c3", RoomsChanged(), reply_to="a1b2c3")
    with pytest.raises(ValueError):
        Envelope("a1b2c3", Reply("x-1", None), request_id="x-2", reply_to="a1b2c3")


# -- refusals, each naming the type and the field -------------------------------------------------


def wire_of(type_string, where=lambda wire: True):
    return next(wire for _, wire in CASES if wire["type"] == type_string and where(wire))


HEARTBEAT = wire_of("realtime.heartbeat")
BROADCAST = wire_of("realtime.broadcast", lambda wire: wire["rooms"])
NAMESPACE_BROADCAST = wire_of("realtime.broadcast", lambda wire: not wire["rooms"])
FETCH = wire_of("realtime.fetch_sockets")


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (None, "dict"),
        ([("type", "realtime.rooms_changed")], "dict, not list"),
        ("realtime.rooms_changed", "dict, not str"),
        ({}, "unknown .* type NoneType"),
        ({"type": "realtime.nope", "origin": "a1b2c3"}, "unknown .* type 'realtime.nope'"),
        ({"type": ["realtime.broadcast"], "origin": "a1b2c3"}, "unknown .* type list"),  # unhashable
        ({"type": "realtime.rooms_changed"}, "realtime.rooms_changed: 'origin' is missing"),
        ({"type": "realtime.rooms_changed", "origin": 7}, "realtime.rooms_changed: 'origin' must be a str"),
        ({**BROADCAST, "rooms": "lobby"}, "realtime.broadcast: 'rooms' must be a list of str"),
        ({**BROADCAST, "rooms": ("lobby", "vip")}, "realtime.broadcast: 'rooms' must be a list of str"),
        ({**BROADCAST, "except_ids": ["a", 1]}, "realtime.broadcast: 'except_ids' must be a list of str"),
        ({**BROADCAST, "volatile": 1}, "realtime.broadcast: 'volatile' must be a bool"),
        ({**BROADCAST, "frames": [b"x", None]}, "realtime.broadcast: 'frames' must be a list of str or bytes"),
        ({**BROADCAST, "args": "hi"}, "realtime.broadcast: 'args' must be a list"),
        ({**BROADCAST, "via": "news"}, "realtime.broadcast: 'via' must be one of 'rooms'"),
        ({**BROADCAST, "via": None}, "realtime.broadcast: 'via' must be one of 'rooms'"),
        ({**NAMESPACE_BROADCAST, "via": "lobby"}, "realtime.broadcast: 'via' must be None when 'rooms' is empty"),
        ({k: v for k, v in BROADCAST.items() if k != "ns"}, "realtime.broadcast: 'ns' is missing"),
        ({**HEARTBEAT, "info": {**WIRE_INFO, "pid": True}}, "realtime.heartbeat 'info': 'pid' must be an int"),
        (
            {**HEARTBEAT, "info": {**WIRE_INFO, "started": "now"}},
            "realtime.heartbeat 'info': 'started' must be a number",
        ),
        ({**HEARTBEAT, "info": [WIRE_INFO]}, "realtime.heartbeat: 'info' must be a dict"),
        ({**HEARTBEAT, "hello": None}, "realtime.heartbeat: 'hello' must be a bool"),
        ({**wire_of("realtime.ws_shut"), "code": True}, "realtime.ws_shut: 'code' must be an int"),
        ({**wire_of("realtime.ws_shut"), "code": 1011.0}, "realtime.ws_shut: 'code' must be an int"),
        ({**wire_of("realtime.poll"), "body": "4hello"}, "realtime.poll: 'body' must be bytes"),
        (
            {**wire_of("realtime.credentials_changed"), "expiries": {"12": 5}},
            "realtime.credentials_changed: 'expiries' must be a dict of str",
        ),
        (
            {**wire_of("realtime.credentials_changed"), "expiries": {12: None}},
            "realtime.credentials_changed: 'expiries' must be a dict of str",
        ),
        ({**wire_of("realtime.reply"), "reply_to": "a1b2c3"}, "realtime.reply: a reply has no 'reply_to'"),
        ({**FETCH, "reply_to": None}, "realtime.fetch_sockets: a request needs both 'request_id' and 'reply_to'"),
        ({k: v for k, v in FETCH.items() if k != "reply_to"}, "realtime.fetch_sockets: a request needs both"),
        ({k: v for k, v in FETCH.items() if k != "request_id"}, "realtime.fetch_sockets: a request needs both"),
    ],
)
def test_malformed_messages_are_refused_by_name(wire, match):
    with pytest.raises(MalformedMessage, match=match):
        decode(wire)


def test_malformed_is_the_protocol_error():
    assert issubclass(MalformedMessage, ProtocolError)


def test_unknown_keys_are_ignored_so_a_newer_process_may_add_one():
    for envelope, wire in CASES:
        assert decode({**wire, "priority": 1}) == envelope


def test_a_very_long_unknown_type_is_cut_in_the_error():
    with pytest.raises(MalformedMessage) as raised:
        decode({"type": "x" * 10_000, "origin": "a1b2c3"})
    assert len(str(raised.value)) < 200


# -- strategies -------------------------------------------------------------------------------------

# msgpack refuses lone surrogates, and so would Redis: they never reach the layer.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
names = st.lists(text, max_size=4).map(tuple)
frames = st.lists(text | st.binary(max_size=8), max_size=3).map(tuple)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what msgpack carries
    | st.floats(allow_nan=False)  # NaN is not equal to itself
    | text
    | st.binary(max_size=8)
)
user_data = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8
)
args = st.lists(user_data, max_size=3).map(tuple)
rooms = st.none() | text
peer_infos = st.builds(PeerInfo, text, text, text, st.integers(0, 2**31), st.floats(0, 2e9) | st.integers(0, 2**31))


@st.composite
def broadcasts(draw):
    targets = draw(names)
    via = draw(st.sampled_from(targets)) if targets else None
    namespace, except_rooms, except_ids, volatile = draw(text), draw(names), draw(names), draw(st.booleans())
    return Broadcast(namespace, targets, except_rooms, except_ids, volatile, draw(text), draw(args), draw(frames), via)


MESSAGES = {
    Heartbeat: st.builds(Heartbeat, peer_infos, st.booleans(), st.booleans()),
    Goodbye: st.builds(Goodbye, text, text),
    Reply: st.builds(Reply, text, user_data),
    Broadcast: broadcasts(),
    BroadcastAck: st.builds(BroadcastAck, text, names, names, names, text, args, st.floats(0, 3600, allow_nan=False)),
    RoomsChanged: st.builds(RoomsChanged),
    FetchSockets: st.builds(FetchSockets, text, rooms),
    SocketsJoin: st.builds(SocketsJoin, text, rooms, names),
    SocketsLeave: st.builds(SocketsLeave, text, rooms, names),
    DisconnectSockets: st.builds(DisconnectSockets, text, rooms, st.booleans()),
    FetchRooms: st.builds(FetchRooms, text),
    ServerEvent: st.builds(ServerEvent, text, args),
    CredentialsChanged: st.builds(
        CredentialsChanged,
        names,
        names,
        st.dictionaries(text, st.none() | text, max_size=3).map(lambda d: tuple(d.items())),
    ),
    Poll: st.builds(Poll, text, text, st.sampled_from(["GET", "POST"]) | text, st.binary(max_size=16)),
    PollCancel: st.builds(PollCancel, text),
    PollRelease: st.builds(PollRelease, text),
    RelayAttach: st.builds(RelayAttach, text, text, text),
    RelayIn: st.builds(RelayIn, text, text | st.binary(max_size=8)),
    RelayGone: st.builds(RelayGone, text),
    RelayOut: st.builds(RelayOut, text, text | st.binary(max_size=8)),
    RelayShut: st.builds(RelayShut, text, st.integers(0, 4999)),
}


@st.composite
def envelopes(draw, cls):
    message = draw(MESSAGES[cls])
    trace = draw(st.none() | st.just(TRACEPARENT))
    seq = draw(st.none() | st.integers(0, 2**63 - 1))
    if cls is not Reply and draw(st.booleans()):
        return Envelope(draw(text), message, request_id=draw(text), reply_to=draw(text), trace=trace, seq=seq)
    return Envelope(draw(text), message, trace=trace, seq=seq)


def test_every_message_class_has_a_strategy():
    assert set(MESSAGES) == set(MESSAGE_CLASSES)


by_class = pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.TYPE)


# -- round trips ------------------------------------------------------------------------------------


@by_class
@given(data=st.data())
def test_round_trip(cls, data):
    envelope = data.draw(envelopes(cls))
    wire = encode(envelope)
    copy = {**wire}
    assert decode(wire) == envelope
    assert decode(wire).seq == envelope.seq  # not part of equality: a retried message is the same message
    assert wire == copy  # decoding leaves the delivered dict alone


@pytest.mark.skipif(msgpack is None, reason="msgpack (a channels-redis dependency) is not installed")
@by_class
@given(data=st.data())
def test_round_trip_through_msgpack(cls, data):
    """As channels-redis carries it: packb/unpackb with their defaults (bin type on, str as str)."""
    envelope = data.draw(envelopes(cls))
    wire = msgpack.unpackb(msgpack.packb(encode(envelope)))
    assert decode(wire) == envelope
    assert encode(decode(wire)) == wire


# -- garbage ----------------------------------------------------------------------------------------

anything = st.recursive(
    scalars | st.tuples(scalars),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(text, inner, max_size=3)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),
    max_leaves=6,
)
WIRE_KEYS = sorted({key for _, wire in CASES for key in wire} | {"request_id", "reply_to"})


def decoded_or_refused(value):
    """A valid Envelope that re-encodes to itself, or MalformedMessage: never another exception."""
    try:
        envelope = decode(value)
    except MalformedMessage:
        return None
    assert isinstance(envelope, Envelope) and isinstance(envelope.message, Message)
    assert decode(encode(envelope)) == envelope
    return envelope


@given(anything)
def test_any_value_decodes_or_is_malformed(value):
    decoded_or_refused(value)


@given(
    st.sampled_from(sorted(MESSAGE_TYPES)) | anything,
    st.dictionaries(st.sampled_from(WIRE_KEYS) | text, anything | names.map(list) | text, max_size=12),
)
def test_any_dict_of_known_keys_decodes_or_is_malformed(type_string, fields):
    decoded_or_refused({**fields, "type": type_string})


def is_str(value):
    return isinstance(value, str)


def is_bool(value):
    return value is True or value is False


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def list_of(*types):
    return lambda value: isinstance(value, list) and all(isinstance(item, types) for item in value)


def is_expiries(value):
    return isinstance(value, dict) and all(is_str(k) and (v is None or is_str(v)) for k, v in value.items())


# Which values each wire key accepts, written down apart from the module; None: anything (user data).
ACCEPTS = {
    "type": lambda value: is_str(value) and value in MESSAGE_TYPES,
    "origin": is_str,
    "request_id": is_str,
    "reply_to": is_str,
    "info": lambda value: isinstance(value, dict),
    "hello": is_bool,
    "answer": is_bool,
    "seq": lambda value: value is None or (is_int(value) and 0 <= value < 2**63),
    "key": is_str,
    "id": is_str,
    ("realtime.reply", "body"): None,
    "ns": is_str,
    "rooms": list_of(str),
    "except_rooms": list_of(str),
    "except_ids": list_of(str),
    "volatile": is_bool,
    "compress": is_bool,
    "event": is_str,
    "args": list_of(object),
    "frames": list_of(str, bytes),
    "via": lambda value: value is None or is_str(value),
    "offset": lambda value: value is None or is_str(value),
    "room": lambda value: value is None or is_str(value),
    "close": is_bool,
    "tokens": list_of(str),
    "users": list_of(str),
    "expiries": is_expiries,
    "path": is_str,
    "sid": is_str,
    "method": is_str,
    ("realtime.poll", "body"): lambda value: isinstance(value, bytes),
    "cancels": is_str,
    "releases": is_str,
    "relay_id": is_str,
    "frame": lambda value: isinstance(value, (str, bytes)),
    "code": is_int,
    "timeout": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
}
INFO_ACCEPTS = {
    "id": is_str,
    "key": is_str,
    "host": is_str,
    "pid": is_int,
    "started": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
}


def accepts(type_string, key):
    if key == "trace":
        return None  # a hint: an unusable one is dropped, not refused (test_a_trace_context_travels_...)
    return ACCEPTS[(type_string, key)] if (type_string, key) in ACCEPTS else ACCEPTS[key]


@by_class
@given(data=st.data())
def test_a_field_of_the_wrong_type_is_malformed(cls, data):
    wire = encode(data.draw(envelopes(cls)))
    checked = sorted(key for key in wire if accepts(wire["type"], key) is not None)
    key = data.draw(st.sampled_from(checked))
    value = data.draw(anything)
    assume(not accepts(wire["type"], key)(value))
    with pytest.raises(MalformedMessage) as raised:
        decode({**wire, key: value})
    if key != "type":
        assert wire["type"] in str(raised.value)
        assert repr(key) in str(raised.value)


@given(st.sampled_from(sorted(INFO_ACCEPTS)), anything)
def test_a_peer_info_field_of_the_wrong_type_is_malformed(key, value):
    assume(not INFO_ACCEPTS[key](value))
    with pytest.raises(MalformedMessage, match=f"realtime.heartbeat 'info': '{key}'"):
        decode({**HEARTBEAT, "info": {**WIRE_INFO, key: value}})


@by_class
@given(data=st.data())
def test_any_field_replaced_by_anything_decodes_or_is_malformed(cls, data):
    wire = encode(data.draw(envelopes(cls)))
    key = data.draw(st.sampled_from(sorted(wire)))
    decoded_or_refused({**wire, key: data.draw(anything)})


def defaulted_keys(cls):
    """Wire keys of the fields a message may leave out (an older process does not send them), with defaults."""
    return {
        f.metadata.get("wire", f.name): f.default
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING
    }


@by_class
@given(data=st.data())
def test_every_key_without_a_default_is_required(cls, data):
    wire = encode(data.draw(envelopes(cls)))
    key = data.draw(st.sampled_from(sorted(set(wire) - set(defaulted_keys(cls)) - {"trace", "seq"})))
    with pytest.raises(MalformedMessage):
        decode({k: v for k, v in wire.items() if k != key})


@pytest.mark.parametrize("cls", [cls for cls in MESSAGE_CLASSES if defaulted_keys(cls)], ids=lambda cls: cls.TYPE)
@given(data=st.data())
def test_a_key_with_a_default_may_be_missing(cls, data):
    """What a process of the previous release sends during a rolling restart: the newer fields left out."""
    envelope = data.draw(envelopes(cls))
    wire = encode(envelope)
    optional = sorted(set(defaulted_keys(cls)) & set(wire))
    assume(optional)
    left_out = data.draw(st.sets(st.sampled_from(optional), min_size=1))
    decoded = decode({k: v for k, v in wire.items() if k not in left_out})
    by_wire = {f.metadata.get("wire", f.name): f.name for f in dataclasses.fields(cls)}
    expected = dataclasses.replace(envelope.message, **{by_wire[k]: defaulted_keys(cls)[k] for k in left_out})
    assert decoded.message == expected


def test_a_trace_context_travels_in_the_envelope_and_a_bad_one_is_ignored():
    wire = encode(Envelope("a1b2c3", RoomsChanged(), trace=TRACEPARENT))
    assert wire == {"type": "realtime.rooms_changed", "origin": "a1b2c3", "trace": TRACEPARENT}
    assert decode(wire).trace == TRACEPARENT
    for bad in (42, b"00-ab", "x" * 500):
        assert decode({**wire, "trace": bad}) == Envelope("a1b2c3", RoomsChanged())


@pytest.mark.parametrize("key", sorted(WIRE_INFO))
def test_every_peer_info_key_is_required(key):
    with pytest.raises(MalformedMessage, match=f"'{key}' is missing"):
        decode({**HEARTBEAT, "info": {k: v for k, v in WIRE_INFO.items() if k != key}})
