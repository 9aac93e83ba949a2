"""Django's own request rules (ALLOWED_HOSTS, SECURE_PROXY_SSL_HEADER) for Engine.IO requests.

A Django view refuses a request whose Host is not in ``ALLOWED_HOSTS`` (400)
and knows it was made over HTTPS behind a proxy that says so. The Engine.IO
consumers never build a Django request, so they would skip both; this module
asks Django itself, by running ``HttpRequest.get_host()`` and
``HttpRequest.scheme`` over the ASGI headers. Reusing Django's code rather than
re-implementing it keeps every detail identical: ``USE_X_FORWARDED_HOST``,
``USE_X_FORWARDED_PORT``, the implicit localhost allowance when ``DEBUG`` is on
and ``ALLOWED_HOSTS`` is empty, the RFC 1034/1035 host syntax.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest


class _HeadersOnlyRequest(HttpRequest):
    """Just enough of an HttpRequest for ``get_host()`` and ``scheme``: META built as Django's ASGI handler does.

    ``HttpRequest.__init__`` (query dicts, upload handlers) is skipped on
    purpose: this runs for every polling request and needs none of it.
    """

    def __init__(self, headers: Iterable[tuple[bytes, bytes]], scheme: str | None, server: Any) -> None:
        joined: dict[str, list[str]] = {}
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1").lower()
            if "_" in name:
                continue  # as Django's ASGIRequest: X_Forwarded_Host must not pass for X-Forwarded-Host
            key = "HTTP_" + name.upper().replace("-", "_")
            joined.setdefault(key, []).append(raw_value.decode("latin-1"))
        self.META = {key: ",".join(values) for key, values in joined.items()}
        if server:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = str(server[0]), str(server[1])
        else:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = "unknown", "0"
        self._asgi_scheme = scheme

    def _get_scheme(self) -> str:
        return "https" if self._asgi_scheme in ("https", "wss") else "http"


@dataclass(frozen=True, slots=True)
class RequestSite:
    """Where a request says it was made to, as Django would read it."""

    scheme: str  # "http" or "https" (SECURE_PROXY_SSL_HEADER honoured)
    host: str | None  # Django's get_host(); None when ALLOWED_HOSTS refuses it
    presented_host: str  # what the client sent (for the log line when refused)


def request_site(headers: Iterable[tuple[bytes, bytes]], scheme: str | None, server: Any = None) -> RequestSite:
    """The scheme and validated host of a request, from its raw ASGI headers, scope scheme and server."""
    request = _HeadersOnlyRequest(headers, scheme, server)
    try:
        host: str | None = request.get_host()
    except DisallowedHost:
        host = None
    forwarded = request.META.get("HTTP_X_FORWARDED_HOST") if settings.USE_X_FORWARDED_HOST else None
    presented = forwarded or request.META.get("HTTP_HOST", "")
    return RequestSite(scheme=request.scheme, host=host, presented_host=presented)
