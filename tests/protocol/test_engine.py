"""The per-sid state machine, driven by hand with a fake clock."""

import json

import pytest

from realtime.protocol.engine import EngineConfig, EngineConnection, PollAnswer, State, Transport
from realtime.protocol.engineio import EnginePacket, EnginePacketType, decode_packet
from realtime.protocol.errors import ProtocolError
from realtime.protocol.events import (
    Closed,
    MessageReceived,
    PollRefused,
    PollReleased,
    ProbeAnswered,
    UpgradeAbandoned,
    Upgraded,
)

CONFIG = EngineConfig(ping_interval=300, ping_timeout=200, max_payload=1000, upgrade_timeout=1000)
PING = EnginePacket(EnginePacketType.PING)
PONG = EnginePacket(EnginePacketType.PONG)
NOOP = EnginePacket(EnginePacketType.NOOP)
CLOSE = EnginePacket(EnginePacketType.CLOSE)


def polling(now=0.0):
    return EngineConnection("sid1", CONFIG, Transport.POLLING, now)


def test_open_packet_over_polling_offers_websocket():
    packet = polling().open_packet()
    assert packet.type is EnginePacketType.OPEN
    assert json.loads(packet.data) == {
        "sid": "sid1",
        "upgrades": ["websocket"],
        "pingInterval": 300,
        "pingTimeout": 200,
        "maxPayload": 1000,
    }


def test_open_packet_over_websocket_offers_no_upgrade():
    conn = EngineConnection("s", CONFIG, Transport.WEBSOCKET, 0.0)
    assert json.loads(conn.open_packet().data)["upgrades"] == []
    assert conn.streaming


def test_ping_is_due_after_the_interval_and_not_before():
    conn = polling()
    assert conn.deadline() == pytest.approx(0.3)
    assert conn.tick(0.29) == []
    assert list(conn.outbox) == []
    assert conn.tick(0.3) == []
    assert list(conn.outbox) == [PING]


def test_no_pong_closes_at_interval_plus_timeout_sharp():
    conn = polling()
    conn.tick(0.3)
    assert conn.deadline() == pytest.approx(0.5)
    assert conn.tick(0.499) == []
    assert conn.tick(0.5) == [Closed("ping timeout")]
    assert conn.closed
    assert conn.deadline() is None


def test_a_late_timer_does_not_move_the_pong_deadline():
    conn = polling()
    conn.tick(0.37)  # the event loop ran the timer 70 ms late
    assert conn.deadline() == pytest.approx(0.5)  # still interval + timeout after the start
    assert conn.tick(0.5) == [Closed("ping timeout")]


def test_pong_schedules_the_next_ping_from_the_pong():
    conn = polling()
    conn.tick(0.3)
    conn.drain()
    assert conn.receive(PONG, 0.35) == []
    assert conn.deadline() == pytest.approx(0.65)
    assert conn.tick(0.6) == []
    conn.tick(0.65)
    assert list(conn.outbox) == [PING]


def test_message_becomes_an_event():
    conn = polling()
    assert conn.receive(EnginePacket(EnginePacketType.MESSAGE, "hi"), 0.0) == [MessageReceived("hi")]
    assert conn.receive(EnginePacket(EnginePacketType.MESSAGE, b"\x00"), 0.0) == [MessageReceived(b"\x00")]


def test_client_open_packet_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        polling().receive(EnginePacket(EnginePacketType.OPEN, "{}"), 0.0)


def test_poll_waits_then_takes_what_is_buffered():
    conn = polling()
    answer, packets, events = conn.poll(0.0)
    assert (answer, packets, events) == (PollAnswer.WAIT, [], [])
    conn.outbox.append(EnginePacket(EnginePacketType.MESSAGE, "x"))
    assert conn.take_poll() == [EnginePacket(EnginePacketType.MESSAGE, "x")]
    assert not conn.poll_waiting


def test_poll_answers_at_once_when_something_is_buffered():
    conn = polling()
    conn.outbox.append(EnginePacket(EnginePacketType.MESSAGE, "x"))
    assert conn.poll(0.0) == (PollAnswer.RESPOND, [EnginePacket(EnginePacketType.MESSAGE, "x")], [])


def test_second_concurrent_get_closes_the_session_and_the_held_get_gets_close():
    conn = polling()
    conn.poll(0.0)
    answer, _, events = conn.poll(0.0)
    assert answer is PollAnswer.REFUSE
    assert events == [Closed("transport error")]
    assert conn.take_poll() == [CLOSE]


def test_client_close_ends_a_held_get_with_noop():
    conn = polling()
    conn.poll(0.0)
    assert conn.receive(CLOSE, 0.0) == [Closed("transport close")]
    assert conn.take_poll() == [NOOP]


