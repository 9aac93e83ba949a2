"""Pure checks on an Engine.IO HTTP or WebSocket request, and CORS headers.

The answers are the spec's own: status 400 (403 for Forbidden) with a JSON
body ``{"code": N, "message": "..."}``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
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
# An Engine.IO v3 client (Socket.IO v2) while REALTIME["ALLOW_EIO3"] is off: the spec's code, and a
# message that tells whoever reads it (in the client's error, or the log) what turns it on.
EIO3_NOT_ALLOWED = Refusal(
    400, 5, 'Unsupported protocol version: Engine.IO v3 (Socket.IO v2 clients) needs REALTIME["ALLOW_EIO3"] = True'
)
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
    host: str | None = None  # as Django's request.get_host() reads it (Host, or X-Forwarded-Host when trusted)
    websocket: bool = False
    scheme: str = "http"  # "http" or "https", as Django's request.scheme says (a WebSocket's wss is "https")


def check_request(
    request: Request, *, transports: Iterable[str], allowed_origins: Iterable[str], allow_eio3: bool = False
) -> Refusal | None:
    """The refusal a request earns before any session is looked up, or None."""
    transport = request.query.get("transport")
    if transport is None or transport not in transports:
        return TRANSPORT_UNKNOWN
    if (transport == "websocket") != request.websocket:
        return BAD_REQUEST
    if not origin_allowed(request.origin, allowed_origins, scheme=request.scheme, host=request.host):
        return FORBIDDEN
    if "sid" in request.query:
        if not request.websocket and request.method not in POLLING_METHODS:
            return BAD_REQUEST
        return None
    if request.method != "GET":
        return BAD_HANDSHAKE_METHOD
    version = request.query.get("EIO")
    if version == "3":
        return None if allow_eio3 else EIO3_NOT_ALLOWED
    if version != "4":
        return UNSUPPORTED_PROTOCOL_VERSION
    return None


# -- origins -------------------------------------------------------------------------------------
# An origin is (scheme, host, port) (RFC 6454): https://h and http://h are two sites, and
# http://h and http://h:80 are one. Both sides are compared in that form, never as strings.

DEFAULT_PORTS = {"http": 80, "https": 443}
Site = tuple[str, str, int]


@lru_cache(maxsize=1024)  # a handful of origins and hosts, seen again on every polling request
def site_of_origin(origin: str) -> Site | None:
    """An ``Origin`` header (or a configured origin) as a comparable triple; None for ``null`` and junk."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:  # a bad port, or an unbalanced IPv6 bracket
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None  # browsers never send userinfo; accepting it would let "http://h@evil" pass as h
    if parts.path or parts.query or parts.fragment:
        return None
    return parts.scheme, parts.hostname, port if port is not None else DEFAULT_PORTS[parts.scheme]


def site_of_request(scheme: str, host: str | None) -> Site | None:
    """The site a request was made to: its scheme and its (already validated) host."""
    if host is None or scheme not in DEFAULT_PORTS:
        return None
    return site_of_origin(f"{scheme}://{host}")


def same_origin(origin: str, *, scheme: str, host: str | None) -> bool:
    """Whether a page at ``origin`` made this request to its own site (scheme, host and port all equal)."""
    site = site_of_origin(origin)
    return site is not None and site == site_of_request(scheme, host)


def listed(origin: str, allowed: Iterable[str]) -> bool:
    """Whether ``origin`` is named in ``allowed`` (``*`` names nobody)."""
    site = site_of_origin(origin)
    return site is not None and any(site_of_origin(a) == site for a in allowed if a != "*")


def origin_allowed(origin: str | None, allowed: Iterable[str], *, scheme: str, host: str | None) -> bool:
    """Same-origin always passes; anything else must be listed (or ``*`` listed)."""
    if origin is None:
        return True  # not a browser cross-origin request: nothing to protect
    allowed = tuple(allowed)
    return "*" in allowed or same_origin(origin, scheme=scheme, host=host) or listed(origin, allowed)


def credentials_allowed(origin: str | None, allowed: Iterable[str], *, scheme: str, host: str | None) -> bool:
    """Whether cookies may speak for this request: no Origin, the same origin, or one listed by name.

    ``*`` never counts: it says "any site may talk to us", not "any site may
    act with our users' cookies" (that would be cross-site request forgery
    over a socket).
    """
    if origin is None:
        return True  # a browser sends Origin on every WebSocket and cross-origin request
    return same_origin(origin, scheme=scheme, host=host) or listed(origin, allowed)


def cors_headers(
    request: Request,
    allowed: Iterable[str],
    *,
    preflight: bool = False,
    request_headers: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """CORS headers for a request whose origin already passed ``origin_allowed``.

    A same-origin or listed origin is reflected with credentials, so browsers
    may send cookies (``withCredentials``), which Django session auth needs.
    An origin let in only by ``*`` gets ``Access-Control-Allow-Origin: *`` and
    no credentials header: browsers then refuse to send cookies or read a
    credentialed answer (the Fetch standard forbids ``*`` with credentials),
    while cookie-less clients, socket.io-client's default, work from any site.
    """
    origin, allowed = request.origin, tuple(allowed)
    if origin is None:
        return []
    if credentials_allowed(origin, allowed, scheme=request.scheme, host=request.host):
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
        ]
    elif "*" in allowed:
        headers = [(b"access-control-allow-origin", b"*")]
    else:
        return []
    headers.append((b"vary", b"Origin"))  # the answer depends on the Origin: caches must key on it
    if preflight:
        headers.append((b"access-control-allow-methods", b"GET, POST, OPTIONS"))
        if request_headers:
            headers.append((b"access-control-allow-headers", request_headers.encode("latin-1")))
        headers.append((b"access-control-max-age", b"86400"))
    return headers


# -- compression of polling answers -----------------------------------------------------------------
# As Node's engine.io (httpCompression): gzip or deflate (the zlib format, RFC 9110 8.4.1.2), chosen
# from Accept-Encoding, for answers of at least the threshold. Codings are compared case-blind; q=0
# refuses one; "*" stands for any coding the header does not name.

COMPRESSIONS = ("gzip", "deflate")  # preferred first when the client weighs them equally
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def accepted_compression(accept_encoding: str | None) -> str | None:
    """The coding to compress an answer with, or None (no header, nothing we offer, or all refused)."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        weight = 1.0
        key, _, value = params.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        if name:
            weights[name] = weight if math.isfinite(weight) else 0.0
    star = weights.get("*", 0.0)
    best = max(COMPRESSIONS, key=lambda coding: weights.get(coding, star))
    return best if weights.get(best, star) > 0 else None


def compress(body: bytes, coding: str) -> bytes:
    """``body`` in ``coding`` ("gzip" or "deflate"), at zlib's default level, as Node's zlib streams."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, _WBITS[coding])
    return compressor.compress(body) + compressor.flush()
