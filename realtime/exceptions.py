"""Exceptions a Django developer raises or catches when using realtime."""

from __future__ import annotations

from typing import Any


class ConnectionRefused(Exception):
    """Raise from ``on_connect`` or a connect middleware to refuse a namespace connection.

    The client receives CONNECT_ERROR with ``message`` and, when given,
    ``data`` (``socket.on("connect_error", err => err.message, err.data)``).
    """

    def __init__(self, message: str = "Not authorized", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class EventRefused(Exception):
    """Raise from a packet middleware to drop an incoming event.

    When the client asked for an acknowledgement it receives ``{"error": message}``
    as the ack's single argument, so its callback is not left waiting.
    """

    def __init__(self, message: str = "refused") -> None:
        super().__init__(message)
        self.message = message


class LimitExceeded(EventRefused):
    """A client asked for more than ``REALTIME``'s limits allow (rooms, pending acks, event rate).

    An ``EventRefused``: raised in a handler and not caught, the client's ack
    receives ``{"error": message}``.
    """


class ClusterUnavailable(EventRefused):
    """A broadcast reached this process's sockets but could not be sent to the other processes.

    Raised by ``emit`` after the local delivery when the outbox is full (its
    ``CLUSTER_QUEUE_BYTES``): through an outage shorter than that, broadcasts wait
    in the outbox and are published when the layer is back, and nothing is raised.
    So nobody believes a message arrived that did not. Left uncaught in a handler, it answers the client's ack with
    ``{"error": "cluster unavailable"}``, as every EventRefused does.
    """

    def __init__(self, message: str = "cluster unavailable") -> None:
        super().__init__(message)


class AckTimeout(TimeoutError):
    """The client did not acknowledge an ``emit_with_ack`` within its timeout."""
