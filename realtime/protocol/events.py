"""What the Engine.IO state machine tells its I/O adapter to do.

Each event is a value: the adapter decides how to carry it out on the
transport it holds (a WebSocket frame, a polling response, a timer).
"""

from __future__ import annotations

from dataclasses import dataclass

from .engineio import EnginePacket


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A MESSAGE packet for the layer above (Socket.IO, or a test echo)."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class ProbeAnswered:
    """The probe WebSocket passed ``2probe``: send it ``packet`` and end any held GET with a noop."""

    packet: EnginePacket


@dataclass(frozen=True, slots=True)
class Upgraded:
    """The client sent ``5``: the WebSocket is now the transport; flush the buffer over it."""


@dataclass(frozen=True, slots=True)
class UpgradeAbandoned:
    """The probe WebSocket did not finish the upgrade in time: close it, keep polling."""


@dataclass(frozen=True, slots=True)
class PollReleased:
    """Answer the held polling GET now with ``packets`` (a noop during an upgrade)."""

    packets: list[EnginePacket]


@dataclass(frozen=True, slots=True)
class PollRefused:
    """The held polling GET lost its transport to an upgrade: answer it 400."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over; ``reason`` is Engine.IO's close reason."""

    reason: str


Event = MessageReceived | ProbeAnswered | Upgraded | UpgradeAbandoned | PollReleased | PollRefused | Closed
