"""This process's requests to the others, and the queues their answers land in.

A request names an id unique across the cluster; its answer (a Reply) is put in that id's
queue by the member's receive loop. When an answer cannot come any more (the layer went
away, the peer left or died), every request waiting on it gets a Failure at once instead
of waiting for its timeout.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from .protocol.cluster import Envelope


@dataclass(frozen=True, slots=True)
class Failure:
    """Put in a request's reply queue here, never sent: the answer cannot come (layer down, peer gone)."""

    reason: str


class PeerUnavailable(ConnectionError):
    """A request to another process cannot be answered: the layer is down, or the peer died or left."""


Answers = asyncio.Queue[Envelope | Failure]


class Replies:
    def __init__(self, key: str) -> None:
        self.key = key
        self._ids = itertools.count()
        self._queues: dict[str, Answers] = {}
        self._pending: dict[str, set[str]] = {}  # peer key -> ids of our requests it has to answer

    def new_id(self) -> str:
        """An id unique across the cluster (requests, relays)."""
        return f"{self.key}-{next(self._ids)}"

    def open(self, request_id: str | None = None, peer: str | None = None) -> tuple[str, Answers]:
        """A queue for the answers to a request (to ``peer``, or to everyone when None)."""
        request_id = request_id or self.new_id()
        queue: Answers = asyncio.Queue()
        self._queues[request_id] = queue
        if peer is not None:
            self._pending.setdefault(peer, set()).add(request_id)
        return request_id, queue

    def close(self, request_id: str, peer: str | None = None) -> None:
        self._queues.pop(request_id, None)
        pending = self._pending.get(peer) if peer is not None else None
        if pending is not None:
            pending.discard(request_id)
            if not pending:
                del self._pending[peer]  # type: ignore[arg-type]

    def deliver(self, request_id: str, envelope: Envelope) -> None:
        queue = self._queues.get(request_id)
        if queue is not None:
            queue.put_nowait(envelope)

    def fail(self, reason: str, peer: str | None = None) -> None:
        """Our requests to ``peer`` (to anyone when None) will never be answered: end them now."""
        peers = [peer] if peer is not None else list(self._pending)
        for key in peers:
            for request_id in self._pending.get(key, ()):
                queue = self._queues.get(request_id)
                if queue is not None:
                    queue.put_nowait(Failure(reason))
        if peer is None:  # requests to everyone wait too
            for queue in self._queues.values():
                queue.put_nowait(Failure(reason))
