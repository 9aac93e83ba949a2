"""Calling user code: async handlers on the event loop, sync handlers in Django's thread.

A ``def`` handler runs through ``database_sync_to_async`` so the ORM works
in it, and receives a ``SyncSocket`` whose methods block instead of
returning coroutines; an ``async def`` handler runs on the loop with the
real Socket.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async


@lru_cache(maxsize=4096)
def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a user handler the way its definition asks for."""
    if is_async(fn):
        return await fn(*args)
    return await database_sync_to_async(fn)(*(SyncSocket(a) if _wraps(a) else a for a in args))


def _wraps(value: Any) -> bool:
    """Objects whose class says ``sync_wrapped = True`` (Socket, BroadcastOperator, ...) are wrapped.

    A marker the classes carry, rather than a list of them here: this module
    sits below the Socket.IO layer and imports none of it.
    """
    return getattr(type(value), "sync_wrapped", False) is True


class SyncSocket:
    """A Socket as a sync handler sees it: coroutine methods become blocking calls.

    Broadcast operators it hands out (``socket.to(room)``, ``socket.broadcast``)
    are wrapped the same way, so ``socket.to("room").emit("x")`` works in a
    ``def`` handler just as ``await socket.to("room").emit("x")`` does in an
    ``async def`` one.
    """

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return _sync(getattr(self._target, name))

    def __repr__(self) -> str:
        return f"SyncSocket({self._target!r})"


def _sync(value: Any) -> Any:
    if inspect.iscoroutinefunction(value):
        return async_to_sync(value)
    if _wraps(value):
        return SyncSocket(value)
    if inspect.ismethod(value):

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            return _sync(value(*args, **kwargs))

        return wrapped
    return value
