"""README "Deploy" on the guide's site: daphne x3 behind Debian's nginx (HTTP and TLS), and gunicorn -w 2.

Everything runs for real on loopback: a private redis-server, the README's
production settings, ``collectstatic``, three daphne processes, nginx with
the README's server block (round robin, no ``ip_hash``) and a certificate made
by ``openssl`` for this run, then gunicorn with two uvicorn workers on one
port. The test changes only the example values (ports, paths, secret, Redis
URL). Clients are spread until every process owns at least one of them, so
polling requests, WebSockets and upgrades that land on the wrong process must
be forwarded, and a view's broadcast must reach each client exactly once.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from realtime.conf import DEFAULTS
from realtime.limits import Rate
from realtime.member import key_of_sid
from tests.clients.node import NodeAgent
from tests.cluster import RedisServer, ensure_redis_installed, free_port
from tests.install.clients import PythonChat, aannounce, node_chat
from tests.install.readme import blocks, commands
from tests.install.site import require

EXAMPLE_CERT = "/etc/ssl/certs/example.com.pem"
EXAMPLE_KEY = "/etc/ssl/private/example.com.key"


@pytest.fixture(scope="module")
def deployed(guide_site, tmp_path_factory):
    """The guide's site with the Deploy section's settings and preparation steps applied, on a private Redis."""
    site, guide_shell = guide_site
    ensure_redis_installed()
    redis = RedisServer().start()
    static_root = tmp_path_factory.mktemp("static") / "collected"
    overrides = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": redis.url,
        "DJANGO_STATIC_ROOT": str(static_root),
    }
    shell = guide_shell.fork(overrides)
    (settings,) = blocks("deploy", "write")
    site.write(settings)
    shell.history.append(f"write {settings.target}")
    (prepare,) = blocks("deploy", "run")
    shell.run_block(prepare)
    for name, value in overrides.items():  # the README exported each of them (else the test's value is unused)
        assert shell.env.get(name) == value, f"the Deploy section never exports {name}"
    examples = dict(a.split("=", 1) for argv in commands(prepare) if argv[0] == "export" for a in argv[1:])
    assert (static_root / "admin" / "css" / "base.css").exists()  # collectstatic filled DJANGO_STATIC_ROOT
    try:
        yield site, shell, examples
    finally:
        redis.stop()


def certificate(directory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day (openssl, Debian's package)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [require("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def nginx_config(server_block: str, replacements: dict[str, str], directory) -> str:
    """The README's server block with this run's values, inside a main config of the test's own."""
    for old, new in replacements.items():
        assert old in server_block, f"the README's nginx block no longer has {old!r}"
        server_block = server_block.replace(old, new)
    (directory / "mysite.conf").write_text(server_block)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / sub).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the test's private temp dir
    return f"""{user}daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log {directory}/access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {directory}/mysite.conf;
}}
"""


