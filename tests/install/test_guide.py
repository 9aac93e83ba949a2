"""README "Add realtime to your Django site", top to bottom, on the wheel in a fresh virtual environment.

The ``guide_site`` fixture (conftest.py) builds the distributions, installs the
wheel and runs steps 1-6 as written; these tests start the site the two ways
step 7 shows (``manage.py runserver`` and ``daphne``) and check with real
clients that it does what the guide says: socket.io-client and python-socketio
connect over every transport, get acks, join a room, talk to each other and
receive an ``emit()`` made by the view of step 5.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile

import pytest

from tests.cluster import free_port
from tests.install.clients import PythonChat, aannounce, node_chat
from tests.install.readme import blocks, commands
from tests.install.site import SUPERUSER
from tests.servers import ROOT

EXAMPLE_URL = "http://127.0.0.1:8000"


def serve_argv(argv: list[str], port: int) -> list[str]:
    """A step-7 command on a free port instead of 8000 (the only change the test makes to it)."""
    if argv[-1] == "runserver":
        return [*argv, f"127.0.0.1:{port}"]
    assert argv[0] == "daphne" and "-p" not in argv, argv
    return ["daphne", "-b", "127.0.0.1", "-p", str(port), *argv[1:]]


@pytest.fixture(scope="module", params=["runserver", "daphne"])
def guide_server(request, guide_site):
    """The site served by one of step 7's commands; yields its base URL."""
    site, shell = guide_site
    (argv,) = [c for b in blocks("guide", "serve") for c in commands(b) if request.param in c]
    port = free_port()
    service = shell.start(serve_argv(argv, port), site.logs / f"{request.param}.log")
    try:
        service.wait_for_port(port)
        yield f"http://127.0.0.1:{port}", service
    finally:
        service.stop()


async def test_clients_connect_ack_join_and_receive_a_view_emit(guide_server, agent, transport):
    url, service = guide_server
    room = f"room-{uuid.uuid4().hex[:8]}"
    js = await node_chat(agent, "js", url, transport, room)
    py = await PythonChat().connect(url, transport, room)
    try:
        assert (await py.next_event("welcome"))[0]["id"]  # on_connect's emit
        assert await js.emit_with_ack("message", room, "hi from node") == ["delivered"]
        assert await py.next_event("message") == ({"from": js.id, "text": "hi from node"},)
        await aannounce(url, room, f"to {room}")
        assert await js.next_event("announcement") == [f"to {room}"]
        assert await py.next_event("announcement") == (f"to {room}",)
        # how it connected; with upgrade the CONNECT answer may come before or after the upgrade
        assert js.transport in {"websocket": {"websocket"}, "polling": {"polling"}}.get(
            transport, {"polling", "websocket"}
        )
    finally:
        await py.close()
    assert "Traceback" not in service.log()


async def test_the_readme_clients_receive_the_readme_announcement(guide_server, tmp_path):
    """Step 8's Node and Python programs as written (only the port differs), and its curl line."""
    url, _ = guide_server
    (node_code,) = (b.code for b in blocks("guide", "node"))
    (python_code,) = (b.code for b in blocks("guide", "python"))
    (announce_block,) = blocks("guide", "announce")
    assert EXAMPLE_URL in node_code and EXAMPLE_URL in python_code
    script = ROOT / "tests" / "artifacts" / f"guide-client-{uuid.uuid4().hex[:8]}.mjs"  # node_modules resolves here
    script.write_text(node_code.replace(EXAMPLE_URL, url))
    (tmp_path / "client.py").write_text(python_code.replace(EXAMPLE_URL, url))
    clients = [
        await asyncio.create_subprocess_exec("node", str(script), cwd=ROOT, stdout=asyncio.subprocess.PIPE),
        await asyncio.create_subprocess_exec(
            sys.executable, str(tmp_path / "client.py"), stdout=asyncio.subprocess.PIPE
        ),
    ]
    try:
        for client in clients:
            async with asyncio.timeout(20):
                assert (await client.stdout.readline()).decode().split() == ["joined", "lobby"]
        (curl,) = commands(announce_block)
        fields = dict(curl[i + 1].split("=", 1) for i, arg in enumerate(curl) if arg == "-d")
        target = urllib.parse.urlsplit(curl[-1])
        assert curl[0] == "curl" and f"{target.scheme}://{target.netloc}" == EXAMPLE_URL
        await aannounce(url + target.path.removesuffix("/announce/"), fields["room"], fields["text"])
        for client in clients:
            async with asyncio.timeout(20):
                out, _ = await client.communicate()
            assert out.decode().split() == ["announcement", fields["text"]], out
            assert client.returncode == 0
    finally:
        script.unlink()
        for client in clients:
            if client.returncode is None:
                client.kill()
                await client.wait()


