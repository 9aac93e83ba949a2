"""Operators' views to mount in ``urls.py``: the Prometheus scrape, liveness and readiness.

The router can answer the same paths before Django runs at all
(``REALTIME["METRICS_PATH"]``, ``["LIVENESS_PATH"]``, ``["READINESS_PATH"]``;
realtime/consumers/probes.py), which a Kubernetes probe prefers: it asks by the
pod's address, which ``ALLOWED_HOSTS`` seldom lists. The views are async, so
they read the runtime on its own event loop.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseNotFound, JsonResponse

from .conf import realtime_settings
from .prometheus import CONTENT_TYPE, process_exporter
from .proxies import allowed, networks
from .runtime import current


async def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's scrape: for METRICS_ALLOWED_IPS, and for staff users signed in to the admin."""
    conf = realtime_settings()
    if conf["METRICS"] is not True:
        return HttpResponseNotFound("REALTIME['METRICS'] is off\n")
    addresses = [request.META.get("REMOTE_ADDR", "")]
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if forwarded:
        addresses += [part.strip() for part in forwarded.split(",") if part.strip()]
    if not allowed(addresses, networks(conf["METRICS_ALLOWED_IPS"])) and not await _staff(request):
        return HttpResponseForbidden("Forbidden: not in REALTIME['METRICS_ALLOWED_IPS'], and not a staff user\n")
    return HttpResponse(await process_exporter().scrape(), content_type=CONTENT_TYPE)


async def live(request: HttpRequest) -> JsonResponse:
    """Liveness: answered while the event loop runs."""
    return JsonResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})


async def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 503 while the process drains after SIGTERM (and, with READINESS_REQUIRES_LAYER, without Redis)."""
    ok, why = current().ready(realtime_settings()["READINESS_REQUIRES_LAYER"] is True)
    return JsonResponse({"status": why}, status=200 if ok else 503, headers={"Cache-Control": "no-store"})


async def _staff(request: HttpRequest) -> bool:
    auser = getattr(request, "auser", None)  # AuthenticationMiddleware installed
    if auser is None:
        return False
    user = await auser()
    return bool(user.is_active and user.is_staff)
