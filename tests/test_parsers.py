"""The msgpack parser against the bytes npm's socket.io-msgpack-parser (notepack.io 2.2) writes, and hypothesis.

The hex strings were printed by notepack.io's own ``encode`` for the packet objects socket.io-client
4.8 builds (its EVENT packets carry an ``options`` key, its CONNECT without auth ``data: undefined``).
"""

import datetime as dt

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.parsers import JSON, MSGPACK, parser_named
from realtime.protocol.errors import ProtocolError
from realtime.protocol.socketio import Packet
from realtime.protocol.socketio import PacketType as T

NOTEPACK = {
    "83a47479706500a464617461d40000a36e7370a12f": Packet(T.CONNECT, "/"),
    "83a47479706500a46461746181a5746f6b656ea174a36e7370a52f63686174": Packet(T.CONNECT, "/chat", {"token": "t"}),
    "85a47479706502a46461746194a2686901c3c0a76f7074696f6e7381a8636f6d7072657373c3a36e7370a12fa2696407": Packet(
        T.EVENT, "/", ["hi", 1, True, None], 7
    ),
    "83a47479706502a46461746192a362696ec403010203a36e7370a12f": Packet(T.EVENT, "/", ["bin", b"\x01\x02\x03"]),
    # a browser's ArrayBuffer: ext type 0 in an ext 8 container, of 3, 1 and 8 bytes
    "83a47479706502a46461746192a26162c70300010203a36e7370a12f": Packet(T.EVENT, "/", ["ab", b"\x01\x02\x03"]),
    "83a47479706502a46461746192a3616231c7010000a36e7370a12f": Packet(T.EVENT, "/", ["ab1", b"\x00"]),
    "83a47479706502a46461746192a3616238c708000102030405060708a36e7370a12f": Packet(
        T.EVENT, "/", ["ab8", bytes(range(1, 9))]
    ),
    # a Date (fixext 8 type 0), and undefined (fixext 1 type 0) in an array and in an object
    "83a47479706502a46461746192a464617465d7000000018bcfe5687ba36e7370a12f": Packet(
        T.EVENT, "/", ["date", dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)]
    ),
    "83a47479706502a46461746193a175d4000082a161d40000a16201a36e7370a12f": Packet(T.EVENT, "/", ["u", None, {"b": 1}]),
    "84a47479706503a46461746191a26f6ba2696403a36e7370a12f": Packet(T.ACK, "/", ["ok"], 3),
    "83a47479706502a46461746194a166cb3ff8000000000000fdcf0000010000000000a36e7370a12f": Packet(
        T.EVENT, "/", ["f", 1.5, -3, 2**40]
    ),
}


@pytest.mark.parametrize(("wire", "packet"), NOTEPACK.items())
def test_what_the_npm_parser_writes(wire, packet):
    assert MSGPACK.decoder(max_attachments=10, max_bytes=None).feed(bytes.fromhex(wire)) == packet


def unpack(frame):
    return msgpack.unpackb(frame, raw=False, ext_hook=lambda code, data: (code, data))


def test_a_packet_is_one_binary_map_with_binary_inline():
    frames = MSGPACK.encode(Packet(T.BINARY_EVENT, "/chat", ["file", b"\x00\xff", {"n": [b"x"]}], 12))
    assert len(frames) == 1 and isinstance(frames[0], bytes)
    assert unpack(frames[0]) == {"type": 2, "nsp": "/chat", "data": ["file", b"\x00\xff", {"n": [b"x"]}], "id": 12}


def test_absent_data_and_id_are_left_out():
    assert unpack(MSGPACK.encode(Packet(T.DISCONNECT, "/a"))[0]) == {"type": 1, "nsp": "/a"}
    assert unpack(MSGPACK.encode(Packet(T.BINARY_ACK, "/", [b"1"], 0))[0]) == {
        "type": 3,
        "nsp": "/",
        "data": [b"1"],
        "id": 0,
    }


def test_a_datetime_goes_out_as_notepacks_date():
    frame = MSGPACK.encode(Packet(T.EVENT, "/", ["date", dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)]))
    assert frame[0].hex() == "83a47479706502a36e7370a12fa46461746192a464617465d7000000018bcfe5687b"


