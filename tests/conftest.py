import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from tests.admin_client import redis_layer
from tests.clients.node import SharedNodeAgent
from tests.cluster import Cluster, ensure_redis_installed
from tests.servers import ROOT, ServerProcess

JS = ROOT / "tests" / "js"
# Debian's Chromium unless CHROMIUM names another (the Makefile exports it; tests/js/browser_*.mjs read it too)
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """pytest-django's fixture, for a database the server processes use too.

    pytest-django creates only the databases that tests marked ``django_db``
    ask for; the servers need the default one whatever the tests are marked.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"}, serialized_aliases=set())
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def server_database(request):
    """Create and migrate the run's SQLite file (tests/settings.py) before any server process starts.

    Only when the run has end-to-end tests: protocol and check tests need no database.
    """
    if any({"e2e", "bench"} & set(item.path.parts) for item in request.session.items):
        request.getfixturevalue("django_db_setup")
    yield
    for suffix in ("-wal", "-shm"):  # left behind by servers that were killed
        Path(settings.DATABASES["default"]["NAME"] + suffix).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def daphne_server(django_db_setup):
    """The project's ASGI app on daphne, with the fast heartbeat of tests/settings.py."""
    process = ServerProcess("tests.settings", app="tests.asgi:application").start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def uvicorn_server(django_db_setup):
    """The same app and settings on uvicorn (its wsproto WebSocket, as tests/servers.py runs it)."""
    process = ServerProcess("tests.settings", app="tests.asgi:application", asgi_server="uvicorn").start()
    yield process
    process.stop()


@pytest.fixture
def server(request):
    """daphne for most end-to-end tests; a module marked ``both_servers`` runs each test on daphne and uvicorn."""
    return request.getfixturevalue(f"{getattr(request, 'param', 'daphne')}_server")


def pytest_generate_tests(metafunc):
    """The Socket.IO behaviour tests (``pytestmark = pytest.mark.both_servers``) take the ASGI server as a parameter."""
    if metafunc.definition.get_closest_marker("both_servers") and "server" in metafunc.fixturenames:
        metafunc.parametrize("server", ["daphne", "uvicorn"], indirect=True)


@pytest.fixture
def orm(django_db_blocker):
    """``await orm(fn, *args)``: run ORM code from an async test, committed at once.

    The server processes read the same database, so tests neither wrap it in a
    transaction nor flush it: they create what they need under unique names.
    """

    async def run(fn, *args, **kwargs):
        with django_db_blocker.unblock():
            return await sync_to_async(fn)(*args, **kwargs)

    return run


@pytest.fixture(scope="module")
def cluster():
    """Two daphne processes on a private Redis, with this process's ORM signals on the same layer.

    Each test module gets its own; tests/e2e/test_cluster.py defines a larger one.
    """
    ensure_redis_installed()
    cluster = Cluster(2).start()
    with redis_layer(cluster.redis.url):
        yield cluster
    cluster.stop()


@pytest.fixture
def browser_ready():
    """Debian's Chromium and the npm packages the browser tests drive, or a loud failure."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs it (apt-get install chromium)")
    missing = [p for p in ("node_modules/playwright-core", "static/vendor/socket.io.min.js") if not (ROOT / p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make setup`")


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


@pytest.fixture(scope="session")
def shared_agent():
    """The session's Node process for ``agent`` (tests/clients/node.py, SharedNodeAgent)."""
    agent = SharedNodeAgent()
    yield agent
    agent.stop()


@pytest.fixture
async def agent(shared_agent):
    """A Node process holding real socket.io-client sockets, clean for each test (tests/clients/node.py)."""
    yield shared_agent.lend(asyncio.get_running_loop())
    await shared_agent.give_back()


def pytest_configure(config):
    Path(ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
