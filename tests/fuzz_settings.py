"""The fuzz test's server (tests/e2e/test_fuzz.py): the suite's settings, a calmer heartbeat, high limits.

The suite's 300 ms ping timeout is right for tests that wait for timeouts,
but on two shared cores under fuzzing a well-behaved client could miss it and
count as disturbed for the machine's sake, not the server's. Fuzzed sessions
that never answer a ping still time out within four seconds.
"""

from tests.limits import raised_limits
from tests.settings import *  # noqa: F403
from tests.settings import REALTIME

REALTIME = {**REALTIME, "PING_INTERVAL": 1_000, "PING_TIMEOUT": 3_000, **raised_limits()}
