"""OpenTelemetry spans (``REALTIME["TRACING"] = True``), or nothing at all.

realtime imports only ``opentelemetry-api``, and only when tracing is on: the
SDK, its exporters and its sampling are the project's (``TracerProvider`` in
settings or ``asgi.py``, as for any instrumented Django site). With tracing
off every call here returns a shared do-nothing object, so the code that opens
spans pays one method call.

Spans carry names, ids and outcomes, never payloads: no event arguments, no
auth data, no exception messages (which often quote what the client sent),
only the exception's type. Across processes the context travels as a W3C
``traceparent`` in the channel-layer envelope (protocol/cluster.py), so an
``emit()`` in a traced Django view or Celery task and its delivery on another
process are one trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

AttributeValue = str | bool | int | float


class Span(Protocol):
    """What the code that opened a span may do with it (an OpenTelemetry span, or nothing)."""

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...


class _NoSpan:
    """The span of a disabled tracer: a context manager that does nothing and records nothing."""

    __slots__ = ()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = _NoSpan()

KINDS = ("internal", "server", "client", "producer", "consumer")


class Tracing:
    """This process's tracer (the runtime holds one); ``enabled`` is ``REALTIME["TRACING"]``."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = trace.get_tracer("realtime")
        self._kinds = {name: getattr(SpanKind, name.upper()) for name in KINDS}
        self._status = (Status, StatusCode.ERROR)
        # W3C trace context by name, whatever propagators the project set globally: the layer's wire says so
        self._propagator = TraceContextTextMapPropagator()

    def span(
        self,
        name: str,
        kind: str = "internal",
        attributes: Mapping[str, AttributeValue] | None = None,
        parent: str | None = None,
    ) -> contextlib.AbstractContextManager[Span]:
        """A span around a ``with`` block, the current one inside it; ``parent`` is a remote traceparent."""
        if not self.enabled:
            return NO_SPAN
        return self._span(name, kind, attributes, parent)

    @contextlib.contextmanager
    def _span(
        self, name: str, kind: str, attributes: Mapping[str, AttributeValue] | None, parent: str | None
    ) -> Iterator[Span]:
        context = self._propagator.extract({"traceparent": parent}) if parent else None
        with self._tracer.start_as_current_span(
            name,
            context=context,
            kind=self._kinds[kind],
            attributes=attributes,
            record_exception=False,  # an exception's message may quote the client's data
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as exc:
                status, error = self._status
                span.set_status(status(error, type(exc).__name__))
                span.set_attribute("exception.type", f"{type(exc).__module__}.{type(exc).__qualname__}")
                raise

    def traceparent(self) -> str | None:
        """The current span's W3C traceparent, for a message to another process (None: no span, or off)."""
        if not self.enabled:
            return None
        carrier: dict[str, Any] = {}
        self._propagator.inject(carrier)
        value = carrier.get("traceparent")
        return value if isinstance(value, str) else None