def test_lone_surrogates_come_back_as_they_came():
    decoded = MSGPACK.decoder(max_attachments=10, max_bytes=None).feed(
        bytes.fromhex("83a47479706502a36e7370a12fa46461746192a173a3eda080")
    )
    assert decoded == Packet(T.EVENT, "/", ["s", "\ud800"])
    assert MSGPACK.encode(decoded)[0].hex() == "83a47479706502a36e7370a12fa46461746192a173a3eda080"


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"type": 5, "nsp": "/", "data": ["x"]},  # no BINARY_* packets in msgpack
        {"type": "2", "nsp": "/", "data": ["x"]},
        {"type": 2, "data": ["x"]},
        {"type": 2, "nsp": "chat", "data": ["x"]},
        {"type": 2, "nsp": "/", "data": "x"},
        {"type": 2, "nsp": "/", "data": [1]},
        {"type": 2, "nsp": "/"},
        {"type": 3, "nsp": "/", "data": []},
        {"type": 2, "nsp": "/", "data": ["x"], "id": -1},
        {"type": 2, "nsp": "/", "data": ["x"], "id": 2**53},
        {"type": 2, "nsp": "/", "data": ["x"], "id": 1.0},
        {"type": 1, "nsp": "/", "data": ["x"]},
        {"type": 0, "nsp": "/", "data": "token"},
        {"type": 2, "nsp": "/", "data": ["x", msgpack.ExtType(5, b"ab")]},
        {"type": 2, "nsp": "/", "data": ["x", msgpack.ExtType(0, b"\x01")], "pad": msgpack.ExtType(0, b"ab")},
    ],
)
def test_packets_no_client_sends_are_refused(body):
    with pytest.raises(ProtocolError):
        MSGPACK.decoder(max_attachments=10, max_bytes=None).feed(msgpack.packb(body, use_bin_type=True))


@pytest.mark.parametrize(
    "frame",
    [
        '2["text"]',  # text messages belong to the JSON parser
        b"",
        b"\xc1",
        b"\x83\xa4type",  # cut short
        msgpack.packb({"type": 2, "nsp": "/", "data": ["x"]}) + b"\x00",  # bytes after the packet
        bytes.fromhex("83a47479706502a36e7370a12fa46461746192a175d40100"),  # fixext 1 of another type
        bytes.fromhex("83a47479706502a36e7370a12fa46461746192a175d700") + b"\x7f" * 8,  # a date past year 9999
        bytes.fromhex("dd7fffffff"),  # an array of two thousand million elements, and no elements
        b"\x91" * 100_000 + b"\xc0",  # nesting
    ],
)
def test_garbage_is_a_protocol_error(frame):
    with pytest.raises(ProtocolError):
        MSGPACK.decoder(max_attachments=10, max_bytes=None).feed(frame)


def test_deep_nesting_on_the_slow_path_is_refused():
    frame = msgpack.packb({"type": 2, "nsp": "/", "data": ["x"]})[:-1]
    nested = b"\x91" * 600 + b"\xd4\x00\x00"
    with pytest.raises(ProtocolError):
        MSGPACK.decoder(max_attachments=10, max_bytes=None).feed(frame + b"\x92\xa1x" + nested)


def test_values_msgpack_cannot_carry_are_the_callers_bug():
    with pytest.raises(ValueError, match="msgpack"):
        MSGPACK.encode(Packet(T.EVENT, "/", ["x", {1, 2}]))
    with pytest.raises(ValueError, match="msgpack"):
        MSGPACK.encode(Packet(T.EVENT, "/", ["x", 2**64]))


def test_parser_names():
    assert parser_named("json") is JSON and parser_named("msgpack") is MSGPACK
    with pytest.raises(ValueError, match="choose one of"):
        parser_named("protobuf")


# Hypothesis

keys = st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=16)
    | st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
namespaces = st.just("/") | st.from_regex(r"/[a-z0-9-]+", fullmatch=True)
event_args = st.builds(lambda name, args: [name, *args], st.text(), st.lists(values, max_size=4))
packets = st.one_of(
    st.builds(Packet, st.just(T.CONNECT), namespaces, st.none() | st.dictionaries(keys, values, max_size=4)),
    st.builds(Packet, st.just(T.DISCONNECT), namespaces),
    st.builds(Packet, st.just(T.CONNECT_ERROR), namespaces, st.text() | st.dictionaries(keys, values, max_size=4)),
    st.builds(Packet, st.just(T.EVENT), namespaces, event_args, st.none() | st.integers(0, 2**53 - 1)),
    st.builds(Packet, st.just(T.ACK), namespaces, st.lists(values, max_size=4), st.integers(0, 2**53 - 1)),
)


@given(packets)
def test_round_trip(packet):
    (frame,) = MSGPACK.encode(packet)
    decoded = MSGPACK.decoder(max_attachments=10, max_bytes=None).feed(frame)
    assert decoded == packet
    assert MSGPACK.encode(decoded) == [frame]


def check_garbage(frame):
    try:
        packet = MSGPACK.decoder(max_attachments=10, max_bytes=None).feed(frame)
    except ProtocolError:
        return
    assert isinstance(packet, Packet)
    assert MSGPACK.decoder(max_attachments=10, max_bytes=None).feed(MSGPACK.encode(packet)[0]) == packet


@given(st.binary())
def test_random_bytes(frame):
    check_garbage(frame)


@given(packets, st.data())
def test_damaged_packets(packet, data):
    """Valid packets with a slice replaced reach the slow path, the checks and msgpack's own errors."""
    (frame,) = MSGPACK.encode(packet)
    start = data.draw(st.integers(0, len(frame)))
    end = data.draw(st.integers(start, len(frame)))
    junk = data.draw(st.binary(max_size=3) | st.sampled_from([b"\xd4\x00\x00", b"\xd7\x00", b"\xc7\x01\x00", b"\xdd"]))
    check_garbage(frame[:start] + junk + frame[end:])
