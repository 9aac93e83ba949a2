"""Settings for the test suite's server processes: the project's, with a fast heartbeat."""

from project.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

REALTIME = {
    "PING_INTERVAL": 400,
    "PING_TIMEOUT": 300,
    "MAX_PAYLOAD": 1_000_000,
    "UPGRADE_TIMEOUT": 2_000,
    "CORS_ALLOWED_ORIGINS": ["http://allowed.example"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # Session lifecycle at DEBUG so tests can read close reasons; packets stay quiet.
        "realtime": {"handlers": ["console"], "level": "DEBUG", "propagate": False},
        "realtime.engineio.packets": {"level": "INFO"},
    },
}
