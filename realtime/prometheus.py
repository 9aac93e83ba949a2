"""Prometheus's view of realtime.metrics, through prometheus-client.

The runtime counts in plain integers (realtime/metrics.py says why); this
module copies them into prometheus_client's metric objects when they are read:

* **One process per port** (daphne, uvicorn): one registry per process, brought
  up to date at each scrape, so a scrape always sees the counts of that moment.
* **gunicorn's workers** share a port, and a scrape reaches one of them at
  random, so each must answer for all: with ``PROMETHEUS_MULTIPROC_DIR`` set,
  prometheus_client keeps every worker's values in files there and a scrape
  sums them (its multiprocess mode). Each worker copies its counts to its files
  every ``METRICS_FLUSH_INTERVAL`` ms, and at once before answering a scrape;
  ``gunicorn -c python:realtime.gunicorn`` sets the directory up and clears a
  dead worker's gauges (realtime/gunicorn.py).

Counters go up by what changed since the last copy, gauges are set from the live
state (sessions, sockets, the cluster), histograms get each bucket's increase.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sys
from typing import Any, Literal

from django.apps import apps
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .conf import realtime_settings
from .metrics import CATALOGUE, Spec
from .metrics import Histogram as Buckets
from .runtime import Runtime, current

logger = logging.getLogger("realtime.metrics")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# What generate_latest writes: the classic text format. Not CONTENT_TYPE_LATEST, which since
# prometheus-client 0.22 says version=1.0.0, a format negotiated through the scraper's Accept header
# (escaping=...) that generate_latest's default output is not; prometheus_client's own handlers say 0.0.4.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# How a gauge of several gunicorn workers adds up (prometheus_client's multiprocess modes): counts of
# sessions and queues are summed over the live workers; "ready" and "layer up" hold only if they hold
# for every worker; "untrusted proxy" and peers are each worker's own view, the largest wins.
GaugeMode = Literal["livesum", "livemin", "livemax"]
GAUGE_MODES: dict[str, GaugeMode] = {
    "realtime_ready": "livemin",
    "realtime_cluster_layer_up": "livemin",
    "realtime_untrusted_proxy": "livemax",
    "realtime_cluster_peers": "livemax",
}

Key = tuple[str, tuple[str, ...]]


class Exporter:
    """This process's Prometheus metrics: prometheus_client's objects, kept level with the runtime's counts."""

    def __init__(self, runtime: Runtime, requires_layer: bool = False, multiprocess: bool | None = None) -> None:
        self.runtime = runtime
        self.requires_layer = requires_layer
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV)) if multiprocess is None else multiprocess
        # multiprocess: the values live in the shared files and a scrape reads them all, not a registry
        self.registry = None if self.multiprocess else CollectorRegistry()
        # no "<name>_created" series beside every counter and histogram: in the text format Prometheus
        # scrapes they double the series for a timestamp nobody queries (prometheus_client's switch is global)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.metrics: dict[str, Any] = {spec.name: self._make(spec) for spec in CATALOGUE}
        if self.registry is not None:
            ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        self._counted: dict[Key, float] = {}
        self._buckets: dict[Key, tuple[list[int], float]] = {}
        self._gauges: dict[str, set[tuple[str, ...]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def _make(self, spec: Spec) -> Any:
        options: dict[str, Any] = {"labelnames": spec.labels, "registry": self.registry}
        if spec.kind == "counter":
            return Counter(spec.name.removesuffix("_total"), spec.help, **options)
        if spec.kind == "histogram":
            return Histogram(spec.name, spec.help, buckets=spec.buckets, **options)
        return Gauge(spec.name, spec.help, multiprocess_mode=GAUGE_MODES.get(spec.name, "livesum"), **options)

    def _child(self, name: str, labels: tuple[str, ...]) -> Any:
        metric = self.metrics[name]
        return metric.labels(*labels) if labels else metric

    # -- copying the runtime's counts ------------------------------------------------------
    def sync(self) -> None:
        """Bring prometheus_client's values level with the runtime's (on the runtime's event loop)."""
        counts = self.runtime.metrics
        counted = self._counted
        for name, labels, value in counts.counters():
            key = (name, labels)
            before = counted.get(key)
            if before is None:  # a new series, at 0 if nothing was counted yet: rate() sees its first jump
                self._child(name, labels).inc(value)
                counted[key] = value
            elif value > before:
                self._child(name, labels).inc(value - before)
                counted[key] = value
        for name, labels, histogram in counts.histograms():
            self._sync_histogram(name, labels, histogram)
        for name, values in self.runtime.gauges(self.requires_layer).items():
            self._sync_gauge(name, values)

    def _sync_histogram(self, name: str, labels: tuple[str, ...], histogram: Buckets) -> None:
        """Each bucket's increase, and the sum's (prometheus_client has no public call that adds counts)."""
        key = (name, labels)
        before, total = self._buckets.get(key, ([0] * len(histogram.counts), 0.0))
        now = list(histogram.counts)
        if now == before and key in self._buckets:
            return
        child = self._child(name, labels)
        for index, (old, new) in enumerate(zip(before, now, strict=True)):
            if new > old:
                child._buckets[index].inc(new - old)
        child._sum.inc(histogram.total - total)
        self._buckets[key] = (now, histogram.total)

    def _sync_gauge(self, name: str, values: dict[tuple[str, ...], float]) -> None:
        """Set each series; one that went away (a namespace emptied) is set to 0 rather than left stale."""
        seen = self._gauges.setdefault(name, set())
        for labels in seen - set(values):
            self._child(name, labels).set(0)
        for labels, value in values.items():
            self._child(name, labels).set(value)
            seen.add(labels)

    # -- reading ---------------------------------------------------------------------------------
    async def scrape(self) -> bytes:
        """The text exposition: this process's (or, under gunicorn, every worker's) metrics now."""
        self.sync()
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return await asyncio.to_thread(generate_latest, registry)  # reads every worker's files

    def start_flushing(self, interval: float) -> None:
        """Under gunicorn: copy this worker's counts to the shared files every ``interval`` seconds."""
        if not self.multiprocess:
            if _under_gunicorn():
                logger.warning(
                    "realtime metrics under gunicorn without %s: each scrape sees one worker's counts only "
                    "(run gunicorn with -c python:realtime.gunicorn, README, Operating)",
                    MULTIPROCESS_ENV,
                )
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(interval), context=contextvars.Context())

    async def _flush(self, interval: float) -> None:
        # a copy at once, then one per interval: until its first copy, a worker's files hold
        # prometheus_client's initial 0 for "ready" and "layer up", and their livemin would make
        # every scrape of the whole server read "not ready" for the first interval of each new worker
        while True:
            try:
                self.sync()
            except Exception:  # never let the metrics take the process down
                logger.exception("copying the metrics to %s failed", os.environ.get(MULTIPROCESS_ENV))
            await asyncio.sleep(interval)


def process_exporter() -> Exporter:
    """This process's exporter, made on first use (the app config keeps it, as it keeps the registry).

    Not at start-up: under gunicorn a metric object creates its worker's files, and a
    ``manage.py`` command or a Celery worker on the same settings has nothing to export.
    """
    config = apps.get_app_config("realtime")
    exporter = getattr(config, "exporter", None)
    if not isinstance(exporter, Exporter):
        settings = realtime_settings()
        exporter = Exporter(current(), requires_layer=settings["READINESS_REQUIRES_LAYER"] is True)
        config.exporter = exporter  # type: ignore[attr-defined]
    return exporter


def start(runtime: Runtime) -> None:
    """The process serves: under gunicorn, start copying its counts to the shared files (METRICS on)."""
    settings = realtime_settings()
    if settings["METRICS"] is True:
        process_exporter().start_flushing(settings["METRICS_FLUSH_INTERVAL"] / 1000)


def _under_gunicorn() -> bool:
    """A gunicorn worker: its siblings share the port, and a scrape reaches any one of them."""
    return "gunicorn.arbiter" in sys.modules and "gunicorn.workers" in sys.modules
