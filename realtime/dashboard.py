"""What the admin dashboard shows: live totals from the registry and a chart drawn from its samples.

The chart is an inline SVG computed here (polyline points and axis labels):
no JavaScript library to ship, and it renders wherever the admin does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from .conf import realtime_settings
from .models import Connection, Sample, ServerProcess
from .registry import live_horizon

RANGES = (5, 15, 60)  # minutes the operator may pick
COLUMNS = 120
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 960, 200, 56, 24, 12


def live_connections() -> QuerySet[Connection]:
    """Registry rows of processes that are alive (dead ones are hidden before they are reaped)."""
    return Connection.objects.filter(server__last_seen__gte=live_horizon())


def totals() -> dict[str, Any]:
    live = live_connections()

    def by(field: str) -> list[dict[str, Any]]:
        return list(live.values(field).annotate(count=Count("pk")).order_by("-count", field))

    servers = ServerProcess.objects.filter(last_seen__gte=live_horizon()).annotate(count=Count("connections"))
    return {
        "total": live.count(),
        "by_namespace": by("namespace"),
        "by_transport": by("transport"),
        "by_server": [{"server": s.ident, "key": s.key, "count": s.count} for s in servers],
    }


@dataclass(frozen=True)
class Line:
    label: str
    css: str
    points: str
    last: str


@dataclass(frozen=True)
class Chart:
    title: str
    lines: list[Line]
    y_labels: list[tuple[float, str]]  # (y pixel, text)
    x_labels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM
    right: int = WIDTH - 8


def charts(minutes: int, now: datetime | None = None) -> list[Chart]:
    """Connections, and messages per second in and out, over the last ``minutes``, cluster-wide."""
    now = now or timezone.now()
    step = max(minutes * 60 / COLUMNS, realtime_settings()["METRICS_INTERVAL"] / 1000)
    columns = max(1, int(minutes * 60 / step))
    start = now - timedelta(seconds=columns * step)
    connections: list[float | None] = [None] * columns
    latest: dict[tuple[int, str], tuple[datetime, int]] = {}
    messages_in, messages_out = [0.0] * columns, [0.0] * columns
    for sample in Sample.objects.filter(at__gte=start, at__lt=now).order_by("at"):
        column = min(columns - 1, int((sample.at - start).total_seconds() // step))
        latest[(column, sample.server)] = (sample.at, sample.connections)
        messages_in[column] += sample.messages_in / step
        messages_out[column] += sample.messages_out / step
    per_column: dict[int, float] = defaultdict(float)
    for (column, _server), (_at, count) in latest.items():
        per_column[column] += count
    for column, total in per_column.items():
        connections[column] = total
    x_labels = _x_labels(minutes, columns)
    return [
        _chart("Connections", [("connections", "conn", connections)], x_labels, columns),
        _chart(
            "Messages per second",
            [("in", "in", list(messages_in)), ("out", "out", list(messages_out))],
            x_labels,
            columns,
        ),
    ]


def _chart(
    title: str, series: list[tuple[str, str, Sequence[float | None]]], x_labels: list[tuple[float, str]], columns: int
) -> Chart:
    peak = max([v for _, _, values in series for v in values if v is not None] + [0])
    top = _nice(peak)
    lines = []
    for label, css, values in series:
        points = " ".join(f"{_x(i, columns):.1f},{_y(v, top):.1f}" for i, v in enumerate(values) if v is not None)
        present = [v for v in values if v is not None]
        lines.append(Line(label, css, points, _fmt(present[-1]) if present else "0"))
    y_labels = [(_y(top * f, top), _fmt(top * f)) for f in (0, 0.5, 1)]
    return Chart(title, lines, y_labels, x_labels)


def _x(column: int, columns: int) -> float:
    span = WIDTH - 8 - LEFT
    return LEFT + (column + 0.5) * span / columns


def _y(value: float, top: float) -> float:
    usable = HEIGHT - BOTTOM - TOP
    return HEIGHT - BOTTOM - (value / top) * usable if top else HEIGHT - BOTTOM


def _x_labels(minutes: int, columns: int) -> list[tuple[float, str]]:
    return [
        (_x(int((columns - 1) * f), columns), f"-{minutes * (1 - f):g} min" if f < 1 else "now") for f in (0, 0.5, 1)
    ]


def _nice(peak: float) -> float:
    """A round axis maximum at or above ``peak`` (1, 2 or 5 times a power of ten)."""
    if peak <= 0:
        return 1
    magnitude = 10 ** (len(str(int(peak))) - 1) if peak >= 1 else 1
    for factor in (1, 2, 5, 10):
        if peak <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
