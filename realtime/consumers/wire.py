"""The ASGI server's socket behind a WebSocket: how much it still holds unsent, and how to drop it.

ASGI gives an application no backpressure: ``websocket.send`` returns at once
on daphne and on uvicorn, and the server buffers whatever the client does not
read, without bound. To cap what a slow reader can make the process hold, the
WebSocket consumer asks the server's own transport how many bytes are still
waiting, and aborts the TCP connection (dropping those bytes) when the cap is
passed. Both servers hand the application a ``send`` that leads to the
protocol object owning the transport: daphne a ``functools.partial`` of
``Server.handle_reply`` bound to the protocol, uvicorn the protocol's bound
``asgi_send``. Middleware that wraps ``send`` in a partial is looked through;
anything else leaves the transport unknown, and only what this process
buffers itself is counted.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

# How far through wrapped ``send`` callables the search goes.
_DEPTH = 4


class Wire:
    """One connection's transport, twisted's or asyncio's, and the server protocol that owns it."""

    __slots__ = ("_transport", "_twisted", "_writable")

    def __init__(self, transport: Any, owner: Any = None) -> None:
        self._transport = transport
        self._twisted = hasattr(transport, "_tempDataLen")
        # uvicorn's WebSocket protocols make ``send`` wait on this event while the transport is
        # paused for writing: a send then blocks until the client reads
        writable = getattr(owner, "writable", None)
        self._writable = writable if isinstance(writable, asyncio.Event) else None

    def paused(self) -> bool:
        """True when a ``websocket.send`` now would wait for the client to read."""
        return self._writable is not None and not self._writable.is_set()

    def buffered(self) -> int:
        """Bytes written by the application that the kernel has not taken yet."""
        transport = self._transport
        try:
            if self._twisted:
                # twisted.internet.abstract.FileDescriptor keeps a written buffer and a list still to join
                return len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # type: ignore[no-any-return]
            return transport.get_write_buffer_size()  # type: ignore[no-any-return]
        except Exception:  # a transport of another kind, or one already torn down
            return 0

    def abort(self) -> None:
        """Close the TCP connection now, discarding what is buffered (a clean close would wait for it)."""
        transport = self._transport
        try:
            if self._twisted:
                transport.abortConnection()
            else:
                transport.abort()
        except Exception:  # already gone
            pass


def wire_of(send: Any) -> Wire | None:
    """The transport behind an ASGI ``send`` callable, when the server is one we know."""
    owner = _find_owner(send, _DEPTH)
    return Wire(owner.transport, owner) if owner is not None else None


def _find_owner(value: Any, depth: int) -> Any:
    """The protocol object with the transport, behind ``send``."""
    if depth <= 0 or value is None:
        return None
    owner = getattr(value, "__self__", None)
    if _is_transport(getattr(owner, "transport", None)):
        return owner
    if isinstance(value, functools.partial):
        for arg in value.args:
            if _is_transport(getattr(arg, "transport", None)):
                return arg
        for candidate in (value.func, *value.args):
            if callable(candidate):
                found = _find_owner(candidate, depth - 1)
                if found is not None:
                    return found
    return None


def _is_transport(value: Any) -> bool:
    return value is not None and (hasattr(value, "get_write_buffer_size") or hasattr(value, "_tempDataLen"))
