"""What this process counts: the numbers behind Prometheus (realtime.prometheus) and the admin dashboard.

Counting sits on the path of every event and every delivery, so it is plain
Python: integers in dicts, and a list of bucket counts per histogram, held by
the runtime (one ``Metrics`` per process) and written only from its event
loop, so no lock. ``prometheus_client`` is used only where something reads
them: the exporter copies them into its metric objects when it is scraped (and,
under gunicorn's workers, into its multiprocess files once a second). Measured
with ``make bench``, counting this way costs less than the noise of a run; a
``prometheus_client`` call per event would cost several microseconds.

Every label value comes from a fixed set written in the code or from names the
project declared (namespace classes, handler names), so no client can add a
series: an event name its namespace has no handler for is counted as ``other``,
and a dynamic namespace (``re.compile(r"/team-\\d+")``) is one label, its pattern.

``CATALOGUE`` is the one list of metric names, kinds, labels and help texts: the
exporter builds its metrics from it and the README's table is checked against it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

OTHER = "other"

# Seconds; a handler is often well under a millisecond, an ack round trip a few milliseconds.
HANDLER_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# realtime_refusals_total{reason}: every way a request, a CONNECT or an event is turned away.
REFUSAL_REASONS = (
    # a request, before any session exists (or for one that does not)
    "host",  # Host not in ALLOWED_HOSTS
    "origin",  # Origin not allowed (CORS_ALLOWED_ORIGINS)
    "bad_request",  # not a valid Engine.IO request: transport, protocol version, method
    "session_unknown",  # a sid no live process owns
    "max_connections",  # MAX_CONNECTIONS
    "max_connections_per_ip",  # MAX_CONNECTIONS_PER_IP
    "handshake_rate",  # HANDSHAKE_RATE_PER_IP
    "allow_request",  # REALTIME["ALLOW_REQUEST"] said no
    "shutting_down",  # a handshake after SIGTERM
    "payload_too_large",  # a body or frame over MAX_PAYLOAD (the session is closed)
    "parse_error",  # an Engine.IO or Socket.IO packet that does not parse (the session is closed)
    # a namespace CONNECT
    "invalid_namespace",  # no such namespace
    "max_namespaces",  # MAX_NAMESPACES
    "auth",  # the AUTHENTICATORS, login_required, permission_required or groups_required refused
    "connect_refused",  # middleware or on_connect raised ConnectionRefused
    "connect_error",  # middleware or on_connect raised anything else
    # an event
    "rate_limit",  # RATE_LIMITS or @rate_limit
    "max_running_handlers",  # MAX_RUNNING_HANDLERS
    "max_pending_acks",  # MAX_PENDING_ACKS
    "invalid_arguments",  # the handler does not take the arguments sent
    "event_refused",  # packet middleware or the handler raised EventRefused
    "strikes",  # a socket refused RATE_LIMIT_STRIKES times in 10 s, disconnected
)

# realtime_cluster_messages_dropped_total{reason}
# outage: not durable (a forwarded request, a relayed frame, a volatile broadcast) while the layer
# was away; queue_full / expired: past CLUSTER_QUEUE_BYTES / CLUSTER_QUEUE_AGE; send_failed: refused
DROP_REASONS = ("outage", "queue_full", "expired", "send_failed")


@dataclass(frozen=True)
class Spec:
    """One metric as Prometheus shows it; ``name`` without ``_total`` for counters is prometheus_client's."""

    name: str
    kind: str  # "counter", "gauge" or "histogram"
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


