"""realtime/grafana/realtime.json: an importable dashboard whose every query names metrics realtime exports.

No server here: tests/e2e/test_prometheus.py runs the same expressions through a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from realtime.metrics import CATALOGUE, SPECS

DASHBOARD = Path(__file__).resolve().parent.parent / "realtime" / "grafana" / "realtime.json"

# What a histogram is exposed as besides its name (prometheus_client's and Prometheus's convention).
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
# PromQL words that are not metric names: keywords, binary operators, aggregation modifiers.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
KEYWORDS |= {"inf", "nan", "atan2"}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside a collapsed row included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def panel_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query on the dashboard; shared with tests/e2e/test_prometheus.py."""
    return [
        (panel["title"], target["expr"])
        for panel in all_panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: what is left once strings, matchers, ranges and groupings go.

    A name followed by ``(`` is a function or an aggregation (``rate``, ``sum``); ``by (le, namespace)``
    lists labels, not metrics.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, which may hold anything
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        name, call = match.groups()
        if call is None and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def catalogued(name: str) -> bool:
    if name in SPECS:
        return True
    for suffix in HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and base in SPECS and SPECS[base].kind == "histogram":
            return True
    return False


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SERIES:
        if name.endswith(suffix) and name.removesuffix(suffix) in SPECS:
            return name.removesuffix(suffix)
    return name


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load()


def test_it_is_a_grafana_dashboard_with_panels(dashboard):
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"] and dashboard["uid"]
    panels = list(all_panels(dashboard["panels"]))
    queried = [p for p in panels if p["type"] != "row"]
    assert len(queried) >= 15
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in queried:
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip(), panel["title"]


def test_template_variables_are_declared_and_used(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("instance", "namespace"):
        assert variables[name]["type"] == "query" and variables[name]["allValue"] == ".*"
        selector, label = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variables[name]["definition"]).groups()
        assert label == name
        assert metric_names(selector) and all(catalogued(m) for m in metric_names(selector)), selector
    used = {m for _, expr in panel_expressions(dashboard) for m in re.findall(r"\$\{?(\w+)", expr)}
    assert used - {"__rate_interval", "__interval"} <= set(variables), used


def test_every_expression_names_catalogued_metrics_only(dashboard):
    unknown = []
    for title, expr in panel_expressions(dashboard):
        names = metric_names(expr)
        assert names, f"{title}: no metric found in {expr!r}"
        unknown += [(title, name) for name in names if not catalogued(name)]
    assert unknown == []


def test_every_catalogued_metric_has_a_panel(dashboard):
    shown = {base_name(name) for _, expr in panel_expressions(dashboard) for name in metric_names(expr)}
    assert {spec.name for spec in CATALOGUE} - shown == set()


def test_histograms_are_read_as_quantiles_over_bucket_rates(dashboard):
    """A histogram's buckets only mean something as ``histogram_quantile`` over a rate, grouped by ``le``."""
    for title, expr in panel_expressions(dashboard):
        if "_bucket" in expr:
            assert re.search(r"histogram_quantile\(0\.\d+, sum by \(le\b[^)]*\) \(rate\(\w+_bucket\{", expr), title
            assert "[$__rate_interval]" in expr, title


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (namespace) (rate(realtime_events_received_total{event="x"}[$__rate_interval]))',
            {"realtime_events_received_total"},
        ),
        ("histogram_quantile(0.99, sum by (le) (rate(a_bucket[1m])))", {"a_bucket"}),
        ('a / on (instance) group_left b{c=~"d(e)"} offset 5m', {"a", "b"}),
        ('max by (instance) (x{instance=~"$instance"}) > bool 0', {"x"}),
    ],
)
def test_metric_names_are_found(expr, names):
    assert metric_names(expr) == names


def test_an_unknown_metric_is_caught():
    assert not catalogued("realtime_events_total")
    assert not catalogued("realtime_sessions_bucket")  # a gauge has no buckets
    assert catalogued("realtime_handler_duration_seconds_bucket")
