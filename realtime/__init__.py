"""realtime: a Socket.IO server for Django, on Django Channels.

The public API, imported lazily so that listing ``realtime`` in
INSTALLED_APPS loads nothing before Django is ready::

    from realtime import Namespace, ConnectionRefused, io, emit, aemit
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what __getattr__ below returns, as type checkers should see it
    from .broadcast import BroadcastOperator, aemit, emit
    from .exceptions import AckTimeout, ClusterUnavailable, ConnectionRefused, EventRefused, LimitExceeded
    from .namespaces import Namespace, Socket, event, rate_limit
    from .server import io
    from .signals import client_connected, client_disconnected

_EXPORTS = {
    "Namespace": "realtime.namespaces",
    "Socket": "realtime.namespaces",
    "event": "realtime.namespaces",
    "rate_limit": "realtime.namespaces",
    "ConnectionRefused": "realtime.exceptions",
    "EventRefused": "realtime.exceptions",
    "AckTimeout": "realtime.exceptions",
    "LimitExceeded": "realtime.exceptions",
    "ClusterUnavailable": "realtime.exceptions",
    "io": "realtime.server",
    "emit": "realtime.broadcast",
    "aemit": "realtime.broadcast",
    "BroadcastOperator": "realtime.broadcast",
    "client_connected": "realtime.signals",
    "client_disconnected": "realtime.signals",
}

# A literal list (the names of _EXPORTS, sorted): type checkers read it as what the package exports.
__all__ = [
    "AckTimeout",
    "BroadcastOperator",
    "ClusterUnavailable",
    "ConnectionRefused",
    "EventRefused",
    "LimitExceeded",
    "Namespace",
    "Socket",
    "aemit",
    "client_connected",
    "client_disconnected",
    "emit",
    "event",
    "io",
    "rate_limit",
]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
