"""What a process counts (realtime.metrics), and what Prometheus gets of it (realtime.prometheus), in memory.

Real sessions and real Socket.IO dispatch over runtimes in one event loop
(tests/runtime/harness.py); the exporter's text is read back with
prometheus_client's own parser, as Prometheus would read it.
"""

import asyncio
import json

import pytest
from channels.layers import InMemoryChannelLayer
from prometheus_client.parser import text_string_to_metric_families

from realtime.metrics import CATALOGUE, OTHER, REFUSAL_REASONS
from realtime.prometheus import Exporter
from tests.runtime.harness import Client, Process


class SlowReader(Client):
    """A WebSocket whose server-side buffer holds 100 KB it has not read: volatile packets are dropped for it."""

    def buffered(self) -> int:
        return 100_000


async def until(condition, timeout=2.0):
    """Wait for ``condition()`` to hold, looking again at each turn of the loop, up to ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def samples(text):
    """{(sample name, frozenset of labels): value} of an exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())))


async def test_events_and_acks_count_by_declared_name_and_everything_else_as_other(cluster):
    a = cluster[0]
    client = await a.connect()
    assert await client.call("echo", 1) == [1]
    for name in ("made-up-1", "made-up-2", "made-up-1"):
        await client.send(f'42["{name}",1]')
    assert await client.call("echo", 2) == [2]
    metrics = a.runtime.metrics
    echo, other = metrics.events[("/", "echo")], metrics.events[("/", OTHER)]
    assert (echo.received, echo.acks, echo.duration.count) == (2, 2, 2)
    assert (other.received, other.acks, other.duration.count) == (3, 0, 0)  # no handler ran: nothing to time
    assert echo.duration.total > 0


async def test_ten_thousand_event_names_add_no_series(cluster):
    """A client cannot explode the metrics' cardinality: undeclared names are one "other" series."""
    a = cluster[0]
    client = await a.connect()
    exporter = Exporter(a.runtime, multiprocess=False)
    before = [key for key in samples(await exporter.scrape()) if key[0] == "realtime_events_received_total"]
    for start in range(0, 10_000, 200):  # within MAX_RUNNING_HANDLERS: each batch is handled before the next
        for i in range(start, start + 200):
            await client.send(f'42["name-{i}"]')
        assert await client.call("echo", "fence") == ["fence"]
    metrics = a.runtime.metrics
    assert metrics.events[("/", OTHER)].received == 10_000
    assert {key for key, stats in metrics.events.items() if stats.received} == {("/", "echo"), ("/", OTHER)}
    text = await exporter.scrape()
    series = [key for key in samples(text) if key[0] == "realtime_events_received_total"]
    # one series per handler the namespace declares (at 0 until used) and one "other": none added
    assert len(series) == len(before) == len(type(a.server.resolve("/"))._events) + 1
    assert value(text, "realtime_events_received_total", namespace="/", event=OTHER) == 10_000


async def test_a_dynamic_namespace_is_one_label_its_pattern(cluster):
    a = cluster[0]
    for team in ("/team-1", "/team-2"):
        client = await a.connect(team)
        assert await client.call("whoami", namespace=team)
    metrics = a.runtime.metrics
    assert metrics.connects == {"/team-\\d+": 2}
    assert metrics.events[("/team-\\d+", "whoami")].received == 2
    text = await Exporter(a.runtime, multiprocess=False).scrape()
    assert value(text, "realtime_sockets", namespace="/team-\\d+", transport="websocket", eio="4") == 2


async def test_broadcasts_count_where_emitted_and_deliveries_where_written(cluster):
    a, b, _ = cluster
    sender = await a.connect()
    receivers = [await b.connect() for _ in range(2)]
    for receiver in receivers:
        assert await receiver.call("join", "news") == [["news"]]
    assert await sender.call("broadcast", {"event": "news", "to": ["news"], "args": [1]}) == ["sent"]
    for receiver in receivers:
        await receiver.next(lambda f: isinstance(f, str) and '["news",1]' in f)
    assert a.runtime.metrics.broadcasts == {"/": 1}
    assert b.runtime.metrics.deliveries.get("/") == 2 + 2  # the broadcast, and each receiver's welcome on connect
    assert b.runtime.metrics.received.get("broadcast") == 1  # one layer message for both
    # counted once the layer call returned, which may be after the receivers already have it
    await until(lambda: a.runtime.metrics.published.get("broadcast") == 1)


async def test_volatile_packets_a_client_cannot_take_are_counted_as_dropped(cluster):
    a = cluster[0]
    slow = SlowReader(a)
    await slow.open()
    await slow.connect()
    assert await slow.call("join", "ticker") == [["ticker"]]
    sender = await a.connect()
    for i in range(3):
        spec = {"event": "tick", "to": ["ticker"], "args": [i], "volatile": True}
        assert await sender.call("broadcast", spec) == ["sent"]
    assert slow.events("tick") == []
    assert a.runtime.metrics.volatile_dropped == {"/": 3}


