"""Settings for the test suite's server processes: the project's, with a fast heartbeat."""

import os

from project.settings import *  # noqa: F403
from project.settings import BASE_DIR

# One SQLite file per test run, shared by the pytest process and every server process it starts
# (they inherit REALTIME_TEST_DB): pytest-django creates and migrates it once (django_db_setup,
# TEST NAME = NAME), the servers read and write the same rows. WAL lets readers and the registry's
# writers of several processes work at once; IMMEDIATE takes the write lock up front instead of
# failing a transaction halfway with "database is locked".
TEST_DB = os.environ.setdefault("REALTIME_TEST_DB", str(BASE_DIR / "tests" / "artifacts" / f"db-{os.getpid()}.sqlite3"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": TEST_DB,
        "TEST": {"NAME": TEST_DB},
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}
# Users are created by the hundred in tests; the servers check the same cheap hashes.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REALTIME = {
    "PING_INTERVAL": 400,
    "PING_TIMEOUT": 300,
    "MAX_PAYLOAD": 1_000_000,
    "UPGRADE_TIMEOUT": 2_000,
    "CORS_ALLOWED_ORIGINS": ["http://allowed.example"],
    "CONNECT_TIMEOUT": 1_000,
    "HEARTBEAT_INTERVAL": 300,
    "CLUSTER_TIMEOUT": 2_000,
    # a dashboard sample per second, so the chart has points within a test
    "METRICS_INTERVAL": 1_000,
    # every test client comes from 127.0.0.1, hundreds a second: tests/e2e/test_limits.py tests the defaults
    "MAX_CONNECTIONS_PER_IP": 10_000,
    "HANDSHAKE_RATE_PER_IP": "10000/s",
    # every refusal gets its line: tests wait for them (tests/e2e/test_security.py checks the limit)
    "LOG_RATE_LINES": 100_000,
    "NAMESPACES": [
        "tests.sockets.Main",
        "tests.sockets.Refusing",
        "tests.sockets.Guarded",
        "tests.sockets.Teams",
        "tests.sockets.CatchAll",
        "tests.sockets.Cluster",
        "tests.sockets.Private",
        "tests.sockets.Staff",
        "tests.sockets.Ops",
        "tests.sockets.Hardening",
        "tests.sockets.Zombie",
        "tests.sockets.Gaps",
        "tests.sockets",
    ],
}
# Socket.IO v2 clients (tests/e2e/test_eio3.py); that file starts one server with it off
REALTIME["ALLOW_EIO3"] = os.environ.get("REALTIME_ALLOW_EIO3", "1") == "1"
# tests/e2e/test_recovery.py starts clusters with connection state recovery on
if os.environ.get("REALTIME_RECOVERY") == "1":
    REALTIME["CONNECTION_STATE_RECOVERY"] = {"MAX_DISCONNECTION_DURATION": 120_000, "SKIP_MIDDLEWARES": True}
    # its Chromium page is served by the proxy: another origin than the backend's own Host
    REALTIME["CORS_ALLOWED_ORIGINS"] = [*REALTIME["CORS_ALLOWED_ORIGINS"], "*"]
# Tests with many proxied polling clients give them a longer pong deadline (a loaded machine)
if os.environ.get("REALTIME_PING_TIMEOUT"):
    REALTIME["PING_TIMEOUT"] = int(os.environ["REALTIME_PING_TIMEOUT"])
# tests/e2e/test_cluster_faults.py runs a cluster with a small cross-process queue
if os.environ.get("REALTIME_CLUSTER_QUEUE_BYTES"):
    REALTIME["CLUSTER_QUEUE_BYTES"] = int(os.environ["REALTIME_CLUSTER_QUEUE_BYTES"])
# tests/e2e/test_room_policy.py starts one server that admits declared rooms only
REALTIME["REQUIRE_DECLARED_ROOMS"] = os.environ.get("REALTIME_REQUIRE_DECLARED_ROOMS") == "1"
# The native clients' scenarios (tests/clients/, tests/e2e/test_clients_native.py).
REALTIME["NAMESPACES"] += ["tests.native_scenarios.NativeScenarios", "tests.native_scenarios.NativeSecond"]
# tests/e2e/test_admin_ui.py: the official admin UI, its page served from another origin
if os.environ.get("REALTIME_ADMIN_UI_ORIGIN"):
    REALTIME["ADMIN_UI"] = {"NAMESPACE": "/admin"}
    REALTIME["CORS_ALLOWED_ORIGINS"] = [*REALTIME["CORS_ALLOWED_ORIGINS"], os.environ["REALTIME_ADMIN_UI_ORIGIN"]]
# The router's operator endpoints on every test server: probes and the Prometheus scrape (tests/e2e/test_operating.py)
REALTIME.update({"LIVENESS_PATH": "healthz", "READINESS_PATH": "readyz", "METRICS_PATH": "metrics"})
REALTIME["READINESS_REQUIRES_LAYER"] = os.environ.get("REALTIME_READINESS_REQUIRES_LAYER") == "1"
# The demo chat at /chat, which tests/e2e/test_browser.py drives in Chromium.
REALTIME["NAMESPACES"] = [*REALTIME.get("NAMESPACES", []), "project.sockets.Chat"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # Session lifecycle at DEBUG so tests can read close reasons; packets stay quiet.
        "realtime": {"handlers": ["console"], "level": "DEBUG", "propagate": False},
        "realtime.engineio.packets": {"level": "INFO"},
        "realtime.socketio.packets": {"level": "INFO"},
    },
}

ROOT_URLCONF = "tests.urls"
