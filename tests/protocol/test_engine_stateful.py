"""The Engine.IO state machine under arbitrary sequences of inputs, with a fake clock.

test_engine.py pins single scenarios; this drives ``EngineConnection`` the way
``realtime.sessions.Session`` does (same calls, same handling of the events it
returns), in any order hypothesis can think of, and checks after every step
what the spec promises whatever came before:

- nothing but ``ProtocolError`` escapes the core (the adapters catch only that);
- CLOSED is terminal, ``Closed`` is reported once, ``deadline()`` is None iff closed;
- at most one GET is held, a second concurrent one is refused and closes the session;
- once the upgrade completed, no GET is answered (not even with a noop);
- pings go out every ``pingInterval`` after the last pong, never early, and a
  missing pong closes with "ping timeout" exactly at ``pingInterval + pingTimeout``;
- a tick before ``deadline()`` changes nothing (a timer set for the deadline is never late);
- messages the server queues reach the client once each and in order, across
  polling, the upgrade and the WebSocket; until the session closes none is lost.

The model of the adapter is deliberately small: it records what each
transport delivered and whether a GET is held, nothing else.
"""

from __future__ import annotations

import math
import os

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from realtime.protocol.engine import EngineConfig, EngineConnection, PollAnswer, State, Transport
from realtime.protocol.engineio import CLOSE, EnginePacket, EnginePacketType, decode_packet
from realtime.protocol.errors import ProtocolError
from realtime.protocol.events import (
    Closed,
    Event,
    PollRefused,
    PollReleased,
    ProbeAnswered,
    UpgradeAbandoned,
    Upgraded,
)

# What a client can put on either transport: any packet type with short data, binary messages,
# the upgrade's own packets, and raw frames that may not decode at all.
PACKETS = st.one_of(
    st.builds(EnginePacket, st.sampled_from(EnginePacketType), st.text(max_size=4)),
    st.builds(EnginePacket, st.just(EnginePacketType.MESSAGE), st.binary(max_size=4)),
    st.sampled_from(
        [
            EnginePacket(EnginePacketType.PING, "probe"),
            EnginePacket(EnginePacketType.PONG),
            EnginePacket(EnginePacketType.UPGRADE),
            EnginePacket(EnginePacketType.NOOP),
            EnginePacket(EnginePacketType.CLOSE),
        ]
    ),
)
FRAMES = st.one_of(PACKETS, st.text(max_size=6), st.binary(max_size=4))
# What a well-behaved client sends while the session lives: a separate rule, so that sequences are
# not mostly cut short by a close or a parse error before they reach the upgrade.
BENIGN = st.one_of(
    st.builds(EnginePacket, st.just(EnginePacketType.MESSAGE), st.one_of(st.text(max_size=3), st.binary(max_size=3))),
    st.sampled_from(
        [EnginePacket(EnginePacketType.PONG), EnginePacket(EnginePacketType.PING), EnginePacket(EnginePacketType.NOOP)]
    ),
)
CONFIGS = st.builds(
    EngineConfig,
    ping_interval=st.one_of(st.integers(1, 30_000), st.just(25_000)),
    ping_timeout=st.integers(1, 30_000),
    max_payload=st.just(1000),
    upgrade_timeout=st.integers(1, 20_000),
)
DELAYS = st.one_of(st.sampled_from([0.0, 0.001, 0.05, 0.3]), st.floats(0, 1), st.floats(0, 60))


def as_packet(frame: EnginePacket | str | bytes) -> EnginePacket:
    """A raw frame decoded as the WebSocket consumer decodes it (may raise ProtocolError)."""
    return frame if isinstance(frame, EnginePacket) else decode_packet(frame)


