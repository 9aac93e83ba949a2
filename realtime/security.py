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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest


class _HeadersOnlyRequest(HttpRequest):
    """Just enough of an HttpRequest for ``get_host()`` and ``scheme``: META as Django's ASGI handler builds it.

    ``HttpRequest.__init__`` (query dicts, upload handlers) is skipped on
    purpose: this needs none of it.
    """

    def __init__(self, meta: dict[str, str], scheme: str | None) -> None:
        self.META = meta
        self._asgi_scheme = scheme

    def _get_scheme(self) -> str:
        return "https" if self._asgi_scheme in ("https", "wss") else "http"


@dataclass(frozen=True, slots=True)
class RequestSite:
    """Where a request says it was made to, as Django would read it."""

    scheme: str  # "http" or "https" (SECURE_PROXY_SSL_HEADER honoured)
    host: str | None  # Django's get_host(); None when ALLOWED_HOSTS refuses it
    presented_host: str  # what the client sent (for the log line when refused)


def request_site(
    headers: Iterable[tuple[bytes, bytes]], scheme: str | None, server: Sequence[object] | None = None
) -> RequestSite:
    """The scheme and validated host of a request, from its raw ASGI headers, scope scheme and server.

    Only the headers Django's answer depends on are read (Host, the
    X-Forwarded ones, the proxy SSL header), and the answer for the same
    values is remembered: a polling client repeats them on every request.
    """
    wanted = _wanted_headers()
    found: dict[bytes, list[bytes]] = {}
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if name in wanted:  # names with "_" never are: Django's ASGIRequest drops them (spoofing)
            found.setdefault(name, []).append(raw_value)
    values = tuple(b",".join(found[name]).decode("latin-1") if name in found else None for name in wanted)
    server_name, server_port = (str(server[0]), str(server[1])) if server else ("unknown", "0")
    return _site(wanted, values, scheme, server_name, server_port)


@lru_cache(maxsize=1)
def _wanted_headers() -> tuple[bytes, ...]:
    """Header names (as ASGI gives them: lower case, hyphens) whose META keys get_host() and scheme read."""
    names = [b"host", b"x-forwarded-host", b"x-forwarded-port"]
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_key = settings.SECURE_PROXY_SSL_HEADER[0]
        names.append(meta_key.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1"))
    return tuple(names)


@lru_cache(maxsize=4096)
def _site(
    names: tuple[bytes, ...], values: tuple[str | None, ...], scheme: str | None, server_name: str, server_port: str
) -> RequestSite:
    meta = {"SERVER_NAME": server_name, "SERVER_PORT": server_port}
    for name, value in zip(names, values, strict=True):
        if value is not None:
            meta["HTTP_" + name.decode("latin-1").upper().replace("-", "_")] = value
    request = _HeadersOnlyRequest(meta, scheme)
    try:
        host: str | None = request.get_host()
    except DisallowedHost:
        host = None
    forwarded = meta.get("HTTP_X_FORWARDED_HOST") if settings.USE_X_FORWARDED_HOST else None
    presented = forwarded or meta.get("HTTP_HOST", "")
    site_scheme = request.scheme
    assert site_scheme is not None  # typed optional by Django; with _get_scheme() above, always "http" or "https"
    return RequestSite(scheme=site_scheme, host=host, presented_host=presented)


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in {"ALLOWED_HOSTS", "DEBUG", "USE_X_FORWARDED_HOST", "USE_X_FORWARDED_PORT", "SECURE_PROXY_SSL_HEADER"}:
        _wanted_headers.cache_clear()
        _site.cache_clear()
