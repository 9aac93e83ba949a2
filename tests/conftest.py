import json
import subprocess
from pathlib import Path

import pytest

from tests.servers import ROOT, ServerProcess

JS = ROOT / "tests" / "js"


@pytest.fixture(scope="session")
def server():
    """The project's ASGI app on daphne, with the fast heartbeat of tests/settings.py."""
    process = ServerProcess("tests.settings", app="tests.asgi:application").start()
    yield process
    process.stop()


@pytest.fixture(params=["polling", "websocket", "upgrade"])
def transport(request):
    """Every behaviour test runs over polling only, WebSocket only, and polling upgraded to WebSocket."""
    return request.param


def run_node(script: str, *args: object, timeout: float = 30) -> dict:
    """Run a Node client script from tests/js; it prints one JSON object as its last line."""
    result = subprocess.run(
        ["node", str(JS / script), *(json.dumps(a) if not isinstance(a, str) else a for a in args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines, f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return json.loads(lines[-1])


@pytest.fixture
def node():
    return run_node


def pytest_configure(config):
    Path(ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