def test_the_superuser_logs_in_to_the_admin_and_static_files_follow_the_readme(guide_server):
    """createsuperuser's account opens realtime's dashboard; only runserver serves the admin's CSS (DEBUG)."""
    url, service = guide_server
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar := http.cookiejar.CookieJar()))
    dashboard = "/admin/realtime/connection/dashboard/"
    login = opener.open(f"{url}/admin/login/?next={dashboard}", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login).group(1)
    form = {
        "csrfmiddlewaretoken": token,
        "username": SUPERUSER["DJANGO_SUPERUSER_USERNAME"],
        "password": SUPERUSER["DJANGO_SUPERUSER_PASSWORD"],
        "next": dashboard,
    }
    request = urllib.request.Request(f"{url}/admin/login/", data=urllib.parse.urlencode(form).encode())
    request.add_header("Referer", f"{url}/admin/login/")
    with opener.open(request, timeout=10) as answer:
        assert answer.url == f"{url}{dashboard}" and answer.status == 200
    assert "sessionid" in {c.name for c in jar}
    runserver = "runserver" in service.argv
    try:
        with urllib.request.urlopen(f"{url}/static/admin/css/base.css", timeout=10) as css:
            assert runserver and css.headers["Content-Type"].startswith("text/css")
    except urllib.error.HTTPError as error:
        assert not runserver and error.code == 404, error


def test_the_wheel_and_sdist_hold_the_app_alone(guide_site):
    site, _ = guide_site
    names = set(zipfile.ZipFile(site.wheel).namelist())
    for needed in (
        "realtime/py.typed",
        "realtime/migrations/0001_initial.py",
        "realtime/templates/admin/realtime/dashboard.html",
        "realtime/management/commands/realtime_emit.py",
        "realtime/protocol/engineio.py",
        "realtime/grafana/realtime.json",
        "realtime/gunicorn.py",
    ):
        assert needed in names
    assert {n.split("/")[0] for n in names} == {"realtime", "django_realtime_socketio-0.1.0.dist-info"}
    with tarfile.open(site.sdist) as sdist:
        tops = {n.split("/")[1] for n in sdist.getnames() if n.count("/") >= 1}
    assert tops <= {"realtime", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO", ".gitignore"}, tops
    assert "realtime" in tops
    imported = subprocess.run(
        [str(site.python), "-c", "import realtime, sys; print(realtime.__file__)"],
        cwd=site.root.parent, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert imported.stdout.startswith(str(site.venv)), imported.stdout  # the wheel's copy, not the checkout's


def test_realtime_emit_says_the_in_memory_layer_cannot_reach_the_servers(guide_site):
    """The guide's CHANNEL_LAYERS note: the command fails loudly instead of printing "emitted"."""
    site, shell = guide_site
    result = subprocess.run(
        [str(site.python), "manage.py", "realtime_emit", "announcement", '"hi"', "--to", "lobby"],
        cwd=site.root, env=shell.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "emitted" not in result.stdout
    assert "CommandError: realtime_emit needs a channel layer shared with the server processes" in result.stderr
