"""README "Deploy" on the guide's site: daphne x3 and uvicorn x3 behind Debian's nginx (HTTP and TLS), gunicorn -w 2.

Everything runs for real on loopback: a private redis-server, the README's
production settings, ``collectstatic``, three daphne processes, nginx with
the README's server block (round robin, no ``ip_hash``) and a certificate made
by ``openssl`` for this run, the README's three uvicorn processes behind the
same block, then gunicorn with two uvicorn workers on one port. The test
changes only the example values (ports, paths, secret, Redis URL). Clients are
spread until every process owns at least one of them, so polling requests,
WebSockets and upgrades that land on the wrong process must be forwarded, and
a view's broadcast must reach each client exactly once.

The client's address: clients connect from many loopback addresses (Linux
routes all of 127.0.0.0/8 to ``lo``), and the live-connection registry's rows
(the site's SQLite database, as the admin shows them) must name each one's
own, whatever ``X-Forwarded-For`` it sends; the per-address handshake limit
must refuse a flooding address and no other; and a daphne left without
``--proxy-headers`` must say so.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import secrets
import sqlite3
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest

from realtime.conf import DEFAULTS
from realtime.limits import Rate
from realtime.member import key_of_sid
from realtime.proxies import SUSPECT_HANDSHAKES
from tests.clients.node import NodeAgent
from tests.cluster import RedisServer, ensure_redis_installed, free_port
from tests.install.clients import PythonChat, aannounce, node_chat
from tests.install.readme import blocks, commands
from tests.install.site import Service, require

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
events {{ worker_connections 4096; }}  # 400 clients: a WebSocket holds two
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


class Proxied(NamedTuple):
    """Server processes behind nginx: its http and https URLs, the CA file of its certificate, the servers."""

    http: str
    https: str
    cafile: str
    servers: list[Service]


def port_of(argv: list[str]) -> str:
    """The port a README serve line listens on (daphne ``-p``, uvicorn ``--port``)."""
    return argv[argv.index("-p" if argv[0] == "daphne" else "--port") + 1]


@contextmanager
def served_behind_nginx(deployed, directory, lines: list[list[str]], name: str, *, one_process: bool = False):
    """README serve ``lines`` on free ports, behind nginx with the README's server block; yields Proxied.

    Each upstream goes to the line with its port; with ``one_process`` (a single line) all of them do.
    """
    site, shell, examples = deployed
    nginx = require("nginx", "nginx")
    enough_file_descriptors()
    ports = {port_of(argv): str(free_port()) for argv in lines}
    services = []
    try:
        for argv in lines:
            argv = [ports.get(a, a) for a in argv]
            services.append(shell.start(argv, site.logs / f"deploy-{name}-{port_of(argv)}.log"))
        for service, port in zip(services, ports.values(), strict=True):
            service.wait_for_port(int(port))
        cert, key = certificate(directory)
        http_port, https_port = free_port(), free_port()
        (block,) = blocks("deploy", "nginx")
        upstreams = re.findall(r"^\s*server 127\.0\.0\.1:(\d+);", block.code, re.M)
        if not one_process:
            assert sorted(upstreams) == sorted(ports), f"nginx's upstream {upstreams} is not the {name} lines' {ports}"
        (first,) = ports.values() if one_process else (None,)
        replacements = {f"127.0.0.1:{old};": f"127.0.0.1:{ports.get(old, first)};" for old in upstreams}
        replacements |= {
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            EXAMPLE_CERT: cert,
            EXAMPLE_KEY: key,
            f"alias {examples['DJANGO_STATIC_ROOT'].rstrip('/')}/;": f"alias {shell.env['DJANGO_STATIC_ROOT']}/;",
        }
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
        yield Proxied(f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", cert, services[:-1])
    finally:
        for service in reversed(services):
            service.stop()


@pytest.fixture(scope="module")
def behind_nginx(deployed, tmp_path_factory):
    """The Deploy section's daphne processes and nginx."""
    lines = commands(blocks("deploy", "serve")[0])
    assert all(argv[0] == "daphne" for argv in lines) and len(lines) == 3, lines
    with served_behind_nginx(deployed, tmp_path_factory.mktemp("nginx"), lines, "daphne") as proxied:
        yield proxied


