"""Engine.IO v4 packet and payload codecs: wire strings, round trips, garbage."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.protocol.engineio import (
    EnginePacket,
    EnginePacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)
from realtime.protocol.errors import ProtocolError


@pytest.mark.parametrize(
    ("wire", "packet"),
    [
        ("0{}", EnginePacket(EnginePacketType.OPEN, "{}")),
        ("1", EnginePacket(EnginePacketType.CLOSE)),
        ("2", EnginePacket(EnginePacketType.PING)),
        ("2probe", EnginePacket(EnginePacketType.PING, "probe")),
        ("3probe", EnginePacket(EnginePacketType.PONG, "probe")),
        ("4hello", EnginePacket(EnginePacketType.MESSAGE, "hello")),
        ("4", EnginePacket(EnginePacketType.MESSAGE, "")),
        ("4héllo €😀", EnginePacket(EnginePacketType.MESSAGE, "héllo €😀")),
        ("5", EnginePacket(EnginePacketType.UPGRADE)),
        ("6", EnginePacket(EnginePacketType.NOOP)),
    ],
)
def test_text_packets(wire, packet):
    assert decode_packet(wire) == packet
    assert encode_packet(packet) == wire


def test_binary_frame_is_the_raw_bytes():
    assert decode_packet(b"\x01\x02\x03\x04") == EnginePacket(EnginePacketType.MESSAGE, b"\x01\x02\x03\x04")
    assert encode_packet(EnginePacket(EnginePacketType.MESSAGE, b"\x01\x02")) == b"\x01\x02"


def test_polling_base64_in_mime_lines_as_the_java_client_sends_it():
    """socket.io-client-java 2.x encodes with line breaks every 76 characters and a trailing one."""
    data = bytes(range(256)) * 2
    wrapped = base64.encodebytes(data).decode()  # MIME lines, "\n"-terminated
    assert "\n" in wrapped.rstrip("\n")
    assert decode_payload("b" + wrapped + "\x1e4x") == [
        EnginePacket(EnginePacketType.MESSAGE, data),
        EnginePacket(EnginePacketType.MESSAGE, "x"),
    ]
    assert decode_payload("b" + wrapped.replace("\n", "\r\n")) == [EnginePacket(EnginePacketType.MESSAGE, data)]
    with pytest.raises(ProtocolError):
        decode_payload("bAA E=")  # other whitespace is still malformed


@pytest.mark.parametrize("wire", ["", "7", "x", "abc", "9hello", " 4"])
def test_bad_text_packets(wire):
    with pytest.raises(ProtocolError):
        decode_packet(wire)


@pytest.mark.parametrize(
    ("body", "packets"),
    [
        (b"4hello", [EnginePacket(EnginePacketType.MESSAGE, "hello")]),
        (
            b"4test1\x1e4test2\x1e4test3",
            [EnginePacket(EnginePacketType.MESSAGE, f"test{i}") for i in (1, 2, 3)],
        ),
        (
            b"4hello\x1ebAQIDBA==",
            [
                EnginePacket(EnginePacketType.MESSAGE, "hello"),
                EnginePacket(EnginePacketType.MESSAGE, b"\x01\x02\x03\x04"),
            ],
        ),
        (b"3", [EnginePacket(EnginePacketType.PONG)]),
        (b"1", [EnginePacket(EnginePacketType.CLOSE)]),
    ],
)
def test_payloads(body, packets):
    assert decode_payload(body) == packets
    assert encode_payload(packets).encode() == body


@pytest.mark.parametrize("body", [b"abc", b"", b"4ok\x1e", b"\xff\xfe", b"bAQ=*", b"b\xc3\xa9", b"4a\x1ezz"])
def test_bad_payloads(body):
    with pytest.raises(ProtocolError):
        decode_payload(body)


text_packets = st.builds(
    EnginePacket,
    st.sampled_from(list(EnginePacketType)),
    st.text().filter(lambda s: "\x1e" not in s),
)
binary_packets = st.builds(EnginePacket, st.just(EnginePacketType.MESSAGE), st.binary())
any_packet = st.one_of(text_packets, binary_packets)


@given(any_packet)
def test_packet_round_trip(packet):
    assert decode_packet(encode_packet(packet)) == packet


@given(st.lists(any_packet, min_size=1, max_size=20))
def test_payload_round_trip(packets):
    assert decode_payload(encode_payload(packets).encode("utf-8")) == packets


@given(st.binary())
def test_random_bytes_give_packets_or_protocol_error(body):
    try:
        packets = decode_payload(body)
    except ProtocolError:
        return
    assert all(isinstance(p, EnginePacket) for p in packets)


@given(st.text())
def test_random_text_gives_a_packet_or_protocol_error(frame):
    try:
        packet = decode_packet(frame)
    except ProtocolError:
        return
    assert encode_packet(packet) == frame