@pytest.fixture(scope="module")
def behind_nginx(deployed, tmp_path_factory):
    """The Deploy section's daphne processes and nginx; yields (http URL, https URL, CA file, processes)."""
    site, shell, examples = deployed
    nginx = require("nginx", "nginx")
    directory = tmp_path_factory.mktemp("nginx")
    (serve,) = blocks("deploy", "serve")
    ports = {argv[argv.index("-p") + 1]: str(free_port()) for argv in commands(serve)}
    services = []
    try:
        for argv in commands(serve):
            argv = [ports.get(a, a) for a in argv]
            services.append(shell.start(argv, site.logs / f"deploy-daphne-{argv[argv.index('-p') + 1]}.log"))
        for service, port in zip(services, ports.values(), strict=True):
            service.wait_for_port(int(port))
        cert, key = certificate(directory)
        http_port, https_port = free_port(), free_port()
        replacements = {f"127.0.0.1:{old};": f"127.0.0.1:{new};" for old, new in ports.items()}
        replacements |= {
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            EXAMPLE_CERT: cert,
            EXAMPLE_KEY: key,
            f"alias {examples['DJANGO_STATIC_ROOT'].rstrip('/')}/;": f"alias {shell.env['DJANGO_STATIC_ROOT']}/;",
        }
        (block,) = blocks("deploy", "nginx")
        directives = re.sub(r"#.*", "", block.code)
        assert not re.search(r"\b(ip_hash|hash|sticky)\b", directives), "the recipe must not need affinity"
        config = directory / "nginx.conf"
        config.write_text(nginx_config(block.code, replacements, directory))
        checked = subprocess.run(
            [nginx, "-t", "-c", str(config), "-e", str(directory / "error.log")], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
        server = shell.start([nginx, "-c", str(config), "-e", str(directory / "error.log")], directory / "nginx.out")
        services.append(server)
        server.wait_for_port(http_port)
        server.wait_for_port(https_port)
        yield f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", cert, services[:-1]
    finally:
        for service in reversed(services):
            service.stop()


@pytest.fixture(scope="module")
def under_gunicorn(deployed):
    """The Deploy section's gunicorn command on a free port; yields its URL once both workers booted."""
    site, shell, _ = deployed
    (block,) = blocks("deploy", "gunicorn")
    (argv,) = commands(block)
    port = free_port()
    argv = [re.sub(r"^127\.0\.0\.1:\d+$", f"127.0.0.1:{port}", a) for a in argv]
    assert f"127.0.0.1:{port}" in argv and argv[argv.index("-w") + 1] == "2"
    service = shell.start(argv, site.logs / "deploy-gunicorn.log")
    try:
        service.wait_for_log(r"Booting worker with pid", count=2)
        # each worker accepts once it has imported the site (Django's ASGI app has no lifespan support)
        service.wait_for_log(r"Application startup complete|'lifespan' protocol appears unsupported", count=2)
        service.wait_for_port(port)
        yield f"http://127.0.0.1:{port}", service
    finally:
        service.stop()


# spread()'s batches after its first eight clients: SPREAD_BATCH handshakes at a time, at half the
# README site's HANDSHAKE_RATE_PER_IP (the default), for up to SPREAD_WITHIN seconds
SPREAD_BATCH = 4
_HANDSHAKES = Rate.parse(DEFAULTS["HANDSHAKE_RATE_PER_IP"])
SPREAD_PACING = 2 * SPREAD_BATCH * _HANDSHAKES.period / _HANDSHAKES.count
SPREAD_WITHIN = 10.0


async def spread(agent, url, transport, room, processes, cafile=None):
    """Connect alternately Node and Python clients until every server process owns one.

    Eight one at a time; then Python clients in paced batches (SPREAD_BATCH, SPREAD_PACING). gunicorn's
    workers share one listening socket, and an idle worker that wins the first accept tends to win every
    one after it while nothing keeps it busy: handshakes arriving together make the others accept too.
    A worker that booted last may still be warming up (its first request imports the URLconf), so the
    batches go on for seconds, paced so that they stay under the rate limit rather than being refused:
    the pause is pacing, not synchronisation (each batch is awaited).
    """
    clients, owners = [], set()
    for i in range(8):
        if i % 2 == 0:
            client = await node_chat(agent, f"c{i}", url, transport, room)
            sid = (await client.state())["sid"]
        else:
            client = await PythonChat(cafile).connect(url, transport, room)
            sid = client.sid
        clients.append(client)
        owners.add(key_of_sid(sid))
        if len(owners) == processes and len(clients) >= 2:
            return clients
    deadline = time.monotonic() + SPREAD_WITHIN
    while time.monotonic() < deadline:
        batch = await asyncio.gather(*(PythonChat(cafile).connect(url, transport, room) for _ in range(SPREAD_BATCH)))
        clients.extend(batch)
        owners.update(key_of_sid(client.sid) for client in batch)
        if len(owners) == processes:
            return clients
        await asyncio.sleep(SPREAD_PACING)
    assert len(owners) == processes, f"{len(clients)} clients all on {owners}"
    return clients


async def check_without_sticky_sessions(agent, url, transport, processes, cafile=None):
    room = f"deploy-{uuid.uuid4().hex[:8]}"
    clients = await spread(agent, url, transport, room, processes, cafile)
    try:
        sender, *others = clients
        assert await sender.emit_with_ack("message", room, "across processes") == ["delivered"]
        for other in others:
            if isinstance(other, PythonChat):
                assert await other.next_event("message") == ({"from": sender.id, "text": "across processes"},)
            else:
                assert await other.next_event("message") == [{"from": sender.id, "text": "across processes"}]
        for text in ("first", "second"):  # "second" next, so "first" came exactly once
            await aannounce(url, room, text, cafile)
            for client in clients:
                assert (await client.next_event("announcement"))[0] == text
    finally:
        for client in clients:
            if isinstance(client, PythonChat):
                await client.close()


async def test_daphne_processes_behind_nginx_round_robin(behind_nginx, agent, transport):
    url, _, _, daphnes = behind_nginx
    await check_without_sticky_sessions(agent, url, transport, len(daphnes))


async def test_tls_through_nginx(behind_nginx, transport):
    """wss:// and https:// polling to nginx, which terminates TLS with this run's certificate."""
    _, url, cafile, daphnes = behind_nginx
    agent = await NodeAgent(env={**os.environ, "NODE_EXTRA_CA_CERTS": cafile}).start()
    try:
        await check_without_sticky_sessions(agent, url, transport, len(daphnes), cafile)
    finally:
        await agent.close()


def test_production_settings_and_static_files(behind_nginx):
    """nginx serves collectstatic's files; Django answers with DEBUG off (no technical 404 page)."""
    _, url, cafile, daphnes = behind_nginx
    context = ssl.create_default_context(cafile=cafile)
    with urllib.request.urlopen(f"{url}/static/admin/css/base.css", context=context, timeout=10) as css:
        assert css.headers["Content-Type"] == "text/css" and css.headers["Server"].startswith("nginx")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{url}/no-such-page/", context=context, timeout=10)
    page = missing.value.read().decode()
    assert missing.value.code == 404 and "URLconf" not in page and "DEBUG = True" not in page
    for daphne in daphnes:
        assert "Traceback" not in daphne.log()


async def test_gunicorn_with_two_uvicorn_workers_on_one_port(under_gunicorn, agent, transport):
    url, service = under_gunicorn
    await check_without_sticky_sessions(agent, url, transport, 2)
    assert "Traceback" not in service.log()