def test_upgrade_probe_then_upgrade_packet():
    conn = polling()
    conn.poll(0.0)
    assert conn.attach_probe(0.0)
    assert conn.state is State.PROBING
    events = conn.receive_probe(EnginePacket(EnginePacketType.PING, "probe"), 0.0)
    assert events == [ProbeAnswered(EnginePacket(EnginePacketType.PONG, "probe"))]
    assert conn.deadline() == pytest.approx(0.05)
    assert conn.tick(0.05) == [PollReleased([NOOP])]  # the held GET returns so the client can pause
    assert conn.poll(0.06) == (PollAnswer.WAIT, [], [])  # any GET during the upgrade is held too ...
    conn.outbox.append(EnginePacket(EnginePacketType.MESSAGE, "kept"))
    assert not conn.poll_flushable  # ... and gets no data, which waits for the WebSocket
    assert conn.tick(0.11) == [PollReleased([NOOP])]
    assert conn.receive_probe(EnginePacket(EnginePacketType.UPGRADE), 0.12) == [Upgraded()]
    assert conn.transport is Transport.WEBSOCKET and conn.streaming
    assert conn.drain() == [EnginePacket(EnginePacketType.MESSAGE, "kept")]
    assert conn.poll(0.0)[0] is PollAnswer.REFUSE


def test_second_probe_and_probe_after_upgrade_are_refused():
    conn = polling()
    assert conn.attach_probe(0.0)
    assert not conn.attach_probe(0.0)
    conn.receive_probe(EnginePacket(EnginePacketType.PING, "probe"), 0.0)
    conn.receive_probe(EnginePacket(EnginePacketType.UPGRADE), 0.0)
    assert not conn.attach_probe(0.0)


def test_upgrade_packet_before_probe_is_a_protocol_error():
    conn = polling()
    conn.attach_probe(0.0)
    with pytest.raises(ProtocolError):
        conn.receive_probe(EnginePacket(EnginePacketType.UPGRADE), 0.0)


def test_probe_that_never_upgrades_is_abandoned_and_polling_goes_on():
    conn = polling()
    conn.attach_probe(0.0)
    conn.receive_probe(EnginePacket(EnginePacketType.PING, "probe"), 0.0)
    conn.receive(PONG, 0.25)  # a pong nobody asked for does not move the next ping
    assert conn.deadline() == pytest.approx(0.3)
    for at in (0.3, 0.6, 0.9):  # keep the heartbeat happy
        assert conn.tick(at) == []
        conn.drain()  # the client got the ping (a pong for a ping still buffered does not count)
        conn.receive(PONG, at)
    assert conn.tick(1.0) == [UpgradeAbandoned()]
    assert conn.state is State.OPEN and conn.transport is Transport.POLLING


def test_lost_probe_returns_to_polling():
    conn = polling()
    conn.attach_probe(0.0)
    conn.probe_lost()
    assert conn.state is State.OPEN
    assert conn.attach_probe(0.1)


def test_closed_session_refuses_polls_but_hands_over_a_pending_close_packet():
    conn = polling()
    conn.outbox.append(CLOSE)
    conn.close("forced close")
    assert conn.poll(0.0) == (PollAnswer.RESPOND, [CLOSE], [])
    assert conn.poll(0.0)[0] is PollAnswer.REFUSE
    assert conn.receive(EnginePacket(EnginePacketType.MESSAGE, "late"), 0.0) == []


def test_close_is_reported_once():
    conn = polling()
    assert conn.close("x") == [Closed("x")]
    assert conn.close("y") == []
    assert conn.tick(10.0) == []


def test_pong_data_echoes_a_client_ping():
    conn = polling()
    conn.receive(EnginePacket(EnginePacketType.PING, "x"), 0.0)
    assert list(conn.outbox) == [decode_packet("3x")]


def test_a_polling_response_carries_at_most_16_packets():
    conn = polling()
    conn.outbox.extend(EnginePacket(EnginePacketType.MESSAGE, str(i)) for i in range(40))
    answer, packets, _ = conn.poll(0.0)
    assert answer is PollAnswer.RESPOND
    assert [p.data for p in packets] == [str(i) for i in range(16)]
    conn.poll(0.0)
    assert [p.data for p in conn.poll(0.0)[1]] == [str(i) for i in range(32, 40)]


def test_get_held_when_the_upgrade_completes_is_refused():
    """The conformance suite sends 2probe and 5 back to back, then GETs: that GET loses."""
    conn = polling()
    conn.attach_probe(0.0)
    conn.receive_probe(EnginePacket(EnginePacketType.PING, "probe"), 0.0)
    assert conn.poll(0.001)[0] is PollAnswer.WAIT
    assert conn.receive_probe(EnginePacket(EnginePacketType.UPGRADE), 0.002) == [PollRefused(), Upgraded()]
    assert not conn.poll_waiting
