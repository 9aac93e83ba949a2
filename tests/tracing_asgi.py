"""tests/asgi.py's app with the OpenTelemetry SDK and the Django instrumentation, spans kept in memory.

Each server process started with it keeps every finished span in ``EXPORTER``;
tests/tracing_urls.py serves them as JSON at ``/test/spans/``, so a test reads
what each process recorded. The SDK is set up here, as a project would in its
own ``asgi.py``: realtime itself imports only ``opentelemetry-api``.
"""

import os

from opentelemetry import trace
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.tracing_settings")

EXPORTER = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(provider)
DjangoInstrumentor().instrument()  # before the handler is built: it adds its middleware to the settings

from tests.asgi import application  # noqa: E402, F401  the same app, now traced
