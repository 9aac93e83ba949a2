"""System checks reject bad REALTIME values with a clear message."""

import pytest
from django.core.checks import run_checks

from realtime.conf import realtime_settings


def ids(messages):
    return sorted(m.id for m in messages if m.id and m.id.startswith("realtime."))


def test_the_defaults_pass(settings):
    settings.REALTIME = {}
    assert ids(run_checks()) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not a dict", ["realtime.E001"]),
        ({"PING_INTERVAL": 0}, ["realtime.E002"]),
        ({"PING_TIMEOUT": "20s"}, ["realtime.E002"]),
        ({"MAX_PAYLOAD": True}, ["realtime.E002"]),
        ({"TRANSPORTS": []}, ["realtime.E003"]),
        ({"TRANSPORTS": ["polling", "flash"]}, ["realtime.E003"]),
        ({"CORS_ALLOWED_ORIGINS": "*"}, ["realtime.E004"]),
        ({"CORS_ALLOWED_ORIGINS": ["example.com"]}, ["realtime.E004"]),
        ({"CORS_ALLOWED_ORIGINS": ["https://example.com/path"]}, ["realtime.E004"]),
        ({"PATH": "/socket.io/"}, ["realtime.E005"]),
        ({"PING_INTERVALL": 1000}, ["realtime.W001"]),
        ({"CORS_ALLOWED_ORIGINS": ["*"]}, ["realtime.W002"]),
        ({"CORS_ALLOWED_ORIGINS": ["https://example.com", "*"]}, ["realtime.W002"]),
        ({"ALLOW_REQUEST": "tests.security_hooks.no_such_hook"}, ["realtime.E009"]),
        ({"ALLOW_REQUEST": "tests.security_hooks.NOT_CALLABLE"}, ["realtime.E009"]),
        ({"ALLOW_REQUEST": True}, ["realtime.E009"]),
        ({"LOG_RATE_LINES": 0}, ["realtime.E002"]),
        ({"LOG_RATE_INTERVAL": "10s"}, ["realtime.E002"]),
        ({"ADMIN_UI": "/admin"}, ["realtime.E011"]),
        ({"CLUSTER_QUEUE_AGE": 0}, ["realtime.E002"]),
        ({"CLUSTER_QUEUE_AGE": 5_000}, ["realtime.W003"]),
        ({"ADMIN_UI": {"NAMESPACE": "admin"}}, ["realtime.E011"]),
        ({"ADMIN_UI": {"PASSWORD": "secret"}}, ["realtime.E011"]),
        ({"ADMIN_UI": {"SESSION_TTL": 0}}, ["realtime.E011"]),
        ({"METRICS": "yes"}, ["realtime.E008"]),
        ({"TRACING": 1}, ["realtime.E008"]),
        ({"READINESS_REQUIRES_LAYER": None}, ["realtime.E008"]),
        ({"METRICS_FLUSH_INTERVAL": 0}, ["realtime.E002"]),
        ({"METRICS_ALLOWED_IPS": "127.0.0.1"}, ["realtime.E014"]),
        ({"METRICS_ALLOWED_IPS": ["127.0.0.1", "localhost"]}, ["realtime.E014"]),
        ({"METRICS_ALLOWED_IPS": ["10.0.0.0/33"]}, ["realtime.E014"]),
        ({"METRICS_PATH": "/metrics"}, ["realtime.E015"]),
        ({"LIVENESS_PATH": ""}, ["realtime.E015"]),
        ({"READINESS_PATH": "socket.io"}, ["realtime.E015"]),
        ({"LIVENESS_PATH": "probe", "READINESS_PATH": "probe"}, ["realtime.E015"]),
    ],
)
def test_bad_values_are_reported(settings, value, expected):
    settings.REALTIME = value
    messages = run_checks()
    assert ids(messages) == expected
    assert all(m.msg for m in messages)


def test_good_values_pass(settings):
    settings.REALTIME = {
        "TRANSPORTS": ["websocket"],
        "CORS_ALLOWED_ORIGINS": ["https://example.com", "http://localhost:3000"],
        "PATH": "realtime/io",
        "ALLOW_REQUEST": "tests.security_hooks.allow",
        "LOG_RATE_LINES": 5,
        "LOG_RATE_INTERVAL": 1_000,
        "ADMIN_UI": {"NAMESPACE": "/ops-ui", "READONLY": True, "EVENTS": False, "SESSION_TTL": 3_600_000},
        "METRICS_PATH": "metrics",
        "LIVENESS_PATH": "healthz",
        "READINESS_PATH": "ops/ready",
        "METRICS_ALLOWED_IPS": ["127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8"],
        "TRACING": True,
        "READINESS_REQUIRES_LAYER": True,
    }
    assert ids(run_checks()) == []


def test_tracing_without_opentelemetry_names_the_extra(settings, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # as if opentelemetry-api were not installed
    settings.REALTIME = {"TRACING": True}
    (error,) = [m for m in run_checks() if m.id == "realtime.E016"]
    assert "opentelemetry-api" in error.msg and "[otel]" in error.hint


SENTINEL = "channels_redis.pubsub.RedisPubSubChannelLayer"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ({"sentinels": [("10.0.0.1", 26379), ["10.0.0.2", 26379]], "master_name": "mymaster"}, []),
        ({"sentinels": [("10.0.0.1", 26379)]}, ["realtime.E017"]),  # no master_name
        ({"sentinels": [], "master_name": "mymaster"}, ["realtime.E017"]),
        ({"sentinels": ["10.0.0.1:26379"], "master_name": "mymaster"}, ["realtime.E017"]),
        ({"sentinels": [("10.0.0.1", "26379")], "master_name": "mymaster"}, ["realtime.E017"]),
        ({"master_name": "mymaster"}, ["realtime.E017"]),
        ("redis://127.0.0.1:6379/0", []),
        ({"address": "redis://127.0.0.1:6379/0"}, []),
    ],
)
def test_a_sentinel_host_names_its_sentinels_and_its_primary(settings, host, expected):
    settings.REALTIME = {}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": SENTINEL, "CONFIG": {"hosts": [host]}}}
    assert ids(run_checks()) == expected


def test_a_short_outbox_age_says_what_it_loses(settings):
    settings.REALTIME = {"CLUSTER_QUEUE_AGE": 2_000}
    (warning,) = [m for m in run_checks() if m.id == "realtime.W003"]
    assert "Sentinel failover" in warning.msg and "10000" in warning.hint


def test_star_origin_warns_that_it_lets_any_site_in(settings):
    settings.REALTIME = {"CORS_ALLOWED_ORIGINS": ["*"]}
    (warning,) = [m for m in run_checks() if m.id == "realtime.W002"]
    assert "'*'" in warning.msg and "cookies" in warning.hint


def test_settings_are_reread_when_overridden(settings):
    settings.REALTIME = {"PING_INTERVAL": 1234}
    assert realtime_settings()["PING_INTERVAL"] == 1234
    assert realtime_settings()["PING_TIMEOUT"] == 20_000
    settings.REALTIME = {"PING_INTERVAL": 4321}
    assert realtime_settings()["PING_INTERVAL"] == 4321
