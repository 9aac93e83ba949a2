"""Engine.IO v3 framing (Socket.IO v2 clients): WebSocket frames, text and binary polling payloads."""

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.protocol.engine import EngineConfig, EngineConnection, Transport
from realtime.protocol.engineio import (
    EIO3,
    EIO3_BASE64,
    EIO4,
    EnginePacket,
    EnginePacketType,
    decode_packet_v3,
    decode_payload_v3,
    encode_packet_v3,
    encode_payload_v3,
    protocol_of,
    utf16_length,
)
from realtime.protocol.errors import ProtocolError
from realtime.protocol.events import Closed

T = EnginePacketType


def message(data):
    return EnginePacket(T.MESSAGE, data)


def test_websocket_binary_frames_lead_with_the_type_byte():
    assert encode_packet_v3(message(b"\x01\x02")) == b"\x04\x01\x02"
    assert decode_packet_v3(b"\x04\x01\x02") == message(b"\x01\x02")
    assert decode_packet_v3(b"\x04") == message(b"")
    assert encode_packet_v3(message("hi")) == "4hi"
    assert decode_packet_v3("2probe") == EnginePacket(T.PING, "probe")


@pytest.mark.parametrize("frame", [b"", b"\x01\x02", b"4\x01", b"\x00"])
def test_websocket_binary_frames_of_another_type_are_refused(frame):
    with pytest.raises(ProtocolError):
        decode_packet_v3(frame)


def test_text_payload_lengths_count_utf16_code_units():
    """JavaScript's String.length: é is one unit, 😀 (outside the BMP) two."""
    packets = [message("hello"), message("0"), message("é😀x"), EnginePacket(T.PING)]
    body = encode_payload_v3(packets, binary=False)
    assert body == "6:4hello2:405:4é😀x1:2".encode()
    assert decode_payload_v3(body) == packets
    assert decode_payload_v3(b"6:4hello2:40") == [message("hello"), message("0")]
    assert utf16_length("é😀x") == 4 and utf16_length("abc") == 3


def test_binary_in_a_text_payload_is_b4_and_base64():
    body = encode_payload_v3([message(b"\x01\x02"), message("x")], binary=False)
    assert body == b"6:b4AQI=2:4x"
    assert decode_payload_v3(body) == [message(b"\x01\x02"), message("x")]


def test_binary_payload_form():
    """Per record: 0 (text) or 1 (binary), the length one byte per decimal digit, 255, the packet."""
    packets = [message("é"), message(b"\xff" * 10)]
    body = encode_payload_v3(packets, binary=True)
    assert body == b"\x00\x03\xff4\xc3\xa9" + b"\x01\x01\x01\xff\x04" + b"\xff" * 10
    assert decode_payload_v3(body) == packets
    # without binary in it, even a binary-capable client gets the text form
    assert encode_payload_v3([message("x")], binary=True) == b"2:4x"


def test_protocols_frame_as_their_version_says():
    assert protocol_of({"EIO": "4"}) is EIO4
    assert protocol_of({"EIO": "3"}) is EIO3
    assert protocol_of({"EIO": "3", "b64": "1"}) is EIO3_BASE64
    assert protocol_of({"EIO": "3", "b64": "0"}) is EIO3
    packets = [message(b"\x01")]
    assert EIO3.encode_payload(packets) == (b"\x01\x02\xff\x04\x01", True)
    assert EIO3_BASE64.encode_payload(packets) == (b"6:b4AQ==", False)
    assert EIO4.encode_payload(packets) == (b"bAQ==", False)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"4hello",  # no length
        b"7:4hello",  # runs past the end
        b"x:4",
        b"\xd9\xa3:4x",  # an Arabic-Indic digit is not a length
        b"99999999999:4",
        b"2:4x3",  # trailing junk
        b"2:b5AA",  # base64 of another type
        b"4:b4!!",
        b"1:9",
        b"\x00\xff4",  # binary form without a length
        b"\x00\x0a\xff4",  # a "digit" over 9
        b"\x01\x05\xff\x04\x01",  # runs past the end
        b"\x01\x02\xff\x05\x01",  # binary record of another type
        b"\x00\x02\xff4\xff",  # not UTF-8
        b"\x02\x01\xff4",
        b"\xff\xfe",
    ],
)
def test_malformed_payloads_are_protocol_errors(body):
    with pytest.raises(ProtocolError):
        decode_payload_v3(body)


packet_data = st.one_of(st.text(st.characters(exclude_categories=("Cs",))), st.binary())


@given(st.lists(packet_data, min_size=1, max_size=8), st.booleans())
def test_payloads_round_trip(datas, binary):
    packets = [message(d) for d in datas]
    assert decode_payload_v3(encode_payload_v3(packets, binary)) == packets


@given(st.binary(max_size=64))
def test_garbage_gives_a_protocol_error_or_packets(body):
    try:
        packets = decode_payload_v3(body)
    except ProtocolError:
        return
    assert packets and all(isinstance(p, EnginePacket) for p in packets)


@given(st.text(max_size=64))
def test_text_garbage_gives_a_protocol_error_or_packets(text):
    with contextlib.suppress(ProtocolError):
        decode_payload_v3(text.encode("utf-8", "surrogatepass"))


# -- the state machine with the v3 seam: the client pings ------------------------------------------

CONFIG = EngineConfig(ping_interval=300, ping_timeout=200, max_payload=1000, upgrade_timeout=1000)


def v3(now=0.0):
    return EngineConnection("sid1", CONFIG, Transport.POLLING, now, EIO3)


def test_v3_open_packet_has_no_max_payload():
    assert json.loads(v3().open_packet().data) == {
        "sid": "sid1",
        "upgrades": ["websocket"],
        "pingInterval": 300,
        "pingTimeout": 200,
    }


def test_v3_server_never_pings_and_answers_the_clients_pings():
    conn = v3()
    for now in (0.1, 0.3, 0.45):
        assert conn.tick(now) == []
    assert conn.outbox == []
    conn.receive(EnginePacket(T.PING), 0.45)
    assert conn.outbox == [EnginePacket(T.PONG)]
    conn.receive(EnginePacket(T.PING, "probe"), 0.46)
    assert conn.outbox[-1] == EnginePacket(T.PONG, "probe")


def test_v3_silence_after_the_last_ping_times_out_after_interval_plus_timeout():
    conn = v3()
    assert conn.deadline() == pytest.approx(0.5)
    conn.receive(EnginePacket(T.PING), 0.4)
    assert conn.deadline() == pytest.approx(0.9)
    assert conn.tick(0.89) == []
    conn.receive(message("not a ping"), 0.85)
    assert conn.tick(0.9) == [Closed("ping timeout")]


def test_v3_pongs_keep_nobody_alive():
    conn = v3()
    conn.receive(EnginePacket(T.PONG), 0.3)
    assert conn.tick(0.5) == [Closed("ping timeout")]
