"""The soak's servers (tests/soak/run.py): production heartbeat, the soak namespace, limits raised.

Based on tests/settings.py, with what 5,000 clients from one IP need: the
default 25 s / 20 s heartbeat (the suite's 400 ms one would be 12,500 pings a
second), one namespace whose handlers keep no per-client state after a
disconnect (tests/sockets.py records every disconnect, which would grow with
the reconnects and read as a leak), quiet logs, and per-IP limits raised far
past 5,000 connections (tests/limits.py, only for limits that exist).
"""

import os

from project.settings import BASE_DIR
from tests.limits import raised_limits
from tests.settings import *  # noqa: F403

SOAK_DB = os.environ.get("REALTIME_SOAK_DB", str(BASE_DIR / "tests" / "artifacts" / "soak.sqlite3"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SOAK_DB,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}
DEBUG = False

REALTIME = {
    "PING_INTERVAL": 25_000,
    "PING_TIMEOUT": 20_000,
    "CONNECT_TIMEOUT": 45_000,
    "CLUSTER_TIMEOUT": 5_000,
    "NAMESPACES": ["tests.soak.sockets.Soak"],
    **raised_limits(),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    # INFO: cluster events ("peer ... joined"), warnings and errors; no per-session lines
    "loggers": {"realtime": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
