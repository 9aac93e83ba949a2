"""Spans of two runtimes in this event loop, over one in-memory layer, recorded by the OpenTelemetry SDK.

The end-to-end test (tests/e2e/test_tracing.py) reads spans back from daphne
processes; here the same links are checked in memory, where a span's parent is
plain to see: a handler's broadcast and its delivery on the other runtime are
one trace, carried by the channel-layer envelope.
"""

import asyncio
import json
import uuid

import pytest
from channels.layers import InMemoryChannelLayer
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from realtime.broadcast import BroadcastOperator
from tests.runtime.harness import Process

MARKER = f"SECRET-PAYLOAD-{uuid.uuid4()}"
WAIT = 2.0


class Ended(SpanProcessor):
    """Wakes whoever waits for spans: the SDK calls ``on_end`` as each span ends, after the exporter got it."""

    def __init__(self):
        self.waiters = set()  # (loop, event)

    def on_end(self, span):
        for loop, event in list(self.waiters):
            loop.call_soon_threadsafe(event.set)


@pytest.fixture(scope="module")
def exporter():
    """The SDK's in-memory exporter on this process's tracer provider (the global one can be set only once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.ended = Ended()
    provider.add_span_processor(exporter.ended)
    yield exporter
    exporter.shutdown()  # its processor stays on the provider, and exports nothing any more


@pytest.fixture
def tracing(request, settings):
    settings.REALTIME = {**settings.REALTIME, "TRACING": request.param}


@pytest.fixture
async def pair(tracing, exporter):
    """Processes a and b, peers of each other, with REALTIME["TRACING"] as the test's ``tracing`` parameter."""
    layer = InMemoryChannelLayer(capacity=10_000)
    processes = [Process(layer) for _ in range(2)]
    for process in processes:
        await process.start()
    a, b = processes
    assert await a.runtime.member.peers.await_live(b.runtime.key)
    assert await b.runtime.member.peers.await_live(a.runtime.key)
    exporter.clear()
    yield processes
    for process in processes:
        await process.stop()


async def finished(exporter, ready):
    """The spans recorded so far, once ``ready(spans)`` holds (a span is exported as it ends)."""
    waiter = (asyncio.get_running_loop(), asyncio.Event())
    exporter.ended.waiters.add(waiter)
    try:
        async with asyncio.timeout(WAIT):
            while True:
                waiter[1].clear()
                if ready(spans := exporter.get_finished_spans()):
                    return spans
                await waiter[1].wait()  # the next span's end
    except TimeoutError:
        spans = exporter.get_finished_spans()
        raise AssertionError(f"spans never ready: {[(s.name, dict(s.attributes)) for s in spans]}") from None
    finally:
        exporter.ended.waiters.discard(waiter)


def named(spans, name):
    return [s for s in spans if s.name == name]


def remote_delivery(spans):
    """Ready once b's delivery ended: the one whose parent came in an envelope."""
    return [s for s in named(spans, "realtime deliver /") if s.parent is not None and s.parent.is_remote]


def assert_no_payload(spans):
    for span in spans:
        text = json.dumps([span.name, dict(span.attributes), span.status.description, [e.name for e in span.events]])
        assert MARKER not in text, text


@pytest.mark.parametrize("tracing", [True], indirect=True)
async def test_a_handlers_broadcast_and_its_delivery_elsewhere_are_one_trace(pair, exporter):
    a, b = pair
    sender, receiver = await a.connect(auth={"token": MARKER}), await b.connect()
    room = f"room-{MARKER}"
    assert await receiver.call("join", room) == [[room]]
    assert await sender.call("broadcast", {"event": "news", "to": [room], "args": [MARKER]}) == ["sent"]
    await receiver.next(lambda f: isinstance(f, str) and f.startswith('42["news"'))

    # the event's span ends just after its ack is written: wait for it too
    spans = await finished(exporter, lambda got: remote_delivery(got) and named(got, "realtime event / broadcast"))
    (event,) = named(spans, "realtime event / broadcast")
    assert event.attributes["realtime.socket_id"] == sender.id
    assert (event.kind, event.parent) == (trace.SpanKind.SERVER, None)
    (broadcast,) = named(spans, "realtime broadcast /")
    assert broadcast.kind == trace.SpanKind.PRODUCER
    assert broadcast.parent.span_id == event.context.span_id
    delivered = {s.parent.is_remote: s for s in named(spans, "realtime deliver /")}
    assert sorted(delivered) == [False, True]  # a's own delivery, and b's from the envelope's traceparent
    for span in delivered.values():
        assert span.kind == trace.SpanKind.CONSUMER
        assert (span.context.trace_id, span.parent.span_id) == (event.context.trace_id, broadcast.context.span_id)
    assert delivered[True].attributes["realtime.recipients"] == 1  # the receiver, on b
    assert delivered[False].attributes["realtime.recipients"] == 0  # the sender is left out, and alone on a
    assert_no_payload(spans)


