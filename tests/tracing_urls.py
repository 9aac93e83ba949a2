"""tests/urls.py plus ``/test/spans/``: this process's finished spans (tests/tracing_asgi.py's exporter) as JSON."""

import os

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from realtime.runtime import current


def _span(span) -> dict:
    context = span.get_span_context()
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "parent_remote": span.parent.is_remote if span.parent is not None else None,
        "attributes": dict(span.attributes or {}),
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "links": [f"{link.context.span_id:016x}" for link in span.links],
    }


def spans_view(request: HttpRequest) -> JsonResponse:
    from tests.tracing_asgi import EXPORTER  # the server's app module: imported, set up, before any request

    spans = [_span(span) for span in EXPORTER.get_finished_spans()]
    return JsonResponse({"pid": os.getpid(), "tracing": current().tracing.enabled, "spans": spans})


urlpatterns = [
    path("test/spans/", spans_view),
    path("", include("tests.urls")),
]
