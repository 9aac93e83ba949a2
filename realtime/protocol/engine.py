"""One Engine.IO session (v4, or v3 for Socket.IO v2 clients) as a state machine, free of I/O and clocks.

The adapter feeds it what arrived and the current time (seconds, any
monotonic origin) and carries out the events it returns. Packets to send
wait in ``outbox`` until the adapter flushes them: over the WebSocket at
once, or as the body of the next polling GET.

The two protocol versions differ here only in the heartbeat: in v4 the server
pings and the client answers within ``pingTimeout``; in v3 the client pings,
the server answers, and a client silent (no ping) for ``pingInterval +
pingTimeout`` since its last ping is gone. Framing is ``EngineProtocol``'s.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from .engineio import CLOSE, EIO4, NOOP, EnginePacket, EnginePacketType, EngineProtocol
from .errors import ProtocolError
from .events import Closed, Event, MessageReceived, PollRefused, PollReleased, ProbeAnswered, UpgradeAbandoned, Upgraded


class Transport(enum.Enum):
    POLLING = "polling"
    WEBSOCKET = "websocket"


class State(enum.Enum):
    OPEN = "open"
    PROBING = "probing"  # a WebSocket with our sid is attached, no 2probe yet
    UPGRADING = "upgrading"  # 3probe sent; waiting for the client's 5
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class EngineConfig:
    ping_interval: int = 25_000  # ms, as in the open packet
    ping_timeout: int = 20_000
    max_payload: int = 1_000_000
    upgrade_timeout: int = 10_000
    # What one session may have waiting for a slow client, in bytes and (polling) packets.
    max_buffered_bytes: int = 4 * 1024 * 1024
    max_buffered_packets: int = 1_000


# A GET held during an upgrade is answered with a noop this long after the
# probe (Node's engine.io checks every 100 ms), so that a client which sends
# 5 right behind 2probe has its upgrade finished first and its stray GET
# refused, as the spec's conformance suite expects.
UPGRADE_NOOP_DELAY = 0.05

# Packets per polling response. python-engineio clients refuse a payload of
# more than 16 packets (their max_decode_packets); the rest waits for the
# next GET, which such a client sends at once.
POLL_BATCH = 16


class PollAnswer(enum.Enum):
    """What to do with a polling GET."""

    RESPOND = "respond"  # answer now with the packets returned alongside
    WAIT = "wait"  # hold it until the outbox has something
    REFUSE = "refuse"  # 400 Bad request (code 3)


class EngineConnection:
    """The protocol state of one sid; the adapter owns exactly one per session."""

    __slots__ = (
        "_next_ping_at",
        "_noop_at",
        "_ping_queued",
        "_pong_deadline",
        "_upgrade_deadline",
        "config",
        "outbox",
        "outbox_bytes",
        "poll_waiting",
        "protocol",
        "sid",
        "state",
        "transport",
    )

    def __init__(
        self, sid: str, config: EngineConfig, transport: Transport, now: float, protocol: EngineProtocol = EIO4
    ) -> None:
        self.sid = sid
        self.config = config
        self.transport = transport
        self.protocol = protocol
        self.state = State.OPEN
        self.outbox: list[EnginePacket] = []  # a list: an empty deque costs 600 bytes on every idle client
        self.outbox_bytes = 0
        self._ping_queued = False  # a ping waits in the outbox: the client cannot have answered it yet
        self.poll_waiting = False
        self._next_ping_at = now + config.ping_interval / 1000
        self._pong_deadline: float | None = None
        if protocol.version == 3:
            # the client pings: it must be heard from within interval + timeout; we never ping
            self._next_ping_at = float("inf")
            self._pong_deadline = self._heartbeat_due(now)
        self._upgrade_deadline: float | None = None
        self._noop_at: float | None = None

    # -- handshake -------------------------------------------------------
    def open_packet(self) -> EnginePacket:
        """The handshake; a direct WebSocket has nothing to upgrade to."""
        upgrades = ["websocket"] if self.transport is Transport.POLLING else []
        body: dict[str, object] = {
            "sid": self.sid,
            "upgrades": upgrades,
            "pingInterval": self.config.ping_interval,
            "pingTimeout": self.config.ping_timeout,
        }
        if self.protocol.version == 4:
            body["maxPayload"] = self.config.max_payload  # v3 has no such field
        return EnginePacket(EnginePacketType.OPEN, json.dumps(body, separators=(",", ":")))

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def streaming(self) -> bool:
        """True when packets go straight out over the WebSocket, unbuffered."""
        return self.transport is Transport.WEBSOCKET and self.state is State.OPEN

    # -- inbound on the active transport ---------------------------------
    def receive(self, packet: EnginePacket, now: float) -> list[Event]:
        """A packet from the transport that carries the session."""
        if self.state is State.CLOSED:
            return []
        kind = packet.type
        if kind is EnginePacketType.MESSAGE:
            return [MessageReceived(packet.data)]
        if kind is EnginePacketType.PONG:
            if self.protocol.version == 3:
                return []  # we never ping a v3 client: a pong answers nothing
            if self._pong_deadline is None or self._ping_queued:
                # a pong nobody asked for (or for a ping still buffered) must not keep a client alive
                return []
            self._pong_deadline = None
            self._next_ping_at = now + self.config.ping_interval / 1000
            return []
        if kind is EnginePacketType.CLOSE:
            # spec: a client's close over polling ends a held GET with a noop
            if self.poll_waiting:
                self.queue(NOOP)
            return self.close("transport close")
        if kind is EnginePacketType.PING:
            if self.protocol.version == 3:
                self._pong_deadline = self._heartbeat_due(now)
            self.queue(EnginePacket(EnginePacketType.PONG, packet.data))
            return []
        if kind is EnginePacketType.OPEN:
            raise ProtocolError("client sent an open packet")
        return []  # NOOP and a stray UPGRADE carry nothing

    # -- the upgrade -----------------------------------------------------
    def attach_probe(self, now: float) -> bool:
        """A WebSocket arrived with our sid; False when it must be refused."""
        if self.state is not State.OPEN or self.transport is not Transport.POLLING:
            return False
        self.state = State.PROBING
        self._upgrade_deadline = now + self.config.upgrade_timeout / 1000
        return True

    def receive_probe(self, packet: EnginePacket, now: float) -> list[Event]:
        """A packet on the probe WebSocket: ``2probe`` then ``5``, nothing else counts."""
        if self.state is State.PROBING and packet.type is EnginePacketType.PING and packet.data == "probe":
            self.state = State.UPGRADING
            if self.poll_waiting:
                self._noop_at = now + UPGRADE_NOOP_DELAY
            return [ProbeAnswered(EnginePacket(EnginePacketType.PONG, "probe"))]
        if self.state is State.UPGRADING and packet.type is EnginePacketType.UPGRADE:
            self.state = State.OPEN
            self.transport = Transport.WEBSOCKET
            self._upgrade_deadline = self._noop_at = None
            if self.poll_waiting:
                self.poll_waiting = False
                return [PollRefused(), Upgraded()]
            return [Upgraded()]
        if self.state in (State.PROBING, State.UPGRADING) and packet.type is EnginePacketType.NOOP:
            return []
        raise ProtocolError(f"unexpected {packet.type.name} during upgrade")

    def probe_lost(self) -> None:
        """The probe WebSocket went away before ``5``: carry on polling."""
        if self.state in (State.PROBING, State.UPGRADING):
            self.state = State.OPEN
            self._upgrade_deadline = self._noop_at = None

    # -- polling ---------------------------------------------------------
    def poll(self, now: float) -> tuple[PollAnswer, list[EnginePacket], list[Event]]:
        """A GET arrived: answer it now, hold it, or refuse it."""
        if self.state is State.CLOSED and self.outbox:
            return PollAnswer.RESPOND, self.drain(POLL_BATCH), []  # up to the server's close packet
        if self.transport is Transport.WEBSOCKET or self.state is State.CLOSED:
            return PollAnswer.REFUSE, [], []
        if self.poll_waiting:
            # spec: a second concurrent GET is an error; the held one gets a close
            self.queue(CLOSE)
            return PollAnswer.REFUSE, [], self.close("transport error")
        if self.state is State.UPGRADING:
            # held briefly, then a noop; the buffer is kept for the WebSocket
            self.poll_waiting = True
            self._noop_at = now + UPGRADE_NOOP_DELAY
            return PollAnswer.WAIT, [], []
        if self.outbox:
            return PollAnswer.RESPOND, self.drain(POLL_BATCH), []
        self.poll_waiting = True
        return PollAnswer.WAIT, [], []

    @property
    def poll_flushable(self) -> bool:
        """A held GET may take the buffer now (not while an upgrade is deciding where it goes)."""
        return self.poll_waiting and bool(self.outbox) and self.state is not State.UPGRADING

    def take_poll(self) -> list[EnginePacket]:
        """The held GET is being answered with everything buffered."""
        self.poll_waiting = False
        return self.drain(POLL_BATCH)

    def poll_gone(self) -> None:
        """The held GET went away unanswered (cancelled by the client, or released with a noop)."""
        self.poll_waiting = False

    def queue(self, *packets: EnginePacket) -> bool:
        """Buffer packets for the client; True when the buffer is now over its limits."""
        self.outbox.extend(packets)
        self.outbox_bytes += sum(_size(p) for p in packets)
        return self.overflowing

    @property
    def overflowing(self) -> bool:
        """More is waiting than a client that reads can leave behind (MAX_BUFFERED_BYTES/PACKETS)."""
        config = self.config
        return self.outbox_bytes > config.max_buffered_bytes or len(self.outbox) > config.max_buffered_packets

    def overflow(self) -> list[Event]:
        """The client reads too slowly: drop its backlog and close ("transport error")."""
        self.discard()
        if self.transport is Transport.POLLING:
            self.queue(CLOSE)  # what its next GET collects, as for any close by the server
        return self.close("transport error")

    def discard(self) -> None:
        """Nobody is left to collect the buffer."""
        self.outbox.clear()
        self.outbox_bytes = 0
        self._ping_queued = False

    def drain(self, limit: int | None = None) -> list[EnginePacket]:
        """Take buffered packets, oldest first (at most ``limit``)."""
        if limit is None or len(self.outbox) <= limit:
            packets = list(self.outbox)
            self.outbox.clear()
            self.outbox_bytes = 0
        else:
            packets = self.outbox[:limit]
            del self.outbox[:limit]
            self.outbox_bytes -= sum(_size(p) for p in packets)
        if self._ping_queued and any(p.type is EnginePacketType.PING for p in packets):
            self._ping_queued = False
        return packets

    # -- time ------------------------------------------------------------
    def deadline(self) -> float | None:
        """When ``tick`` next has something to do."""
        if self.state is State.CLOSED:
            return None
        due = self._pong_deadline if self._pong_deadline is not None else self._next_ping_at
        for other in (self._upgrade_deadline, self._noop_at):
            if other is not None:
                due = min(due, other)
        return due

    def tick(self, now: float) -> list[Event]:
        """Send a due ping, or end what has run out of time."""
        if self.state is State.CLOSED:
            return []
        if self._pong_deadline is not None and now >= self._pong_deadline:
            return self.close("ping timeout")
        events: list[Event] = []
        if self._noop_at is not None and now >= self._noop_at:
            self._noop_at = None
            if self.poll_waiting:
                self.poll_waiting = False
                events.append(PollReleased([NOOP]))  # spec: the held GET returns so the client can pause
        if self._upgrade_deadline is not None and now >= self._upgrade_deadline:
            self.probe_lost()
            events.append(UpgradeAbandoned())
        if self._pong_deadline is None and now >= self._next_ping_at:
            # from when the ping was due, not when the timer got to it: the timeout stays sharp
            self._pong_deadline = self._next_ping_at + self.config.ping_timeout / 1000
            self.queue(EnginePacket(EnginePacketType.PING))
            self._ping_queued = True
        return events

    def _heartbeat_due(self, now: float) -> float:
        """v3: when a client that pinged at ``now`` must have pinged again."""
        return now + (self.config.ping_interval + self.config.ping_timeout) / 1000

    # -- closing ---------------------------------------------------------
    def close(self, reason: str) -> list[Event]:
        if self.state is State.CLOSED:
            return []
        self.state = State.CLOSED
        return [Closed(reason)]


def _size(packet: EnginePacket) -> int:
    """What a packet holds in memory, near enough: its text or bytes (a control packet counts one)."""
    return len(packet.data) + 1