@pytest.mark.parametrize("tracing", [True], indirect=True)
async def test_an_emit_joins_the_trace_of_the_code_that_called_it(pair, exporter):
    """As a Celery task's or a view's span: the caller's span is the broadcast's parent, here and on b."""
    a, b = pair
    receiver = await b.connect()
    task = trace.get_tracer("tests").start_span("task")
    with trace.use_span(task, end_on_exit=True):
        await BroadcastOperator("/", (receiver.id,), runtime=a.runtime).emit("news", MARKER)
    await receiver.next(lambda f: isinstance(f, str) and f.startswith('42["news"'))

    spans = await finished(exporter, remote_delivery)
    (broadcast,) = named(spans, "realtime broadcast /")
    assert (broadcast.parent.span_id, broadcast.context.trace_id) == (task.context.span_id, task.context.trace_id)
    delivered = {s.parent.is_remote: s for s in named(spans, "realtime deliver /")}
    assert sorted(delivered) == [False, True]
    for span in delivered.values():
        assert (span.context.trace_id, span.parent.span_id) == (task.context.trace_id, broadcast.context.span_id)
    assert delivered[True].attributes["realtime.recipients"] == 1  # a socket's own room: sent straight to b
    assert delivered[False].attributes["realtime.recipients"] == 0
    assert_no_payload(spans)


@pytest.mark.parametrize("tracing", [False], indirect=True)
async def test_tracing_off_records_nothing_with_the_sdk_installed(pair, exporter):
    a, b = pair
    assert not a.runtime.tracing.enabled and not b.runtime.tracing.enabled
    sender, receiver = await a.connect(auth={"token": MARKER}), await b.connect()
    assert await receiver.call("join", "off") == [["off"]]
    assert await sender.call("broadcast", {"event": "news", "to": ["off"], "args": [MARKER]}) == ["sent"]
    await receiver.next(lambda f: isinstance(f, str) and f.startswith('42["news"'))
    with trace.get_tracer("tests").start_as_current_span("fence"):  # the SDK records: only ours, after all that
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["fence"]


async def test_the_process_tasks_carry_nothing_of_the_request_that_started_them(settings, exporter):
    """The first request starts a process's layer tasks; a span current in that request (an ASGI
    middleware's) must not become the parent of a delivery the process makes later for a message
    that carries no trace (one from a process, a worker or a command that does not trace)."""
    layer = InMemoryChannelLayer(capacity=10_000)
    settings.REALTIME = {**settings.REALTIME, "TRACING": False}
    a = Process(layer)  # the sender traces nothing: its messages carry no traceparent
    settings.REALTIME = {**settings.REALTIME, "TRACING": True}
    b = Process(layer)
    await a.start()
    with trace.get_tracer("tests").start_as_current_span("the first request b served"):
        await b.start()  # b's receive loop, heartbeats and sender start here
    try:
        assert await a.runtime.member.peers.await_live(b.runtime.key)
        receiver = await b.connect()
        assert await receiver.call("join", "quiet") == [["quiet"]]
        exporter.clear()
        await BroadcastOperator("/", ("quiet",), runtime=a.runtime).emit("news", 1)
        (delivery,) = await finished(exporter, lambda spans: named(spans, "realtime deliver /"))
        assert delivery.parent is None  # a trace of its own, not a child of b's first request
        assert delivery.attributes["realtime.recipients"] == 1
    finally:
        await a.stop()
        await b.stop()
