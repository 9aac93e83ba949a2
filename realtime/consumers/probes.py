"""Operators' endpoints the router answers itself: liveness, readiness and the Prometheus scrape.

They are answered before Django's middleware, on purpose: a Kubernetes probe
or a Prometheus server asks by the pod's IP address, which ``ALLOWED_HOSTS``
rarely lists (a Django view would answer 400), and a probe must not depend on
the database or on a URLconf. The same answers are Django views too
(realtime/views.py) for sites that would rather mount them in ``urls.py``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..proxies import IPNetwork, allowed, forwarded_for
from ..runtime import Runtime

JSON = (b"content-type", b"application/json")


async def _answer(send: Any, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    head = [*headers, (b"cache-control", b"no-store"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Any) -> None:
    """Read the request's body (a probe sends none) so the server can answer on a kept-alive connection."""
    message = await receive()
    while message.get("type") == "http.request" and message.get("more_body"):
        message = await receive()


class Probe:
    """An operator's GET (or HEAD): the request's body read, any other method refused with 405."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _drain(receive)
        if scope.get("method") not in ("GET", "HEAD"):
            await _answer(send, 405, b"", (b"allow", b"GET, HEAD"))
            return
        await self.answer(scope, send)

    async def answer(self, scope: dict[str, Any], send: Any) -> None:
        raise NotImplementedError


class Liveness(Probe):
    """200 while the event loop answers at all: a process that cannot is stuck, and worth restarting."""

    async def answer(self, scope: dict[str, Any], send: Any) -> None:
        await _answer(send, 200, b'{"status": "alive"}', JSON)


class Readiness(Probe):
    """200 while this process should get new clients; 503 while it drains (SIGTERM) or, if asked, without Redis."""

    def __init__(self, runtime: Runtime, requires_layer: bool) -> None:
        self.runtime = runtime
        self.requires_layer = requires_layer

    async def answer(self, scope: dict[str, Any], send: Any) -> None:
        ready, why = self.runtime.ready(self.requires_layer)
        await _answer(send, 200 if ready else 503, json.dumps({"status": why}).encode(), JSON)


class Scrape(Probe):
    """Prometheus's scrape, for the addresses REALTIME["METRICS_ALLOWED_IPS"] lists (403 for the rest)."""

    def __init__(self, scrape: Callable[[], Awaitable[bytes]], content_type: str, allow: Sequence[IPNetwork]) -> None:
        self.scrape = scrape
        self.content_type = content_type.encode("latin-1")
        self.allow = allow

    async def answer(self, scope: dict[str, Any], send: Any) -> None:
        if not allowed(scope_addresses(scope), self.allow):
            await _answer(send, 403, b"Forbidden: not in REALTIME['METRICS_ALLOWED_IPS']\n")
            return
        await _answer(send, 200, await self.scrape(), (b"content-type", self.content_type))


def scope_addresses(scope: dict[str, Any]) -> list[str]:
    """The address the ASGI server gave the request, and every one its X-Forwarded-For names."""
    client = scope.get("client")
    addresses = [client[0]] if client else []
    return addresses + (forwarded_for(scope.get("headers", ())) or [])
