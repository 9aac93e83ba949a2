"""The demo project's settings, as `make run` serves them, with REALTIME overrides from the environment.

tests/bench/hardening.py uses it: the defaults as shipped, but for the per-IP
limits that a load generator on 127.0.0.1 would hit.
"""

import json
import os

from project.settings import *  # noqa: F403
from project.settings import REALTIME

REALTIME = {**REALTIME, **json.loads(os.environ.get("REALTIME_BENCH_OVERRIDES", "{}"))}
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("REALTIME_BENCH_DB", "/tmp/realtime-hardening.sqlite3"),
    }
}