CATALOGUE: tuple[Spec, ...] = (
    # connections (gauges read from the runtime when scraped)
    Spec("realtime_sessions", "gauge", "Engine.IO sessions open in this process.", ("transport", "eio")),
    Spec("realtime_sockets", "gauge", "Socket.IO sockets connected.", ("namespace", "transport", "eio")),
    Spec(
        "realtime_rooms", "gauge", "Rooms with members in this process (sockets' own rooms left out).", ("namespace",)
    ),
    Spec("realtime_ready", "gauge", "1 while the readiness probe would answer 200, else 0."),
    Spec(
        "realtime_untrusted_proxy",
        "gauge",
        "1 once handshakes came through a proxy whose X-Forwarded-For the ASGI server ignores.",
    ),
    Spec("realtime_handshakes_total", "counter", "Engine.IO sessions opened.", ("transport",)),
    Spec("realtime_refusals_total", "counter", "Requests, CONNECTs and events refused, by reason.", ("reason",)),
    Spec("realtime_disconnects_total", "counter", "Engine.IO sessions closed, by reason.", ("reason",)),
    Spec("realtime_connects_total", "counter", "Namespace CONNECTs accepted.", ("namespace",)),
    # events
    Spec("realtime_events_received_total", "counter", "Events received from clients.", ("namespace", "event")),
    Spec("realtime_acks_sent_total", "counter", "Acknowledgements sent for clients' events.", ("namespace", "event")),
    Spec(
        "realtime_handler_duration_seconds",
        "histogram",
        "Time an event handler ran (middleware included).",
        ("namespace", "event"),
        HANDLER_BUCKETS,
    ),
    Spec(
        "realtime_emit_with_ack_duration_seconds",
        "histogram",
        "Round trip of emit_with_ack: sent to the client until its acknowledgement arrived.",
        ("namespace",),
        ACK_BUCKETS,
    ),
    Spec(
        "realtime_emit_with_ack_timeouts_total", "counter", "emit_with_ack calls not answered in time.", ("namespace",)
    ),
    Spec("realtime_broadcasts_total", "counter", "Broadcasts emitted from this process.", ("namespace",)),
    Spec("realtime_deliveries_total", "counter", "Events written to this process's sockets.", ("namespace",)),
    Spec(
        "realtime_volatile_dropped_total",
        "counter",
        "Volatile events dropped: the client could not take them.",
        ("namespace",),
    ),
    Spec(
        "realtime_slow_clients_closed_total",
        "counter",
        "Sessions closed because the client did not read (MAX_BUFFERED_BYTES).",
    ),
    Spec("realtime_received_bytes_total", "counter", "Bytes of Engine.IO payloads received.", ("transport",)),
    Spec("realtime_sent_bytes_total", "counter", "Bytes of Engine.IO payloads sent.", ("transport",)),
    # the cluster
    Spec("realtime_cluster_peers", "gauge", "Other server processes alive on the channel layer."),
    Spec("realtime_cluster_layer_up", "gauge", "1 while the channel layer is reachable."),
    Spec("realtime_cluster_outbox_bytes", "gauge", "Bytes of cross-process messages waiting to be published."),
    Spec("realtime_cluster_outbox_messages", "gauge", "Cross-process messages waiting to be published."),
    Spec("realtime_cluster_messages_published_total", "counter", "Messages handed to the channel layer.", ("type",)),
    Spec("realtime_cluster_messages_received_total", "counter", "Messages received from the channel layer.", ("type",)),
    Spec("realtime_cluster_messages_dropped_total", "counter", "Cross-process messages lost, by reason.", ("reason",)),
    Spec("realtime_cluster_layer_errors_total", "counter", "Channel-layer calls that failed."),
    Spec("realtime_cluster_reconnects_total", "counter", "Times the channel layer came back after an outage."),
    Spec("realtime_cluster_messages_retried_total", "counter", "Messages published again after the layer failed them."),
    Spec(
        "realtime_cluster_duplicates_total",
        "counter",
        "Messages received twice (a retried publish that had landed) and dropped.",
    ),
    Spec(
        "realtime_cluster_forwarded_total",
        "counter",
        "Requests forwarded to the process owning their session.",
        ("kind",),
    ),
    # connection state recovery
    Spec("realtime_recovery_saved_total", "counter", "Socket states written for connection state recovery."),
    Spec("realtime_recovery_restored_total", "counter", "Sockets recovered with their id, rooms and missed events."),
    Spec("realtime_recovery_expired_total", "counter", "Recovery attempts whose state had expired or was unknown."),
)
SPECS = {spec.name: spec for spec in CATALOGUE}