@pytest.fixture(scope="module")
def uvicorn_behind_nginx(deployed, tmp_path_factory):
    """The Deploy section's uvicorn processes behind the same nginx block."""
    lines = commands(blocks("deploy", "serve-uvicorn")[0])
    assert all(argv[0] == "uvicorn" for argv in lines) and len(lines) == 3, lines
    with served_behind_nginx(deployed, tmp_path_factory.mktemp("nginx-uvicorn"), lines, "uvicorn") as proxied:
        yield proxied


@pytest.fixture(params=["daphne", "uvicorn"])
def proxied(request) -> Proxied:
    """The README's three daphne processes, then its three uvicorn processes, behind its nginx."""
    return request.getfixturevalue({"daphne": "behind_nginx", "uvicorn": "uvicorn_behind_nginx"}[request.param])


@pytest.fixture(scope="module")
def untrusting_daphne(deployed, tmp_path_factory):
    """The README's first daphne line without ``--proxy-headers``, alone behind the README's nginx."""
    argv = commands(blocks("deploy", "serve")[0])[0]
    assert "--proxy-headers" in argv, argv
    argv = [a for a in argv if a != "--proxy-headers"]
    directory = tmp_path_factory.mktemp("nginx-untrusting")
    with served_behind_nginx(deployed, directory, [argv], "untrusting", one_process=True) as proxied:
        yield proxied


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


# -- the client's real address, through nginx ---------------------------------------------------------------

# 40 clients' addresses, 10 connections each (5 WebSocket, 5 polling upgraded), CONNECTING at a time at most:
# far under HANDSHAKE_RATE_PER_IP's burst (60 per address and process), so none of them is refused.
SOURCES = [f"127.0.0.{i}" for i in range(2, 42)]
PER_SOURCE = 10
CONNECTING = 32
FORGERS = {"127.0.0.42": "websocket", "127.0.0.43": "upgrade"}  # send X-Forwarded-For: 198.51.100.7
FORGED = "198.51.100.7"
FLOODER, BYSTANDER = "127.0.0.60", "127.0.0.61"
FLOOD_WORKERS = 32  # handshakes in flight at once from FLOODER
UNTRUSTED_PROXY_ERROR = "carry X-Forwarded-For naming other clients, but the ASGI server does not apply it"


def enough_file_descriptors(needed: int = 4096) -> None:
    """Raise this process's soft limit (nginx and the servers inherit it): 400 clients hold ~1,200 sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        ceiling = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


async def bounded(factories: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run the coroutines ``factories`` make, ``limit`` at a time; their results, or exceptions, in order."""
    gate = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await factory()

    return await asyncio.gather(*(one(f) for f in factories), return_exceptions=True)


async def connect_all(url: str, wanted: list[tuple[str, str, dict[str, str]]], room: str) -> list[PythonChat]:
    """A PythonChat per (source address, transport, headers), CONNECTING at a time; all of them, or none."""
    results = await bounded(
        [lambda s=s, t=t, h=h: PythonChat(source=s).connect(url, t, room, headers=h) for s, t, h in wanted], CONNECTING
    )
    clients = [r for r in results if isinstance(r, PythonChat)]
    failures = [(w, r) for w, r in zip(wanted, results, strict=True) if not isinstance(r, PythonChat)]
    if failures:
        await close_all(clients)
        raise AssertionError(f"{len(failures)} of {len(wanted)} clients did not connect, first: {failures[0]!r}")
    return clients


async def close_all(clients: list[PythonChat]) -> None:
    for result in await bounded([client.close for client in clients], CONNECTING):
        assert result is None, result


async def registry_rows(database: Path, socket_ids: list[str], timeout: float = 20) -> dict[str, tuple[str, int]]:
    """socket id -> (address, server process) of the admin's live-connection rows, once all of them are written."""
    query = "SELECT socket_id, address, server_id FROM realtime_connection WHERE socket_id IN (%s)"
    query %= ",".join("?" * len(socket_ids))
    deadline = time.monotonic() + timeout
    while True:
        with closing(sqlite3.connect(database, timeout=10)) as db:
            rows = {socket_id: (address, server) for socket_id, address, server in db.execute(query, socket_ids)}
        if len(rows) == len(socket_ids):
            return rows
        assert time.monotonic() < deadline, f"the registry wrote {len(rows)} of {len(socket_ids)} rows in {timeout} s"
        await asyncio.sleep(0.05)  # another process's database: there is no event to wait on


