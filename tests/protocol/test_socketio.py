"""Socket.IO v5 packet codec: wire strings both ways, binary attachments, decoder state, garbage."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.protocol.errors import ProtocolError
from realtime.protocol.socketio import MAX_ID, Decoder, Packet, PacketType, encode, is_reserved_event

T = PacketType
binary_twin = {T.EVENT: T.BINARY_EVENT, T.ACK: T.BINARY_ACK}
P0 = '{"_placeholder":true,"num":0}'
P1 = '{"_placeholder":true,"num":1}'
P2 = '{"_placeholder":true,"num":2}'


def decode(frames, decoder=None):
    """Feed ``frames`` to a fresh decoder: only the last one may complete the packet."""
    decoder = decoder or Decoder()
    *head, last = frames
    for frame in head:
        assert decoder.feed(frame) is None
        assert decoder.waiting
    packet = decoder.feed(last)
    assert not decoder.waiting
    return packet


@pytest.mark.parametrize(
    ("wire", "packet"),
    [
        ("0", Packet(T.CONNECT)),
        ("0/admin,", Packet(T.CONNECT, "/admin")),
        ('0{"token":"abc"}', Packet(T.CONNECT, data={"token": "abc"})),
        ('0/admin,{"token":"abc"}', Packet(T.CONNECT, "/admin", {"token": "abc"})),
        ('0{"sid":"xyz"}', Packet(T.CONNECT, data={"sid": "xyz"})),
        ("0{}", Packet(T.CONNECT, data={})),
        (
            '4{"message":"Not authorized","data":{"a":1}}',
            Packet(T.CONNECT_ERROR, data={"message": "Not authorized", "data": {"a": 1}}),
        ),
        ('4/nope,{"message":"Invalid namespace"}', Packet(T.CONNECT_ERROR, "/nope", {"message": "Invalid namespace"})),
        ('4"Not authorized"', Packet(T.CONNECT_ERROR, data="Not authorized")),
        ("1", Packet(T.DISCONNECT)),
        ("1/admin,", Packet(T.DISCONNECT, "/admin")),
        ('2["chat","hi",{"a":1}]', Packet(T.EVENT, data=["chat", "hi", {"a": 1}])),
        ('212["chat","hi"]', Packet(T.EVENT, data=["chat", "hi"], id=12)),
        ('20["x"]', Packet(T.EVENT, data=["x"], id=0)),
        ('312["ok"]', Packet(T.ACK, data=["ok"], id=12)),
        ('2/admin,7["x"]', Packet(T.EVENT, "/admin", ["x"], 7)),
        ("3/admin,7[]", Packet(T.ACK, "/admin", [], 7)),
        ('2["m","é😀"]', Packet(T.EVENT, data=["m", "é😀"])),
        (
            '2["x",null,true,false,1.5,-2,{"b":1,"a":[]}]',
            Packet(T.EVENT, data=["x", None, True, False, 1.5, -2, {"b": 1, "a": []}]),
        ),
        (f'2{MAX_ID}["x"]', Packet(T.EVENT, data=["x"], id=MAX_ID)),
        # Without the binary type, a placeholder-shaped object is plain data.
        (f'2["x",{P0}]', Packet(T.EVENT, data=["x", {"_placeholder": True, "num": 0}])),
    ],
)
def test_text_packets(wire, packet):
    assert decode([wire]) == packet
    assert encode(packet) == [wire]


@pytest.mark.parametrize(
    ("frames", "packet"),
    [
        ([f'51-["upload",{P0}]', b"\x01\x02"], Packet(T.EVENT, data=["upload", b"\x01\x02"])),
        (
            [f'52-["message",{P0},{P1}]', b"a", b"\xff"],
            Packet(T.EVENT, data=["message", b"a", b"\xff"]),
        ),
        ([f"62-789[{P0},{P1}]", b"", b"b"], Packet(T.ACK, data=[b"", b"b"], id=789)),
        ([f"62-/admin,789[{P0},{P1}]", b"a", b"b"], Packet(T.ACK, "/admin", [b"a", b"b"], 789)),
        ([f'51-/up,4["f",{{"file":{P0}}}]', b"z"], Packet(T.EVENT, "/up", ["f", {"file": b"z"}], 4)),
    ],
)
def test_binary_packets(frames, packet):
    assert decode(frames) == packet  # EVENT or ACK: BINARY_* stays on the wire, as in Node's parser
    assert encode(packet) == frames
    assert encode(Packet(binary_twin[packet.type], packet.namespace, packet.data, packet.id)) == frames


@pytest.mark.parametrize(
    ("packet", "frames"),
    [
        (Packet(T.EVENT, data=["upload", b"\x01\x02"]), [f'51-["upload",{P0}]', b"\x01\x02"]),
        (Packet(T.ACK, data=[b"a", b"b"], id=789), [f"62-789[{P0},{P1}]", b"a", b"b"]),
        (Packet(T.EVENT, data=["m", bytearray(b"ba"), memoryview(b"mv")]), [f'52-["m",{P0},{P1}]', b"ba", b"mv"]),
        (Packet(T.EVENT, data=("m", b"t")), [f'51-["m",{P0}]', b"t"]),
        # no bytes, no binary type, whatever the packet says: Node refuses "50-"
        (Packet(T.BINARY_EVENT, data=["x"]), ['2["x"]']),
        (Packet(T.BINARY_ACK, "/a", [], 3), ["3/a,3[]"]),
    ],
)
def test_the_binary_type_follows_the_bytes(packet, frames):
    assert encode(packet) == frames
    assert all(type(frame) is bytes for frame in encode(packet)[1:])


def test_nested_attachments_are_numbered_depth_first():
    data = ["deep", {"a": [1, {"b": b"0"}], "c": b"1"}, [[b"2"]], {"d": {"e": [b"3"]}}]
    frames = encode(Packet(T.EVENT, data=data))
    assert frames[:1] == [
        f'54-["deep",{{"a":[1,{{"b":{P0}}}],"c":{P1}}},[[{P2}]],{{"d":{{"e":[{{"_placeholder":true,"num":3}}]}}}}]'
    ]
    assert frames[1:] == [b"0", b"1", b"2", b"3"]
    assert decode(frames) == Packet(T.EVENT, data=data)


def test_the_attachment_cap_can_be_raised():
    data = ["many", *(bytes([n]) for n in range(11))]
    frames = encode(Packet(T.EVENT, data=data))
    assert frames[0].startswith("511-")
    with pytest.raises(ProtocolError):
        Decoder().feed(frames[0])
    assert decode(frames, Decoder(max_attachments=11)) == Packet(T.EVENT, data=data)


def test_attachments_need_not_all_be_used():
    # Node does not check it either.
    assert decode(['51-["x"]', b"unused"]) == Packet(T.EVENT, data=["x"])


def test_attachments_may_be_used_in_any_order_and_more_than_once():
    assert decode([f'52-["x",{P1},{P0},{P1}]', b"a", b"b"]) == Packet(T.EVENT, data=["x", b"b", b"a", b"b"])


def test_namespace_runs_to_the_end_without_a_comma():
    assert decode(["0/custom"]) == Packet(T.CONNECT, "/custom")
    assert decode(["1/custom"]) == Packet(T.DISCONNECT, "/custom")


def test_json_whitespace_and_escapes_are_accepted():
    assert decode(['2 [ "x" , "\\u00e9" ] ']) == Packet(T.EVENT, data=["x", "é"])


def test_huge_json_integers_are_data():
    big = 10**1000
    assert decode([f'2["x",{big}]']) == Packet(T.EVENT, data=["x", big])


# Decoder state


def test_decoder_waits_for_every_attachment():
    decoder = Decoder()
    assert not decoder.waiting
    assert decoder.feed(f'52-["x",{P0},{P1}]') is None
    assert decoder.waiting
    assert decoder.feed(b"a") is None
    assert decoder.waiting
    assert decoder.feed(bytearray(b"b")) == Packet(T.EVENT, data=["x", b"a", b"b"])
    assert not decoder.waiting
    assert decoder.feed('2["next"]') == Packet(T.EVENT, data=["next"])


def test_binary_frame_without_a_binary_packet():
    decoder = Decoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x01")
    assert decoder.feed('2["x"]') == Packet(T.EVENT, data=["x"])
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x01")


def test_text_frame_while_attachments_are_outstanding():
    decoder = Decoder()
    decoder.feed(f'51-["x",{P0}]')
    with pytest.raises(ProtocolError):
        decoder.feed('2["y"]')
    assert not decoder.waiting  # the half-received packet is dropped
    assert decoder.feed('2["y"]') == Packet(T.EVENT, data=["y"])


@pytest.mark.parametrize("frame", [None, 4, ["2"], {"a": 1}])
def test_frames_are_str_or_bytes(frame):
    with pytest.raises(ProtocolError):
        Decoder().feed(frame)


# Validation


@pytest.mark.parametrize(
    "wire",
    [
        # type
        "",
        "7",
        "9",
        "x",
        " 0",
        "\u0660",  # ARABIC-INDIC DIGIT ZERO is not a type digit
        # CONNECT: no payload, or an object
        "0[]",
        '0"x"',
        "01",
        "0null",
        "0/admin,null",
        "0{",
        # DISCONNECT: no payload
        "1{}",
        '1"bye"',
        "1null",
        "17",
        # EVENT: a non-empty array whose first element is the name
        "2",
        "2/admin,",
        "2/admin",
        '2/admin["x"]',  # no comma: the whole rest is the namespace, and there is no payload
        "2[]",
        "2[1]",
        "2[null]",
        '2{"a":1}',
        '2"x"',
        "2null",
        # ACK: an array, and an id
        "3",
        '3["ok"]',
        "312",
        "312{}",
        '312"ok"',
        "3/admin,[]",
        # CONNECT_ERROR: an object or a string
        "4",
        "4[]",
        "41",
        "4null",
        '412"x"',
        # binary: "<count>-" is required
        '5["x"]',
        '5-["x"]',
        '5a-["x"]',
        '5 1-["x"]',
        '5-1-["x"]',
        '51["x"]',
        "6-1[]",
        "61[]",
        '50-["x"]',  # at least one attachment...
        "60-1[]",
        f'511-["x",{P0}]',  # ...and at most ten
        # the payload must be JSON, all of it
        '2["x"',
        '2["x"]x',
        '2["x"][]',
        "2['x']",
        '2["x",NaN]',
        '2["x",Infinity]',
        '2["x",-Infinity]',
        '2["x",1e400]',
        '2["x",-1e400]',
        '2["x",' + "9" * 5000 + "]",  # past Python's 4300-digit int limit
        "2" + "[" * 100_000 + "]" * 100_000,
        '2{"a":' * 100_000,
        # ack ids and counts a JavaScript peer cannot hold
        f'2{MAX_ID + 1}["x"]',
        "2" + "1" * 17 + '["x"]',
        "2" + "1" * 5000 + '["x"]',
        "5" + "1" * 5000 + '-["x"]',
        f'5{MAX_ID + 1}-["x"]',
    ],
)
def test_invalid_text_frames(wire):
    with pytest.raises(ProtocolError):
        Decoder().feed(wire)


@pytest.mark.parametrize(
    "frames",
    [
        ['51-["x",{"_placeholder":true,"num":1}]', b"a"],
        ['51-["x",{"_placeholder":true,"num":-1}]', b"a"],
        ['51-["x",{"_placeholder":true,"num":"0"}]', b"a"],
        ['51-["x",{"_placeholder":true,"num":true}]', b"a"],
        ['51-["x",{"_placeholder":true,"num":0.5}]', b"a"],
        ['51-["x",{"_placeholder":true}]', b"a"],
        [f'52-["x",{P0},{P1},{P2}]', b"a", b"b"],
    ],
)
def test_placeholders_must_name_an_attachment(frames):
    decoder = Decoder()
    *head, last = frames
    for frame in head:
        assert decoder.feed(frame) is None
    with pytest.raises(ProtocolError):
        decoder.feed(last)
    assert not decoder.waiting


@pytest.mark.parametrize("depth", [101, 900, 5000])
def test_nesting_past_max_depth_is_refused_at_once(depth):
    """Deep enough for json.loads (or not), too deep to walk or send back: a clean error, before any attachment."""
    decoder = Decoder()
    with pytest.raises(ProtocolError, match="nested"):
        decoder.feed('51-["x",' + "[" * (depth - 1) + P0 + "]" * (depth - 1) + "]")
    assert not decoder.waiting


def test_nesting_up_to_max_depth_round_trips():
    decoder = Decoder()
    packet = decoder.feed('2["x",' + "[" * 99 + "]" * 99 + "]")
    assert encode(packet) == ['2["x",' + "[" * 99 + "]" * 99 + "]"]
    text = '2["x","\\"' + "[" * 500 + '"]'  # an escaped quote, then brackets inside the string
    assert decoder.feed(text).data == ["x", '"' + "[" * 500]


def test_the_event_name_cannot_be_an_attachment():
    with pytest.raises(ProtocolError):
        Decoder().feed(f"51-[{P0}]")


@pytest.mark.parametrize(
    "packet",
    [
        Packet(T.EVENT, "admin", ["x"]),
        Packet(T.EVENT, "/a,b", ["x"]),
        Packet(T.EVENT, data=["x"], id=-1),
        Packet(T.EVENT, data=["x"], id=MAX_ID + 1),
        Packet(T.EVENT, data=["x", float("nan")]),
        Packet(T.EVENT, data=["x", float("inf")]),
        Packet(T.CONNECT, data={"token": b"abc"}),
        Packet(T.CONNECT_ERROR, data={"data": b"abc"}),
    ],
)
def test_packets_the_decoder_could_not_read_back_are_refused(packet):
    with pytest.raises(ValueError):
        encode(packet)


@pytest.mark.parametrize(
    "name", ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]
)
def test_reserved_events(name):
    assert is_reserved_event(name)


@pytest.mark.parametrize("name", ["message", "chat", "Connect", "newlistener", "", "connect "])
def test_ordinary_events(name):
    assert not is_reserved_event(name)


# Hypothesis


def has_bytes(value):
    if isinstance(value, bytes):
        return True
    if isinstance(value, list):
        return any(has_bytes(item) for item in value)
    if isinstance(value, dict):
        return any(has_bytes(item) for item in value.values())
    return False


# "_placeholder" is the one key the protocol cannot carry as data inside a binary packet.
keys = st.text(max_size=8).filter(lambda key: key != "_placeholder")
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()


def json_values(leaves):
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
        max_leaves=12,
    )


plain = json_values(scalars)
with_bytes = json_values(scalars | st.binary(max_size=16))
namespaces = st.just("/") | st.from_regex(r"/[a-z0-9-]+", fullmatch=True)
ids = st.none() | st.integers(0, 10**9)
event_args = st.builds(lambda name, args: [name, *args], st.text(), st.lists(with_bytes, max_size=4))

packets = st.one_of(
    st.builds(Packet, st.just(T.CONNECT), namespaces, st.none() | st.dictionaries(keys, plain, max_size=4)),
    st.builds(Packet, st.just(T.DISCONNECT), namespaces),
    st.builds(Packet, st.just(T.CONNECT_ERROR), namespaces, st.text() | st.dictionaries(keys, plain, max_size=4)),
    st.builds(Packet, st.sampled_from([T.EVENT, T.BINARY_EVENT]), namespaces, event_args, ids),
    st.builds(
        Packet,
        st.sampled_from([T.ACK, T.BINARY_ACK]),
        namespaces,
        st.lists(with_bytes, max_size=4),
        st.integers(0, 10**9),
    ),
)
text_type = {T.BINARY_EVENT: T.EVENT, T.BINARY_ACK: T.ACK}


@given(packets)
def test_round_trip(packet):
    frames = encode(packet)
    decoded = decode(frames, Decoder(max_attachments=len(frames)))  # the data may hold more than ten bytes values
    assert decoded == Packet(text_type.get(packet.type, packet.type), packet.namespace, packet.data, packet.id)
    assert encode(decoded) == frames


def check_garbage(frames):
    """Any frames give packets, None or ProtocolError; a packet given re-encodes to itself."""
    decoder = Decoder()
    for frame in frames:
        try:
            packet = decoder.feed(frame)
        except ProtocolError:
            continue
        assert decoder.waiting == (packet is None)
        if packet is not None:
            assert isinstance(packet, Packet)
            assert packet.type not in (T.BINARY_EVENT, T.BINARY_ACK)
            assert decode(encode(packet)) == packet


@given(st.text())
def test_random_text(frame):
    check_garbage([frame])


@given(st.binary())
def test_random_bytes(frame):
    with pytest.raises(ProtocolError):
        Decoder().feed(frame)


wire_alphabet = st.sampled_from('0123456789-/,[]{}":.eE+ _ntrufalsNIy\\é😀')
wire_like = st.builds(
    lambda head, rest: head + rest,
    st.sampled_from("0123456") | st.text(max_size=1),
    st.text(wire_alphabet, max_size=40),
)


@given(st.lists(wire_like | st.binary(max_size=4) | st.text(), max_size=8))
def test_random_frame_sequences(frames):
    check_garbage(frames)


@given(packets, st.data())
def test_damaged_packets(packet, data):
    """Valid frames with a slice replaced reach every branch of the decoder, binary ones included."""
    text, *attachments = encode(packet)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    junk = data.draw(st.text(wire_alphabet, max_size=3))
    check_garbage([text[:start] + junk + text[end:], *attachments])
