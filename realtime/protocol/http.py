"""Pure checks on an Engine.IO HTTP or WebSocket request, and CORS headers.

The answers are the spec's own: status 400 (403 for Forbidden) with a JSON
body ``{"code": N, "message": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: int
    message: str

    @property
    def body(self) -> bytes:
        return json.dumps({"code": self.code, "message": self.message}, separators=(",", ":")).encode()


TRANSPORT_UNKNOWN = Refusal(400, 0, "Transport unknown")
SESSION_ID_UNKNOWN = Refusal(400, 1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = Refusal(400, 2, "Bad handshake method")
BAD_REQUEST = Refusal(400, 3, "Bad request")
FORBIDDEN = Refusal(403, 4, "Forbidden")
UNSUPPORTED_PROTOCOL_VERSION = Refusal(400, 5, "Unsupported protocol version")
# Limits (REALTIME["MAX_CONNECTIONS"], ...): Engine.IO has no code of its own for them, so they
# carry Forbidden's code with an HTTP status and a message that say what happened.
TOO_MANY_CONNECTIONS = Refusal(503, 4, "Too many connections")
TOO_MANY_HANDSHAKES = Refusal(429, 4, "Too many handshakes")

POLLING_METHODS = frozenset({"GET", "POST"})


@dataclass(frozen=True, slots=True)
class Request:
    """What the checks need from a request, already decoded by the adapter."""

    method: str  # "GET" for a WebSocket handshake
    query: Mapping[str, str]
    origin: str | None = None
    host: str | None = None
    websocket: bool = False


def check_request(request: Request, *, transports: Iterable[str], allowed_origins: Iterable[str]) -> Refusal | None:
    """The refusal a request earns before any session is looked up, or None."""
    transport = request.query.get("transport")
    if transport not in transports:
        return TRANSPORT_UNKNOWN
    if (transport == "websocket") != request.websocket:
        return BAD_REQUEST
    if not origin_allowed(request.origin, request.host, allowed_origins):
        return FORBIDDEN
    if "sid" in request.query:
        if not request.websocket and request.method not in POLLING_METHODS:
            return BAD_REQUEST
        return None
    if request.method != "GET":
        return BAD_HANDSHAKE_METHOD
    if request.query.get("EIO") != "4":
        return UNSUPPORTED_PROTOCOL_VERSION
    return None


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """Same-origin always passes; anything else must be listed (or ``*`` listed)."""
    if origin is None:
        return True  # not a browser cross-origin request: nothing to protect
    allowed = tuple(allowed)
    if "*" in allowed or origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host


def cors_headers(
    origin: str | None, allowed: Iterable[str], *, preflight: bool = False, request_headers: str | None = None
) -> list[tuple[bytes, bytes]]:
    """CORS headers for a request whose origin already passed ``origin_allowed``.

    The origin is reflected rather than answered with ``*`` so that browsers
    may send cookies (``withCredentials``), which Django session auth needs.
    """
    if origin is None:
        return []
    headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]
    if preflight:
        headers.append((b"access-control-allow-methods", b"GET, POST, OPTIONS"))
        if request_headers:
            headers.append((b"access-control-allow-headers", request_headers.encode("latin-1")))
        headers.append((b"access-control-max-age", b"86400"))
    return headers
