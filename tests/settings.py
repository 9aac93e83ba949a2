"""Settings for the test suite's server processes: the project's, with a fast heartbeat."""

from project.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

REALTIME = {
    "PING_INTERVAL": 400,
    "PING_TIMEOUT": 300,
    "MAX_PAYLOAD": 1_000_000,
    "UPGRADE_TIMEOUT": 2_000,
    "CORS_ALLOWED_ORIGINS": ["http://allowed.example"],
    "CONNECT_TIMEOUT": 1_000,
    "HEARTBEAT_INTERVAL": 300,
    "CLUSTER_TIMEOUT": 2_000,
    "NAMESPACES": [
        "tests.sockets.Main",
        "tests.sockets.Refusing",
        "tests.sockets.Guarded",
        "tests.sockets.Teams",
        "tests.sockets.CatchAll",
        "tests.sockets.Cluster",
        "tests.sockets",
    ],
}
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