async def test_every_client_is_seen_with_its_own_address(proxied, deployed):
    """400 clients from 40 addresses, and two sending an X-Forwarded-For of their own, each seen as itself."""
    site, _, _ = deployed
    assert _HANDSHAKES.count > PER_SOURCE, "each address's clients must fit in HANDSHAKE_RATE_PER_IP's burst"
    room = f"addresses-{uuid.uuid4().hex[:8]}"
    # client k from SOURCES[k % 40]: each batch of CONNECTING spans many addresses
    wanted = [
        (SOURCES[k % len(SOURCES)], "websocket" if k // len(SOURCES) % 2 == 0 else "upgrade", {})
        for k in range(len(SOURCES) * PER_SOURCE)
    ]
    wanted += [(source, transport, {"X-Forwarded-For": FORGED}) for source, transport in FORGERS.items()]
    clients = await connect_all(proxied.http, wanted, room)
    try:
        assert len(clients) == len(SOURCES) * PER_SOURCE + len(FORGERS)
        rows = await registry_rows(site.root / "db.sqlite3", [client.socket_id for client in clients])
        seen = {client.socket_id: rows[client.socket_id][0] for client in clients}
        expected = {client.socket_id: client.source for client in clients}
        wrong = {sid: (expected[sid], seen[sid]) for sid in seen if seen[sid] != expected[sid]}
        assert not wrong, f"{len(wrong)} seen with another address (wanted, seen), e.g. {list(wrong.items())[:3]}"
        assert FORGED not in set(seen.values())  # nginx replaced the client's own X-Forwarded-For
        # the rows came from every process, so each of the README's three lines passes the address on
        assert len({server for _, server in rows.values()}) == len(proxied.servers)
    finally:
        await close_all(clients)
    for server in proxied.servers:
        log = server.log()
        assert UNTRUSTED_PROXY_ERROR not in log and "Traceback" not in log, log[-3000:]


class Flood:
    """Polling handshakes from one address as fast as FLOOD_WORKERS requests in flight allow."""

    def __init__(self, url: str, source: str) -> None:
        self.handshake = f"{url}/socket.io/?EIO=4&transport=polling"
        connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=FLOOD_WORKERS)
        self.http = aiohttp.ClientSession(connector=connector)
        self.sids: list[str] = []  # accepted: sessions to close at the end
        self.refusals: list[tuple[int, str]] = []
        self.changed = asyncio.Condition()
        self.running = True

    async def worker(self) -> None:
        while self.running:
            async with self.http.get(self.handshake) as answer:
                body = await answer.text()
            if answer.status == 200 and body.startswith("0{"):
                self.sids.append(json.loads(body[1:])["sid"])
            else:
                self.refusals.append((answer.status, body))
            async with self.changed:
                self.changed.notify_all()

    async def until(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(predicate)

    async def close(self) -> None:
        """Close every accepted session (Engine.IO's close packet, "1"), then the HTTP session."""

        async def close_session(sid: str) -> None:
            async with self.http.post(f"{self.handshake}&sid={sid}", data=b"1") as answer:
                assert answer.status == 200, await answer.text()

        for result in await bounded([lambda sid=sid: close_session(sid) for sid in self.sids], FLOOD_WORKERS):
            assert result is None, result
        await self.http.close()


async def test_one_address_flooding_handshakes_is_limited_on_its_own(proxied):
    """FLOODER gets 429s from HANDSHAKE_RATE_PER_IP; BYSTANDER connects meanwhile, and FLOODER is still refused."""
    flood = Flood(proxied.http, FLOODER)
    workers = [asyncio.create_task(flood.worker()) for _ in range(FLOOD_WORKERS)]
    bystander = None
    try:
        await flood.until(lambda: bool(flood.refusals) or any(w.done() for w in workers))
        assert flood.refusals, [w.exception() for w in workers if w.done()]
        bystander = await PythonChat(source=BYSTANDER).connect(proxied.http, "upgrade", f"by-{uuid.uuid4().hex[:8]}")
        refused = len(flood.refusals)
        await flood.until(lambda: len(flood.refusals) > refused or any(w.done() for w in workers))
        assert len(flood.refusals) > refused  # the flood was still refused after the bystander got in
    finally:
        flood.running = False
        results = await asyncio.gather(*workers, return_exceptions=True)
        if bystander is not None:
            await bystander.close()
        await flood.close()
    assert results == [None] * FLOOD_WORKERS, results
    assert flood.sids, "not even the burst was accepted"
    assert set(flood.refusals) == {(429, '{"code":4,"message":"Too many handshakes"}')}, set(flood.refusals)
    # the processes refused FLOODER by its own address, and nobody else (the WARNING is written before the 429)
    refused_addresses = {
        a for server in proxied.servers for a in re.findall(r"handshake from (\S+) refused", server.log())
    }
    assert refused_addresses == {FLOODER}, refused_addresses


async def handshakes(url: str, sources: list[str]) -> list[str]:
    """One polling handshake from each address, in turn; the sids (each answered 200)."""
    sids = []
    for source in sources:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0))) as http:
            async with http.get(f"{url}/socket.io/?EIO=4&transport=polling") as answer:
                body = await answer.text()
                assert answer.status == 200 and body.startswith("0{"), (answer.status, body)
            sids.append(json.loads(body[1:])["sid"])
            async with http.post(f"{url}/socket.io/?EIO=4&transport=polling&sid={sids[-1]}", data=b"1") as closed:
                assert closed.status == 200  # closed at once: only the handshake matters here
    return sids


