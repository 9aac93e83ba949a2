"""Who is connecting, and may they: authenticators, namespace requirements, token expiry.

Every Socket.IO CONNECT runs ``REALTIME["AUTHENTICATORS"]`` in order (as DRF
runs its authentication classes): the first that returns a user wins, one that
raises ``ConnectionRefused`` refuses, and when all pass the socket is
anonymous. Then the namespace's requirements (``login_required``,
``permission_required``, ``groups_required``) and the credential's own limits
(a token's namespaces) are checked. Refusals say only ``"invalid token"``,
``"token expired"`` or ``"permission denied"``: nothing about which check failed.

The user is resolved once per namespace connection, not per HTTP request:
wrapping the Engine.IO routes in Channels' AuthMiddlewareStack would cost a
thread hop and a session lookup on every polling request. A request whose
scope already carried ``user`` (set by your own middleware, such as
``AuthMiddlewareStack``) is trusted as is.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from functools import lru_cache
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any, ClassVar, NamedTuple, Protocol

from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.core.signals import setting_changed
from django.http import HttpRequest
from django.utils.module_loading import import_string

from . import tokens
from .conf import realtime_settings
from .exceptions import ConnectionRefused
from .logs import RateLimitedLogger, clip
from .protocol.http import credentials_allowed
from .security import request_site
from .sessions import ClientRequest

logger = logging.getLogger("realtime.auth")
limited = RateLimitedLogger(logger)

INVALID_TOKEN = "invalid token"
TOKEN_EXPIRED = "token expired"
PERMISSION_DENIED = "permission denied"


class Identity(NamedTuple):
    """Who a CONNECT authenticated as, and with what (an AccessToken, or None for a session)."""

    user: Any
    credential: Any = None


def user_key(user: Any) -> Any:
    """Who a socket is, as a value that crosses processes: the user's primary key, None when anonymous."""
    return getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None


# -- authenticators --------------------------------------------------------------------


class BaseAuthentication:
    """Subclass and list in ``REALTIME["AUTHENTICATORS"]``.

    ``authenticate`` returns a user, a ``(user, credential)`` pair, or None to
    let the next authenticator try; it raises ``ConnectionRefused`` when the
    client presented a credential that is wrong. A credential with an
    ``allows_namespace(name)`` method limits the namespaces it opens, and one
    with an ``expires`` datetime is disconnected when it passes.
    """

    async def authenticate(self, request: ClientRequest, auth: dict[str, Any]) -> Any:
        raise NotImplementedError


class SessionAuthentication(BaseAuthentication):
    """The Django session cookie: a browser on the same site is whoever is logged in.

    Only for pages of this site, or of origins listed by name in
    ``CORS_ALLOWED_ORIGINS``: a browser attaches the cookie to a WebSocket (and
    to a credentialed request) whatever page opened it, so a cookie arriving
    with any other ``Origin`` is another site acting as our user (cross-site
    WebSocket hijacking). It is then ignored, whatever the CORS setting ("*"
    included), and the client is anonymous; tokens still work from any site.
    """

    async def authenticate(self, request: ClientRequest, auth: dict[str, Any]) -> Any:
        if not cookies_may_speak(request):
            if request.user is not None or _session_key(request.headers.get("cookie")) is not None:
                limited.warning(
                    "cross-site-cookie",
                    "session cookie ignored: handshake Origin %s is neither this site nor listed in "
                    "CORS_ALLOWED_ORIGINS (client %s)",
                    clip(request.headers.get("origin")),
                    request.address,
                )
            return None
        user = await user_from_request(request)
        return user if user.is_authenticated else None


