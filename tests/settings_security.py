"""Settings for tests/e2e/test_security.py's server: the test settings, made permissive and loud.

- ``CORS_ALLOWED_ORIGINS`` holds ``"*"`` and one named origin: anyone may connect,
  only the named origin (and the same origin) with cookies.
- ``ALLOWED_HOSTS`` is empty with ``DEBUG`` on: Django's implicit localhost allowance.
- ``SECURE_PROXY_SSL_HEADER`` is set: ``X-Forwarded-Proto: https`` makes a request https.
- Packets are logged at DEBUG, so the test can prove no secret reaches the log.
- Bad-input warnings are limited to 3 lines per kind per 2 s.
- ``REALTIME_TEST_ALLOW_REQUEST`` picks the ALLOW_REQUEST hook (sync by default).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import LOGGING, REALTIME

DEBUG = True
ALLOWED_HOSTS: list[str] = []
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REALTIME = {
    **REALTIME,
    "CORS_ALLOWED_ORIGINS": ["*", "http://listed.example"],
    "ALLOW_REQUEST": os.environ.get("REALTIME_TEST_ALLOW_REQUEST", "tests.security_hooks.allow"),
    "LOG_RATE_LINES": 3,
    "LOG_RATE_INTERVAL": 2_000,
}

# The realtime loggers at DEBUG, packets included: the test proves no secret reaches the log.
# (Django's own django.db.backends logs SQL parameters at DEBUG, session keys among them: that is
# Django's to keep quiet, and is not turned on here.)
LOGGING = {**LOGGING, "loggers": {"realtime": {"handlers": ["console"], "level": "DEBUG", "propagate": False}}}
