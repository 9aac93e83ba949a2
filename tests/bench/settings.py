"""realtime under benchmark: the project's settings, quiet, with the benchmark namespace."""

import os

from project.settings import *  # noqa: F403

DEBUG = False
# A real database, so the live-connection registry (on by default) writes as it would in production.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("REALTIME_BENCH_DB", "/tmp/realtime-bench.sqlite3"),
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", "timeout": 20},
    }
}
REALTIME = {
    "NAMESPACES": ["tests.bench.sockets.Bench"],
    "MAX_PAYLOAD": 1_000_000,
    "CONNECT_TIMEOUT": 45_000,
    "CORS_ALLOWED_ORIGINS": ["*"],
    # the load generator opens thousands of connections from 127.0.0.1 at once
    "MAX_CONNECTIONS": 100_000,
    "MAX_CONNECTIONS_PER_IP": 100_000,
    "HANDSHAKE_RATE_PER_IP": None,
}
# tests/bench/metrics_cost.py runs realtime with its metrics on and off
REALTIME["METRICS"] = os.environ.get("REALTIME_BENCH_METRICS", "1") == "1"
if os.environ.get("REDIS_URL"):
    REALTIME["HEARTBEAT_INTERVAL"] = 1_000
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