class EngineMachine(RuleBasedStateMachine):
    """One sid's EngineConnection and a record of what its client has received on each transport."""

    def __init__(self) -> None:
        super().__init__()
        self.conn: EngineConnection
        self.now = 0.0
        self.held = False  # a polling GET waits for an answer
        self.probe = False  # a probe WebSocket is attached
        self.upgraded = False  # Upgraded was reported: the WebSocket carries the session now
        self.closes: list[str] = []
        self.sent: list[str] = []  # messages the server queued, in order
        self.delivered: list[str] = []  # messages the client got, in the order it got them
        self.next_ping = 0.0  # the spec's schedule: interval after the start or the last pong
        self.pong_due: float | None = None  # interval + timeout after the last pong, once pinged

    # -- set-up -------------------------------------------------------------
    @initialize(config=CONFIGS, transport=st.sampled_from(Transport), start=st.floats(0, 1e5))
    def open(self, config: EngineConfig, transport: Transport, start: float) -> None:
        self.now = start
        self.conn = EngineConnection("sid", config, transport, start)
        self.next_ping = start + config.ping_interval / 1000

    # -- the adapter: what Session does with events and the outbox -------------------
    def apply(self, events: list[Event]) -> None:
        closes = [e for e in events if isinstance(e, Closed)]
        assert len(closes) <= 1 and (not closes or events[-1] is closes[0]), f"Closed not last and once: {events}"
        for event in events:
            if isinstance(event, ProbeAnswered):
                assert self.probe, "a probe answered with no probe WebSocket"
                assert event.packet == EnginePacket(EnginePacketType.PONG, "probe")
            elif isinstance(event, PollReleased):
                assert self.held, "a GET released that nobody holds"
                self.held = False
                self.deliver_poll(event.packets)
            elif isinstance(event, PollRefused):
                assert self.held, "a GET refused that nobody holds"
                self.held = False
            elif isinstance(event, Upgraded):
                assert self.probe, "upgraded without a probe"
                self.probe, self.upgraded = False, True
            elif isinstance(event, UpgradeAbandoned):
                self.probe = False
            elif isinstance(event, Closed):
                self.finish(event.reason)
                return
        self.flush()

    def flush(self) -> None:
        """Session._flush: to the WebSocket when streaming, else to a held GET if it may take it."""
        if self.conn.streaming:
            self.deliver_ws(self.conn.drain())
        elif self.held and self.conn.poll_flushable:
            self.held = False
            self.deliver_poll(self.conn.take_poll())

    def finish(self, reason: str) -> None:
        """Session._finish: a held GET takes what is left, an attached WebSocket gets the rest."""
        self.closes.append(reason)
        if self.held:
            self.held = False
            self.deliver_poll(self.conn.take_poll())
        if self.conn.transport is Transport.WEBSOCKET:
            self.deliver_ws(self.conn.drain())
        elif CLOSE not in self.conn.outbox or self.probe:
            self.conn.outbox.clear()  # nobody is left to collect it; a close packet waits for the next GET
        self.probe = False

    def deliver_poll(self, packets: list[EnginePacket]) -> None:
        assert not self.upgraded, f"a GET answered after the upgrade completed: {packets}"
        self.record(packets)

    def deliver_ws(self, packets: list[EnginePacket]) -> None:
        assert self.conn.transport is Transport.WEBSOCKET
        self.record(packets)

    def record(self, packets: list[EnginePacket]) -> None:
        self.delivered.extend(str(p.data) for p in packets if p.type is EnginePacketType.MESSAGE)

    def tick(self) -> None:
        """The session's timer (or catch_up) at ``now``: check the heartbeat against the spec's schedule."""
        due = self.conn.deadline()
        if due is None or due > self.now:
            return
        was_closed = self.conn.closed
        pings_before = self.conn.outbox.count(EnginePacket(EnginePacketType.PING))
        events = self.conn.tick(self.now)
        timed_out = Closed("ping timeout") in events
        if self.pong_due is not None and self.now >= self.pong_due and not was_closed:
            assert events == [Closed("ping timeout")], f"no ping timeout at {self.now} (due {self.pong_due})"
        else:
            assert not timed_out, f"ping timeout at {self.now}, before {self.pong_due}"
        if not self.conn.closed:
            pinged = self.conn.outbox.count(EnginePacket(EnginePacketType.PING)) - pings_before
            expected = int(self.pong_due is None and self.now >= self.next_ping)
            assert pinged == expected, f"{pinged} pings at {self.now}; next due {self.next_ping}"
            if pinged:
                self.pong_due = self.next_ping + self.conn.config.ping_timeout / 1000
        self.apply(events)

    # -- rules: the client ----------------------------------------------------------
    @rule(frame=FRAMES)
    def client_sends(self, frame: EnginePacket | str | bytes) -> None:
        """A packet on the transport that carries the session (a POST, or the active WebSocket)."""
        try:
            packet = as_packet(frame)
            closed = self.conn.closed
            # a pong counts only for a ping the client can have seen: asked, and no longer in our buffer
            answers = self.pong_due is not None and EnginePacket(EnginePacketType.PING) not in self.conn.outbox
            events = self.conn.receive(packet, self.now)
        except ProtocolError:
            events = self.conn.close("parse error")
        else:
            if packet.type is EnginePacketType.PONG and not closed and answers:
                self.next_ping, self.pong_due = self.now + self.conn.config.ping_interval / 1000, None
        self.apply(events)

    @rule(packet=BENIGN)
    def client_behaves(self, packet: EnginePacket) -> None:
        self.client_sends(packet)

    @rule()
    def client_gets(self) -> None:
        """A polling GET (Session.poll: catch up with the clock first)."""
        self.tick()
        held_before, closed_before = self.held, self.conn.closed
        answer, packets, events = self.conn.poll(self.now)
        if self.upgraded or self.conn.transport is Transport.WEBSOCKET:
            assert answer is PollAnswer.REFUSE, f"a GET after the upgrade got {answer}: {packets}"
        if held_before and not closed_before:
            assert answer is PollAnswer.REFUSE and events == [Closed("transport error")]
            assert CLOSE in self.conn.outbox, "the held GET must get a close packet"
        if answer is PollAnswer.RESPOND:
            assert packets, "an immediate answer with nothing in it"
            self.deliver_poll(packets)
        elif answer is PollAnswer.WAIT:
            assert not closed_before, "a GET held on a closed session"
            self.held = True
        self.apply(events)

    @rule()
    @precondition(lambda self: self.held)
    def client_gives_up_on_get(self) -> None:
        """Session.poll_cancelled: the held GET's connection went away."""
        self.held = False
        self.conn.poll_waiting = False
        self.apply(self.conn.close("transport close"))

    @rule()
    def probe_arrives(self) -> None:
        allowed = self.conn.transport is Transport.POLLING and not self.probe and not self.conn.closed
        accepted = self.conn.attach_probe(self.now)
        assert accepted == allowed, f"probe accepted={accepted}: polling, no other probe and open is {allowed}"
        self.probe = self.probe or accepted

    @rule(frame=FRAMES)
    @precondition(lambda self: self.probe)
    def probe_sends(self, frame: EnginePacket | str | bytes) -> None:
        try:
            events = self.conn.receive_probe(as_packet(frame), self.now)
        except ProtocolError:
            events = self.conn.close("parse error")
        self.apply(events)

    @rule()
    @precondition(lambda self: self.probe)
    def probe_proceeds(self) -> None:
        """The well-behaved client's next upgrade step: ``2probe``, then ``5`` (random frames rarely are)."""
        step = (
            EnginePacket(EnginePacketType.PING, "probe")
            if self.conn.state is State.PROBING
            else EnginePacket(EnginePacketType.UPGRADE)
        )
        self.probe_sends(step)

    @rule(before=st.integers(0, 3), during=st.integers(0, 3), get=st.booleans())
    def client_upgrades(self, before: int, during: int, get: bool) -> None:
        """The whole upgrade in one step, with messages queued before and during it (and maybe a GET)."""
        for _ in range(before):
            self.server_sends("b")
        self.probe_arrives()
        if not self.probe:
            return
        self.probe_proceeds()
        for _ in range(during):
            self.server_sends("d")
        if get and not self.conn.closed:
            self.client_gets()
        if self.probe:
            self.probe_proceeds()

    @rule()
    @precondition(lambda self: self.probe)
    def probe_goes_away(self) -> None:
        self.probe = False
        self.conn.probe_lost()

    @rule()
    @precondition(lambda self: self.conn.transport is Transport.WEBSOCKET and not self.conn.closed)
    def websocket_goes_away(self) -> None:
        self.apply(self.conn.close("transport close"))

    # -- rules: the server --------------------------------------------------------------
    @rule(data=st.text(min_size=1, max_size=3))
    def server_sends(self, data: str) -> None:
        """Session.send_packet: straight out when streaming, else buffered and flushed."""
        if self.conn.closed:
            return
        message = f"{len(self.sent)}:{data}"
        self.sent.append(message)
        packet = EnginePacket(EnginePacketType.MESSAGE, message)
        if self.conn.streaming:
            self.deliver_ws([packet])
            return
        self.conn.outbox.append(packet)
        self.flush()

    @rule()
    def server_closes(self) -> None:
        """Session.close: a close packet for the client, then the state machine's close."""
        if self.conn.closed:
            return
        self.conn.outbox.append(CLOSE)
        self.apply(self.conn.close("forced close"))

    # -- rules: time ---------------------------------------------------------------------
    @rule(delay=DELAYS)
    def time_passes(self, delay: float) -> None:
        """The clock moves; the timer has not run yet (a busy event loop runs timers late)."""
        self.now += delay

    @rule()
    def timer_fires(self) -> None:
        self.tick()

    @rule()
    @precondition(lambda self: not self.conn.closed)
    def timer_fires_at_the_deadline(self) -> None:
        due = self.conn.deadline()
        assert due is not None
        self.now = max(self.now, due)
        self.tick()

    @rule()
    @precondition(lambda self: not self.conn.closed and self.conn.deadline() > self.now)  # type: ignore[operator]
    def tick_just_before_the_deadline(self) -> None:
        """A tick a hair before ``deadline()`` must change nothing: nothing is due yet."""
        due = self.conn.deadline()
        assert due is not None
        self.now = max(self.now, math.nextafter(due, -math.inf))
        outbox, state = list(self.conn.outbox), self.conn.state
        assert self.conn.tick(self.now) == []
        assert self.conn.outbox == outbox and self.conn.state is state

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def closed_is_terminal_and_reported_once(self) -> None:
        assert len(self.closes) <= 1, f"closed twice: {self.closes}"
        assert self.conn.closed == bool(self.closes)
        assert (self.conn.deadline() is None) == self.conn.closed
        if self.conn.closed:
            assert self.conn.state is State.CLOSED and not self.held and not self.conn.poll_waiting

    @invariant()
    def one_held_get_at_most(self) -> None:
        assert self.conn.poll_waiting == self.held

    @invariant()
    def upgraded_means_websocket(self) -> None:
        if self.upgraded:
            assert self.conn.transport is Transport.WEBSOCKET and not self.conn.poll_waiting

    @invariant()
    def heartbeat_is_never_late(self) -> None:
        """deadline() is no later than the spec's next heartbeat step, so the timer fires in time."""
        due = self.conn.deadline()
        if due is not None:
            spec_due = self.pong_due if self.pong_due is not None else self.next_ping
            assert due <= spec_due, f"deadline {due} after the heartbeat's {spec_due}"

    @invariant()
    def messages_arrive_once_in_order(self) -> None:
        assert self.delivered == self.sent[: len(self.delivered)], f"sent {self.sent}, got {self.delivered}"
        if not self.conn.closed:
            buffered = [str(p.data) for p in self.conn.outbox if p.type is EnginePacketType.MESSAGE]
            assert self.delivered + buffered == self.sent, "a queued message vanished before the close"


# About 10 s in the suite; REALTIME_STATEFUL_EXAMPLES=5000 searches longer locally.
EXAMPLES = int(os.environ.get("REALTIME_STATEFUL_EXAMPLES", "300"))
EngineMachine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=50, deadline=None)
TestEngineStateMachine = EngineMachine.TestCase