def cookies_may_speak(request: ClientRequest) -> bool:
    """Whether the handshake's Origin may act with the visitor's cookies (see SessionAuthentication)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET (browsers send Origin on every WebSocket)
    site = request_site(request.raw_headers, "https" if request.secure else "http")
    allowed = realtime_settings()["CORS_ALLOWED_ORIGINS"]
    return credentials_allowed(origin, allowed, scheme=site.scheme, host=site.host)


class TokenAuthentication(BaseAuthentication):
    """An ``AccessToken`` from ``auth.token`` (any Socket.IO client) or ``Authorization: Bearer``.

    Strings that are not realtime tokens (no ``rt_`` start) are left alone, so
    an application may keep its own meaning for ``auth.token``. One query per
    CONNECT: the row by its indexed prefix, with its user.
    """

    keyword = "bearer"

    async def authenticate(self, request: ClientRequest, auth: dict[str, Any]) -> Any:
        raw = self.presented(request, auth)
        if raw is None:
            return None
        parts = tokens.split(raw)
        if parts is None:
            raise ConnectionRefused(INVALID_TOKEN)
        prefix, secret = parts
        token = await database_sync_to_async(_token_by_prefix)(prefix)
        if token is None or not tokens.matches(secret, token.secret_hash):
            raise ConnectionRefused(INVALID_TOKEN)
        # only a holder of the right secret learns more than "invalid"
        if token.revoked or not token.user.is_active:
            raise ConnectionRefused(INVALID_TOKEN)
        if token.is_expired():
            raise ConnectionRefused(TOKEN_EXPIRED)
        return token.user, token

    def presented(self, request: ClientRequest, auth: dict[str, Any]) -> str | None:
        """The realtime token the client sent, if any (the CONNECT auth object first)."""
        candidate = auth.get("token")
        if tokens.is_ours(candidate):
            return candidate
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() == self.keyword and tokens.is_ours(value):
            return value
        return None


def _token_by_prefix(prefix: str) -> Any:
    from .models import AccessToken

    return AccessToken.objects.select_related("user").filter(prefix=prefix).first()


@lru_cache(maxsize=1)
def authenticators() -> tuple[BaseAuthentication, ...]:
    return tuple(import_string(path)() for path in realtime_settings()["AUTHENTICATORS"])


@lru_cache(maxsize=1)
def allow_request_hook() -> Callable[[ClientRequest], Any] | None:
    path = realtime_settings()["ALLOW_REQUEST"]
    return import_string(path) if path else None


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "REALTIME":
        authenticators.cache_clear()
        allow_request_hook.cache_clear()


async def allow_request(request: ClientRequest) -> bool:
    """``REALTIME["ALLOW_REQUEST"]``'s verdict on a handshake (True when none is set).

    Only ``True`` lets the request in, so a hook that forgets to return
    refuses rather than admits; one that raises refuses too (and is logged),
    since a broken gate must not stand open. A plain ``def`` runs in a thread
    through ``database_sync_to_async``: it may use the ORM without stalling
    every other client on the event loop.
    """
    hook = allow_request_hook()
    if hook is None:
        return True
    try:
        if iscoroutinefunction(hook):
            verdict = await hook(request)
        else:
            verdict = await database_sync_to_async(hook)(request)
        if inspect.isawaitable(verdict):  # an object whose __call__ is async
            verdict = await verdict
    except Exception:
        limited.error("allow-request", "ALLOW_REQUEST hook raised; the request is refused", exc_info=True)
        return False
    return verdict is True


setting_changed.connect(_reset)


async def authenticate(request: ClientRequest, auth: dict[str, Any]) -> Identity:
    """Run the authenticators in order; anonymous when none recognises the client."""
    for authenticator in authenticators():
        result = await authenticator.authenticate(request, auth)
        if result is None:
            continue
        if isinstance(result, tuple):
            return Identity(*result)
        return Identity(result)
    return Identity(AnonymousUser())


# -- what a namespace requires ------------------------------------------------------------


class Requirements(Protocol):
    """What a namespace class may require of who connects (``Namespace`` has these attributes)."""

    login_required: ClassVar[bool]
    permission_required: ClassVar[str | Sequence[str]]
    groups_required: ClassVar[Sequence[str]]


async def authorize(nsp: Requirements, namespace: str, user: Any, credential: Any) -> None:
    """Refuse with "permission denied" unless ``user`` and ``credential`` may use ``namespace``."""
    allows = getattr(credential, "allows_namespace", None)
    if allows is not None and not allows(namespace):
        raise ConnectionRefused(PERMISSION_DENIED)
    needs_login = nsp.login_required or nsp.permission_required or nsp.groups_required
    if needs_login and not user.is_authenticated:
        raise ConnectionRefused(PERMISSION_DENIED)
    if (nsp.permission_required or nsp.groups_required) and not await database_sync_to_async(_passes)(nsp, user):
        raise ConnectionRefused(PERMISSION_DENIED)


def _passes(nsp: Requirements, user: Any) -> bool:
    """Permissions (all of them) and groups (any of them): the ORM part of ``authorize``."""
    perms = nsp.permission_required
    perms = (perms,) if isinstance(perms, str) else tuple(perms)
    if perms and not user.has_perms(perms):
        return False
    groups = tuple(nsp.groups_required)
    return not groups or user.groups.filter(name__in=groups).exists()


# -- the Django session ---------------------------------------------------------------------


async def user_from_request(request: ClientRequest) -> Any:
    """The user of the request's Django session cookie (or of the scope), else AnonymousUser."""
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
