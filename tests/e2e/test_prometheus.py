"""Prometheus's view of two daphne processes on one Redis: Debian's prometheus scrapes both, the tests ask it.

Everything is asserted through Prometheus's HTTP query API, in PromQL, as a dashboard or an
alert would see it (tests/prometheus.py), never by reading the text format: the connection
gauges, event and ack counters, a handler-duration quantile, volatile drops forced by a raw
polling client holding no GET, and the series count after 10,000 made-up event names. Every
expression of realtime/grafana/realtime.json runs against the same Prometheus.

The servers run tests/metrics_settings.py (tests/settings.py, the /metered namespace of
tests/metrics_sockets.py, Socket.IO's default heartbeat). Each test sends its own event names,
so the counts it asserts are its own whatever ran before it in the module.
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from functools import partial

import aiohttp
import pytest
import socketio

from tests.cluster import RedisServer, ensure_redis_installed
from tests.metrics_sockets import Metered
from tests.prometheus import PrometheusServer, by, finite, scalar, values
from tests.servers import ServerProcess
from tests.test_grafana import load, panel_expressions

NAMESPACE = "/metered"
SETTINGS = "tests.metrics_settings"
# The panels that must show data while a client is connected to each process and has sent an event:
# a series each must hold (its labels, and its value where the panel shows a count rather than a rate).
CONNECTION_AND_EVENT_PANELS = {
    "Sessions by transport": ({"transport": "websocket", "eio": "4"}, 2.0),
    "Sockets by namespace and transport": ({"namespace": NAMESPACE, "transport": "websocket"}, 2.0),
    "Events received by namespace and event": ({"namespace": NAMESPACE, "event": "barrier"}, None),
    "Acks sent by namespace and event": ({"namespace": NAMESPACE, "event": "barrier"}, None),
}


class MeteredCluster:
    """Two daphne processes on a private Redis, and a Prometheus scraping both (the module's fixture)."""

    def __init__(self) -> None:
        self.redis = RedisServer()
        self.servers: list[ServerProcess] = []
        self.prometheus: PrometheusServer | None = None

    def start(self) -> MeteredCluster:
        self.redis.start()
        env = {"REDIS_URL": self.redis.url, "CELERY_BROKER_URL": self.redis.url}
        self.servers = [ServerProcess(SETTINGS, app="tests.asgi:application", env=env).start() for _ in range(2)]
        # started before the servers are up: Prometheus takes its first targets some 5 s after start
        self.prometheus = PrometheusServer([instance(s) for s in self.servers], "/metrics").start()
        for server in self.servers:  # a first request makes each process join the cluster
            sid = handshake_sync(server)
            close_sync(server, sid)  # not left open for the 45 s of the default heartbeat
        for server in self.servers:
            server.wait_for_log(r"peer \S+ joined", timeout=15)
        both = {instance(s): 1.0 for s in self.servers}
        self.prometheus.wait_for("up", lambda r: by("instance", r) == both, timeout=20)
        self.prometheus.wait_for("realtime_cluster_peers", lambda r: by("instance", r) == both, timeout=10)
        return self

    def stop(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        for server in self.servers:
            server.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def metered(django_db_setup):
    ensure_redis_installed()
    cluster = MeteredCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def instance(server: ServerProcess) -> str:
    """The ``instance`` label Prometheus gives a target."""
    return f"127.0.0.1:{server.port}"


def nonzero(result, *labels: str) -> dict[tuple[str, ...], float]:
    """``{label values: value}`` of a grouped vector, series at 0 (gone namespaces, closed transports) left out."""
    return {
        tuple(s["metric"].get(label, "") for label in labels): float(s["value"][1])
        for s in result
        if float(s["value"][1]) != 0
    }


def equals(expected: float):
    return lambda result: (scalar(result) or 0.0) == expected


# -- a raw Engine.IO v4 polling client (aiohttp): it decides when a GET is pending ----------------


def polling_url(server: ServerProcess, sid: str | None = None) -> str:
    url = f"{server.url}/socket.io/?EIO=4&transport=polling"
    return f"{url}&sid={sid}" if sid else url


def packets(body: str) -> list[str]:
    return body.split("\x1e")  # Engine.IO v4's record separator between packets of a payload


def handshake_sync(server: ServerProcess) -> str:
    with urllib.request.urlopen(polling_url(server), timeout=10) as response:
        body = response.read().decode()
    assert body.startswith("0"), body
    return json.loads(body[1:])["sid"]


def close_sync(server: ServerProcess, sid: str) -> None:
    request = urllib.request.Request(polling_url(server, sid), data=b"1", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b"ok"


async def get(http: aiohttp.ClientSession, server: ServerProcess, sid: str) -> list[str]:
    async with http.get(polling_url(server, sid), timeout=aiohttp.ClientTimeout(total=10)) as response:
        assert response.status == 200
        return packets(await response.text())


async def post(http: aiohttp.ClientSession, server: ServerProcess, sid: str, *payload: str) -> None:
    data = "\x1e".join(payload).encode()
    async with http.post(polling_url(server, sid), data=data) as response:
        assert (response.status, await response.text()) == (200, "ok")


# -- the tests ----------------------------------------------------------------------------------


async def test_connection_gauges_count_the_sockets_of_both_processes(agent, metered):
    a, b = metered.servers
    prometheus = metered.prometheus
    plan = [("a1", a, "websocket"), ("a2", a, "polling"), ("b1", b, "websocket"), ("b2", b, "polling")]
    plan.append(("b3", b, "websocket"))
    sockets = [await agent.socket(name).connect(server.url + NAMESPACE, transport) for name, server, transport in plan]
    assert [s.transport for s in sockets] == [transport for *_, transport in plan]
    expected = {
        (instance(a), "websocket"): 1.0,
        (instance(a), "polling"): 1.0,
        (instance(b), "websocket"): 2.0,
        (instance(b), "polling"): 1.0,
    }
    per_process = f'sum by (instance, transport) (realtime_sockets{{namespace="{NAMESPACE}"}})'
    await prometheus.await_for(per_process, lambda r: nonzero(r, "instance", "transport") == expected)
    assert scalar(await prometheus.aquery(f'sum(realtime_sockets{{namespace="{NAMESPACE}"}})')) == 5
    # one Engine.IO session per socket.io-client Manager (the agent's sockets are forceNew)
    sessions = 'sum by (instance, transport) (realtime_sessions{eio="4"})'
    await prometheus.await_for(sessions, lambda r: nonzero(r, "instance", "transport") == expected)

    for socket in sockets[:3]:
        await socket.disconnect()
    left = {(instance(b), "websocket"): 1.0, (instance(b), "polling"): 1.0}
    await prometheus.await_for(per_process, lambda r: nonzero(r, "instance", "transport") == left)
    for socket in sockets[3:]:
        await socket.disconnect()
    await prometheus.await_for(f'sum(realtime_sockets{{namespace="{NAMESPACE}"}})', equals(0))
    await prometheus.await_for("sum(realtime_sessions)", equals(0))


async def test_event_and_ack_counters_and_the_handler_quantile(agent, metered):
    a, b = metered.servers
    prometheus = metered.prometheus
    x = await agent.socket("x").connect(a.url + NAMESPACE, "websocket")
    y = await agent.socket("y").connect(b.url + NAMESPACE, "polling")
    # one event each first: rate() needs an increase between two samples of a series, so the
    # histogram's series must exist in Prometheus before the events whose quantile is asked for
    for socket in (x, y):
        assert await socket.emit_with_ack("work", -1) == [-1]
    timed = 'realtime_handler_duration_seconds_count{namespace="/metered", event="work"}'
    await prometheus.await_for(f"count({timed})", equals(2))
    sent = {instance(a): 20, instance(b): 15}
    for socket, server in ((x, a), (y, b)):
        answers = await asyncio.gather(*(socket.emit_with_ack("work", i) for i in range(sent[instance(server)])))
        assert answers == [[i] for i in range(sent[instance(server)])]
    expected = {key: float(count + 1) for key, count in sent.items()}
    total = sum(expected.values())

    received = 'sum by (instance) (realtime_events_received_total{namespace="/metered", event="work"})'
    await prometheus.await_for(received, lambda r: by("instance", r) == expected)
    assert scalar(await prometheus.aquery('sum(realtime_events_received_total{event="work"})')) == total
    acks = 'sum by (instance) (realtime_acks_sent_total{namespace="/metered", event="work"})'
    await prometheus.await_for(acks, lambda r: by("instance", r) == expected)
    await prometheus.await_for(f"sum({timed})", equals(total))

    p99 = (
        "histogram_quantile(0.99, sum by (le) ("
        'rate(realtime_handler_duration_seconds_bucket{namespace="/metered", event="work"}[1m])))'
    )
    result = await prometheus.await_for(p99, lambda r: finite(scalar(r)))
    quantile = scalar(result)
    assert quantile is not None and 0 < quantile < 10, quantile  # within the buckets, not +Inf's NaN

    # emit_with_ack: three answered round trips, one timeout
    await x.reply("question", "yes")
    for _ in range(3):
        assert await x.emit_with_ack("ask", 5) == [{"answer": ["yes"]}]
    await y.silent("question")
    assert await y.emit_with_ack("ask", 0.2) == [{"timeout": True}]
    await prometheus.await_for(
        'sum by (instance) (realtime_emit_with_ack_duration_seconds_count{namespace="/metered"})',
        lambda r: by("instance", r) == {instance(a): 3.0},
    )
    await prometheus.await_for(
        'sum by (instance) (realtime_emit_with_ack_timeouts_total{namespace="/metered"})',
        lambda r: nonzero(r, "instance") == {(instance(b),): 1.0},
    )


async def test_volatile_packets_a_polling_client_cannot_take_are_dropped_and_counted(agent, metered):
    """A raw polling client on process A holds no GET; volatile events to its room, emitted on B, are dropped on A."""
    a, b = metered.servers
    prometheus = metered.prometheus
    dropped = f'sum by (instance) (realtime_volatile_dropped_total{{namespace="{NAMESPACE}"}})'
    # no other test here emits volatile events: nothing was dropped yet (the series exist, at 0)
    assert nonzero(await prometheus.aquery(dropped), "instance") == {}
    async with aiohttp.ClientSession() as http:
        async with http.get(polling_url(a), timeout=aiohttp.ClientTimeout(total=10)) as response:
            opened = await response.text()
        assert opened.startswith("0"), opened
        sid = json.loads(opened[1:])["sid"]
        try:
            await post(http, a, sid, '40/metered,{"room":"vroom"}')
            [connected] = await get(http, a, sid)  # the CONNECT's answer; from now on no GET is pending
            assert connected.startswith('40/metered,{"sid":'), connected
            sprayer = await agent.socket("sprayer").connect(b.url + NAMESPACE, "websocket")
            assert await sprayer.emit_with_ack("spray", "vroom", 7) == [7]

            await prometheus.await_for(dropped, lambda r: nonzero(r, "instance") == {(instance(a),): 7.0})
            assert scalar(await prometheus.aquery("sum(realtime_volatile_dropped_total)")) == 7
            # dropped, not kept for later: the next GET holds the answer to a barrier and nothing else
            await post(http, a, sid, '42/metered,0["barrier"]')
            assert await get(http, a, sid) == ['43/metered,0["ok"]']
        finally:
            await post(http, a, sid, "1")  # the Engine.IO close packet
    # never more than seven, in any sample Prometheus took of either process
    highest = f'max by (instance) (max_over_time(realtime_volatile_dropped_total{{namespace="{NAMESPACE}"}}[1m]))'
    assert nonzero(await prometheus.aquery(highest), "instance") == {(instance(a),): 7.0}


async def test_ten_thousand_made_up_event_names_leave_the_series_count_bounded(metered):
    a, _ = metered.servers
    prometheus = metered.prometheus
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(a.url, namespaces=[NAMESPACE], transports=["websocket"])
    try:
        # one made-up name first, so that the "other" series exist before the series are counted
        await client.emit("made-up-warm-up", namespace=NAMESPACE)
        assert await client.call("barrier", namespace=NAMESPACE, timeout=10) == "ok"
        other = 'sum(realtime_events_received_total{event="other"})'
        await prometheus.await_for(other, equals(1))
        refusals = "sum(realtime_refusals_total) or vector(0)"
        refused = scalar(await prometheus.aquery(refusals))
        all_series = 'count({__name__=~"realtime_.+"})'
        series_before = scalar(await prometheus.aquery(all_series))

        # fast but under MAX_RUNNING_HANDLERS (256): a round trip after every 200 events
        for start in range(0, 10_000, 200):
            for i in range(start, start + 200):
                await client.emit(f"made-up-{i}", i, namespace=NAMESPACE)
            assert await client.call("barrier", namespace=NAMESPACE, timeout=10) == "ok"

        await prometheus.await_for(other, equals(10_001), timeout=20)
        by_event = await prometheus.aquery("realtime_events_received_total")
        declared = set(Metered._events)
        labels = {(s["metric"]["instance"], s["metric"]["namespace"], s["metric"]["event"]) for s in by_event}
        assert {event for *_, event in labels} <= declared | {"other"}, labels
        assert {namespace for _, namespace, _ in labels} == {NAMESPACE}
        # one "other" per namespace and process, whatever the number of made-up names
        counted = 'count by (instance) (realtime_events_received_total{event="other"} > 0)'
        assert by("instance", await prometheus.aquery(counted)) == {instance(a): 1.0}
        count = scalar(await prometheus.aquery("count(realtime_events_received_total)"))
        assert count == len(labels) <= 2 * (len(declared) + 1)
        # and not one series more anywhere: 10,000 names added nothing to what Prometheus stores
        assert scalar(await prometheus.aquery(all_series)) == series_before
        assert scalar(await prometheus.aquery(refusals)) == refused, "the flood tripped a limit"
    finally:
        await client.disconnect()


async def test_every_dashboard_expression_runs_and_the_connection_and_event_panels_have_data(agent, metered):
    a, b = metered.servers
    prometheus = metered.prometheus
    for name, server in (("p", a), ("q", b)):
        socket = await agent.socket(name).connect(server.url + NAMESPACE, "websocket")
        assert await socket.emit_with_ack("barrier") == ["ok"]
    expressions = panel_expressions(load())
    assert {title for title, _ in expressions} >= set(CONNECTION_AND_EVENT_PANELS)
    for title, expr in expressions:
        promql = grafana_to_promql(expr)
        if title in CONNECTION_AND_EVENT_PANELS:
            labels, value = CONNECTION_AND_EVENT_PANELS[title]
            result = await prometheus.await_for(promql, partial(shows, labels=labels, value=value), timeout=10)
            assert all(not math.isnan(v) for v in values(result)), (title, result)
        else:
            await prometheus.aquery(promql)  # raises unless Prometheus answers status: success


def shows(result, labels: dict[str, str], value: float | None) -> bool:
    """A series with ``labels`` (and ``value``, when given; a rate's is whatever the moment makes it)."""
    return any(
        labels.items() <= s["metric"].items() and (value is None or float(s["value"][1]) == value) for s in result
    )


def grafana_to_promql(expr: str) -> str:
    """What Grafana sends for a panel's query, with every variable at "All"."""
    for variable, value in (
        ("$__rate_interval", "1m"),
        ("$__interval", "1m"),
        ("${instance}", ".*"),
        ("$instance", ".*"),
        ("${namespace}", ".*"),
        ("$namespace", ".*"),
    ):
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr
