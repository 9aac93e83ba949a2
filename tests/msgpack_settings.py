"""tests/settings.py with REALTIME["PARSER"] = "msgpack" (tests/e2e/test_parser_msgpack.py)."""

from tests.settings import *  # noqa: F403
from tests.settings import REALTIME as _BASE

REALTIME = {**_BASE, "PARSER": "msgpack"}