async def test_a_daphne_without_proxy_headers_says_so_once(untrusting_daphne):
    """Handshakes through nginx from several addresses all arrive as 127.0.0.1: one ERROR names the flag."""
    (daphne,) = untrusting_daphne.servers
    sources = [SOURCES[i % 4] for i in range(SUSPECT_HANDSHAKES)]  # four clients, as nginx's header names them
    await handshakes(untrusting_daphne.http, sources[:-1])
    assert UNTRUSTED_PROXY_ERROR not in daphne.log()  # each answer came after its handshake was judged
    await handshakes(untrusting_daphne.http, sources[-1:])
    daphne.wait_for_log(UNTRUSTED_PROXY_ERROR, timeout=10)
    await handshakes(untrusting_daphne.http, sources)  # as many again: nothing more is said
    (line,) = [line for line in daphne.log().splitlines() if UNTRUSTED_PROXY_ERROR in line]
    assert "Handshakes from 127.0.0.1 carry X-Forwarded-For" in line, line
    assert "Fix: run daphne with --proxy-headers" in line, line


async def test_probes_and_metrics_as_the_recipe_serves_them(proxied):
    """/healthz and /readyz from every process through nginx; /metrics only for METRICS_ALLOWED_IPS.

    The settings block turns them on; nginx hands each request to the next process, so one
    request per process reaches each of them. A client at 127.0.0.2 is refused the metrics through nginx (its real
    address, which the server now knows), while 127.0.0.1, the default allow-list, reads them.
    """
    async with aiohttp.ClientSession() as http:
        for path, status, body in (("/readyz", 200, {"status": "ready"}), ("/healthz", 200, {"status": "alive"})):
            for _ in proxied.servers:  # round robin: one request per process
                async with http.get(f"{proxied.http}{path}") as answer:
                    assert (answer.status, await answer.json()) == (status, body), path
        for _ in proxied.servers:
            async with http.get(f"{proxied.http}/metrics") as metrics:
                assert metrics.status == 200 and metrics.headers["Content-Type"].startswith("text/plain")
                text = await metrics.text()
            assert "realtime_ready 1.0" in text and "realtime_untrusted_proxy 0.0" in text
    for server in proxied.servers:  # each process answered each path itself (its access log says so)
        log = server.log()
        assert all(re.search(rf'"GET {path}(?: HTTP/1\.1)?" 200', log) for path in ("/readyz", "/healthz", "/metrics"))
    outsider = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
    async with outsider, outsider.get(f"{proxied.http}/metrics") as refused:
        assert refused.status == 403
        assert "METRICS_ALLOWED_IPS" in await refused.text()
