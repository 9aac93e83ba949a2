"""realtime: a Socket.IO server for Django, on Django Channels.

The public API, imported lazily so that listing ``realtime`` in
INSTALLED_APPS loads nothing before Django is ready::

    from realtime import Namespace, ConnectionRefused, io, emit, aemit
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
