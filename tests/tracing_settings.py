"""The test settings with OpenTelemetry spans on (tests/e2e/test_tracing.py; tests/tracing_asgi.py sets up the SDK).

``REALTIME_TRACING=0`` in the environment turns them off again, so one test can show that the same
server, SDK and Django instrumentation included, records no realtime span when tracing is off.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import REALTIME

REALTIME = {
    **REALTIME,
    "TRACING": os.environ.get("REALTIME_TRACING", "1") == "1",
    "NAMESPACES": [*REALTIME["NAMESPACES"], "tests.tracing_sockets.Traced"],
}
ROOT_URLCONF = "tests.tracing_urls"
