"""The project's URLs plus views the cluster tests call."""

import json
import logging
import time

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from realtime import cluster, views
from realtime.broadcast import emit


@csrf_exempt
def emit_view(request: HttpRequest) -> JsonResponse:
    """A plain sync Django view that pushes an event, as a user's view would."""
    body = json.loads(request.body)
    emit(body["event"], *body.get("args", []), to=body.get("to"), namespace=body.get("namespace", "/"))
    return JsonResponse({"ok": True})


def sockets_view(request: HttpRequest) -> JsonResponse:
    """fetch_sockets and rooms from sync code."""
    room = request.GET.get("room") or None
    sockets = cluster.fetch_sockets(room=room)
    return JsonResponse(
        {"sockets": [{"id": s.id, "rooms": s.rooms, "server": s.server} for s in sockets], "rooms": cluster.rooms()}
    )


def slow_view(request: HttpRequest) -> JsonResponse:
    """A view that takes its time (a report, an upload): in flight when a test sends SIGTERM."""
    logging.getLogger("realtime.tests").info("slow view started")
    time.sleep(float(request.GET.get("seconds", "1")))  # the server's work, not the test's synchronisation
    return JsonResponse({"slept": True})


urlpatterns = [
    path("test/slow/", slow_view),
    path("test/emit/", emit_view),
    path("test/sockets/", sockets_view),
    # realtime's operator views, mounted as a site would (the router also answers /healthz, /readyz, /metrics)
    path("ops/metrics/", views.metrics),
    path("ops/live/", views.live),
    path("ops/ready/", views.ready),
    path("", include("project.urls")),
]