class Histogram:
    """Counts per bucket (the last one is +Inf) and their sum, as Prometheus's histogram wants them."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # a value equal to a bound belongs to that bucket (Prometheus's "le")
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)


class EventStats:
    """One (namespace label, event label) pair: what the server counts for it, found once per event."""

    __slots__ = ("acks", "duration", "event", "namespace", "received")

    def __init__(self, namespace: str, event: str) -> None:
        self.namespace = namespace
        self.event = event
        self.received = 0
        self.acks = 0
        self.duration = Histogram(HANDLER_BUCKETS)


class Metrics:
    """This process's counters (the runtime owns one); read by the exporter and the dashboard."""

    def __init__(self, timed: bool = True) -> None:
        # REALTIME["METRICS"]: False leaves handler and ack timings out (the only counting that reads a clock)
        self.timed = timed
        # series that exist before their first count: Prometheus's rate() sees no jump from "absent"
        # to N, so a fixed label set starts at 0 (and a namespace's, when it is first used: label_namespace)
        self.handshakes: dict[str, int] = {"polling": 0, "websocket": 0}
        self.refusals: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        self.disconnects: dict[str, int] = {}
        self.connects: dict[str, int] = {}
        self.events: dict[tuple[str, str], EventStats] = {}
        self.ack_rtt: dict[str, Histogram] = {}
        self.ack_timeouts: dict[str, int] = {}
        self.broadcasts: dict[str, int] = {}
        self.deliveries: dict[str, int] = {}
        self.volatile_dropped: dict[str, int] = {}
        self.slow_clients = 0
        self.bytes_in: dict[str, int] = {"polling": 0, "websocket": 0}
        self.bytes_out: dict[str, int] = {"polling": 0, "websocket": 0}
        self.published: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.layer_errors = 0
        self.reconnects = 0
        self.retried = 0
        self.duplicates = 0
        self.forwarded: dict[str, int] = {"poll": 0, "websocket": 0}
        self.recovery_saved = 0
        self.recovery_restored = 0
        self.recovery_expired = 0
        # namespace name -> its label: a static namespace's name, a dynamic one's pattern
        self.namespace_labels: dict[str, str] = {}

    # -- counting -------------------------------------------------------------------------------
    def refused(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def event(self, namespace: str, event: str) -> EventStats:
        """The stats of one (namespace label, event label) pair, made on first use."""
        key = (namespace, event)
        stats = self.events.get(key)
        if stats is None:
            stats = self.events[key] = EventStats(namespace, event)
        return stats

    def ack_answered(self, namespace: str, seconds: float) -> None:
        histogram = self.ack_rtt.get(namespace)
        if histogram is None:
            histogram = self.ack_rtt[namespace] = Histogram(ACK_BUCKETS)
        histogram.observe(seconds)

    def namespace_label(self, name: str) -> str:
        return self.namespace_labels.get(name, name)

    def label_namespace(self, name: str, label: str, events: Iterable[str]) -> dict[str, EventStats]:
        """A namespace is first used: its label, its series at 0, and its events' stats by event name.

        The namespace instance keeps the table, so the server finds an event's stats with one dict
        lookup (an undeclared name is not in it: the caller takes ``other``'s).
        """
        self.namespace_labels[name] = label
        for table in (self.connects, self.broadcasts, self.deliveries, self.volatile_dropped, self.ack_timeouts):
            table.setdefault(label, 0)
        return {event: self.event(label, event) for event in (*events, OTHER)}

    # -- reading --------------------------------------------------------------------------------
    def counters(self) -> Iterator[tuple[str, tuple[str, ...], float]]:
        """Every counter sample: (metric name, label values in the catalogue's order, value)."""
        for name, table in (
            ("realtime_handshakes_total", self.handshakes),
            ("realtime_refusals_total", self.refusals),
            ("realtime_disconnects_total", self.disconnects),
            ("realtime_connects_total", self.connects),
            ("realtime_emit_with_ack_timeouts_total", self.ack_timeouts),
            ("realtime_broadcasts_total", self.broadcasts),
            ("realtime_deliveries_total", self.deliveries),
            ("realtime_volatile_dropped_total", self.volatile_dropped),
            ("realtime_received_bytes_total", self.bytes_in),
            ("realtime_sent_bytes_total", self.bytes_out),
            ("realtime_cluster_messages_published_total", self.published),
            ("realtime_cluster_messages_received_total", self.received),
            ("realtime_cluster_messages_dropped_total", self.dropped),
            ("realtime_cluster_forwarded_total", self.forwarded),
        ):
            for label, value in list(table.items()):
                yield name, (label,), value
        for (namespace, event), stats in list(self.events.items()):
            yield "realtime_events_received_total", (namespace, event), stats.received
            yield "realtime_acks_sent_total", (namespace, event), stats.acks
        yield "realtime_slow_clients_closed_total", (), self.slow_clients
        yield "realtime_cluster_layer_errors_total", (), self.layer_errors
        yield "realtime_cluster_reconnects_total", (), self.reconnects
        yield "realtime_cluster_messages_retried_total", (), self.retried
        yield "realtime_cluster_duplicates_total", (), self.duplicates
        yield "realtime_recovery_saved_total", (), self.recovery_saved
        yield "realtime_recovery_restored_total", (), self.recovery_restored
        yield "realtime_recovery_expired_total", (), self.recovery_expired

    def histograms(self) -> Iterator[tuple[str, tuple[str, ...], Histogram]]:
        for (namespace, event), stats in list(self.events.items()):
            if event != OTHER:  # nothing runs for an event without a handler: nothing to time
                yield "realtime_handler_duration_seconds", (namespace, event), stats.duration
        for namespace, histogram in list(self.ack_rtt.items()):
            yield "realtime_emit_with_ack_duration_seconds", (namespace,), histogram

    def messages(self) -> tuple[int, int]:
        """(events received, messages sent: deliveries and acks), the admin dashboard's two lines."""
        received = sum(stats.received for stats in self.events.values())
        sent = sum(self.deliveries.values()) + sum(stats.acks for stats in self.events.values())
        return received, sent
