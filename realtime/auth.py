"""Who is connecting: the Django user behind a Socket.IO CONNECT.

The user is resolved once per namespace connection, not per HTTP request:
wrapping the Engine.IO routes in Channels' AuthMiddlewareStack would cost a
thread hop and a session lookup on every polling request. A request whose
scope already carried ``user`` (set by your own middleware) is trusted as is.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest

from .sessions import ClientRequest


async def user_from_request(request: ClientRequest) -> Any:
    if request.user is not None:
        return request.user
    session_key = _session_key(request.headers.get("cookie"))
    if session_key is None:
        return AnonymousUser()
    return await database_sync_to_async(_load_user)(session_key)


def _session_key(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    morsel = SimpleCookie(cookie_header).get(settings.SESSION_COOKIE_NAME)
    return morsel.value if morsel is not None else None


def _load_user(session_key: str) -> Any:
    """The logged-in user of a Django session, as django.contrib.auth would find it for a request."""
    engine = import_module(settings.SESSION_ENGINE)
    request = HttpRequest()
    request.session = engine.SessionStore(session_key)
    return get_user(request)