@pytest.mark.django_db(transaction=True)  # /guarded's CONNECT middleware is a def: it runs in Django's thread
async def test_every_refusal_is_counted_by_its_reason(cluster):
    a = cluster[0]
    hard = await a.connect("/hard")
    answers = [await hard.call("limited", namespace="/hard") for _ in range(6)]  # @rate_limit("5/s")
    assert answers[-1] == [{"error": "rate limited"}]
    assert await hard.call("one", 1, 2, namespace="/hard") == [{"error": "invalid arguments"}]
    guarded = Client(a)
    await guarded.open()
    await guarded.connect("/guarded", {"key": "k"})
    assert await guarded.call("refused", namespace="/guarded") == [{"error": "not allowed here"}]
    for namespace, auth in (("/nope", None), ("/refuse", {"token": "bad"}), ("/private", None)):
        client = Client(a)
        await client.open()
        prefix = f"{namespace},"
        await client.send(f"40{prefix}{json.dumps(auth) if auth is not None else ''}")
        await client.next(lambda f, p=prefix: isinstance(f, str) and f.startswith(f"44{p}"))
    broken = Client(a)
    await broken.open()
    await broken.send('42["unterminated')
    assert broken.session.closed  # "parse error": the session ends at once
    refusals = a.runtime.metrics.refusals
    assert set(refusals) == set(REFUSAL_REASONS)  # every reason's series exists from the start, at 0
    assert {reason: count for reason, count in refusals.items() if count} == {
        "rate_limit": 1,
        "invalid_arguments": 1,
        "event_refused": 1,
        "invalid_namespace": 1,
        "connect_refused": 1,
        "auth": 1,
        "parse_error": 1,
    }


async def test_the_exporter_adds_what_changed_since_the_last_scrape(cluster):
    a = cluster[0]
    exporter = Exporter(a.runtime, multiprocess=False)
    first, second = await a.connect(), await a.connect()
    for client in (first, second):
        assert await client.call("echo", "x") == ["x"]
    text = await exporter.scrape()
    assert value(text, "realtime_events_received_total", namespace="/", event="echo") == 2
    # series exist at 0 before their first count, so rate() and increase() see that first count
    assert value(text, "realtime_volatile_dropped_total", namespace="/") == 0
    assert value(text, "realtime_refusals_total", reason="handshake_rate") == 0
    assert value(text, "realtime_handler_duration_seconds_count", namespace="/", event="join") == 0
    assert value(text, "realtime_handler_duration_seconds_count", namespace="/", event="echo") == 2
    assert value(text, "realtime_handler_duration_seconds_bucket", namespace="/", event="echo", le="+Inf") == 2
    assert value(text, "realtime_sockets", namespace="/", transport="websocket", eio="4") == 2
    assert value(text, "realtime_sessions", transport="websocket", eio="4") == 2
    assert await first.call("echo", "y") == ["y"]
    await second.session.close()
    text = await exporter.scrape()
    assert value(text, "realtime_events_received_total", namespace="/", event="echo") == 3
    assert value(text, "realtime_handler_duration_seconds_count", namespace="/", event="echo") == 3
    assert value(text, "realtime_acks_sent_total", namespace="/", event="echo") == 3
    assert value(text, "realtime_disconnects_total", reason="forced close") == 1
    assert value(text, "realtime_sockets", namespace="/", transport="websocket", eio="4") == 1
    await first.session.close()
    text = await exporter.scrape()
    # a series that emptied reads 0, not its last value
    assert value(text, "realtime_sockets", namespace="/", transport="websocket", eio="4") == 0
    assert value(text, "realtime_ready") == 1
    assert value(text, "realtime_cluster_peers") == 2
    assert value(text, "realtime_cluster_layer_up") == 1


async def test_every_catalogued_metric_is_exported_with_its_help(cluster):
    a = cluster[0]
    assert await (await a.connect()).call("echo") == []
    text = (await Exporter(a.runtime, multiprocess=False).scrape()).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for spec in CATALOGUE:
        name = spec.name.removesuffix("_total")
        assert name in families, spec.name
        assert families[name].documentation == spec.help
        assert families[name].type == spec.kind


async def test_with_metrics_off_events_are_counted_but_nothing_reads_a_clock(settings):
    settings.REALTIME = {**settings.REALTIME, "METRICS": False}
    process = Process(InMemoryChannelLayer())
    await process.start()
    try:
        client = await process.connect()
        assert await client.call("echo", 1) == [1]
        stats = process.runtime.metrics.events[("/", "echo")]
        assert (stats.received, stats.acks, stats.duration.count) == (1, 1, 0)
    finally:
        await process.stop()
