"""Security at the edge, against real daphne processes: origins, credentials, hosts, ALLOW_REQUEST, secrets.

Most tests run on servers with tests/settings_security.py (``"*"`` and one
named origin in CORS_ALLOWED_ORIGINS, ALLOWED_HOSTS empty with DEBUG on, a
proxy SSL header, packets logged at DEBUG, an ALLOW_REQUEST hook steered by
an ``X-Verdict`` header); the rest on the suite's shared server
(tests/settings.py: one named origin, explicit ALLOWED_HOSTS).
"""

import asyncio
import json
import re
import time

import aiohttp
import pytest
import socketio

from tests.admin_client import make_token, make_user, session_cookie
from tests.servers import ServerProcess

ENGINE = "/engine.io/"
HANDSHAKE = f"{ENGINE}?EIO=4&transport=polling"
WS_HANDSHAKE = f"{ENGINE}?EIO=4&transport=websocket"
FORBIDDEN = {"code": 4, "message": "Forbidden"}
BAD_REQUEST = {"code": 3, "message": "Bad request"}


def start(hook: str = "tests.security_hooks.allow") -> ServerProcess:
    return ServerProcess(
        "tests.settings_security", app="tests.asgi:application", env={"REALTIME_TEST_ALLOW_REQUEST": hook}
    ).start()


@pytest.fixture(scope="module")
def secure(django_db_setup):
    process = start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def async_hooked(django_db_setup):
    process = start("tests.security_hooks.aallow")
    yield process
    process.stop()


@pytest.fixture(params=["sync", "async"])
def hooked(request):
    """A server whose ALLOW_REQUEST hook is a plain def, then one whose hook is async."""
    return request.getfixturevalue("secure" if request.param == "sync" else "async_hooked")


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def status_and_body(http, url, **options):
    async with http.get(url, **options) as response:
        return response.status, await response.text()


async def ws_refused(http, url, **options) -> int:
    """The HTTP status of a WebSocket handshake the server refuses (it must refuse)."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, **options)
    return refused.value.status


async def identity(socket) -> dict:
    (answer,) = await socket.emit_with_ack("identity")
    return answer


# -- ALLOW_REQUEST --------------------------------------------------------------------------------


async def test_allow_request_refuses_handshakes_before_any_session(hooked, http, orm):
    user = await orm(make_user, "admitted")
    mark = hooked.mark()
    for verdict in ("deny", "user:nobody-by-this-name", "raise"):
        status, body = await status_and_body(http, hooked.url + HANDSHAKE, headers={"X-Verdict": verdict})
        assert (status, json.loads(body)) == (403, FORBIDDEN), verdict
        assert await ws_refused(http, hooked.ws_url + WS_HANDSHAKE, headers={"X-Verdict": verdict}) == 403
    await hooked.await_log(r"ALLOW_REQUEST hook raised; the request is refused\nTraceback", since=mark)
    await hooked.await_log(
        r"WebSocket /engine\.io/ .* refused: Forbidden \(code 4, sid=None\): ALLOW_REQUEST", since=mark
    )
    assert "opened over" not in hooked.log()[mark:]  # refused before any session existed
    # the hook's ORM query admits an existing user; no verdict admits too
    for headers in ({"X-Verdict": f"user:{user.username}"}, {}):
        status, body = await status_and_body(http, hooked.url + HANDSHAKE, headers=headers)
        assert status == 200 and body.startswith("0{"), body
        ws = await http.ws_connect(hooked.ws_url + WS_HANDSHAKE, headers=headers)
        assert (await ws.receive_str(timeout=2)).startswith("0{")
        await ws.close()


async def test_socketio_clients_see_the_refusal(hooked, agent):
    for transport in ("polling", "websocket"):
        with pytest.raises(ConnectionError):
            await agent.socket(f"denied-{transport}").connect(hooked.url, transport, extraHeaders={"X-Verdict": "deny"})
        socket = await agent.socket(f"admitted-{transport}").connect(hooked.url, transport)
        assert socket.transport == transport


async def test_a_hook_that_waits_does_not_stall_other_clients(hooked, http):
    """The hook holds a handshake until the test answers; meanwhile an open session is served."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    def hook_connected(reader, writer):
        writers.append(writer)
        connected.set()

    gate = await asyncio.start_server(hook_connected, "127.0.0.1", 0)
    port = gate.sockets[0].getsockname()[1]
    try:
        _, body = await status_and_body(http, hooked.url + HANDSHAKE)
        sid = json.loads(body[1:])["sid"]
        held = asyncio.create_task(status_and_body(http, hooked.url + HANDSHAKE, headers={"X-Verdict": f"hold:{port}"}))
        await asyncio.wait_for(connected.wait(), 5)  # the hook is now waiting on us
        session = f"{hooked.url}{ENGINE}?EIO=4&transport=polling&sid={sid}"
        async with asyncio.timeout(2):
            async with http.post(session, data="4still served") as response:
                assert await response.text() == "ok"
            assert await status_and_body(http, session) == (200, "4still served")
        assert not held.done()
        writers[0].write(b"y")
        await writers[0].drain()
        status, body = await asyncio.wait_for(held, 5)
        assert status == 200 and body.startswith("0{")
    finally:
        for writer in writers:
            writer.close()
        gate.close()


# -- origins and credentials ----------------------------------------------------------------------


async def test_star_answers_any_origin_but_never_with_credentials(secure, http):
    evil = {"Origin": "http://evil.example"}
    async with http.get(secure.url + HANDSHAKE, headers=evil) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers
    preflight = {**evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    async with http.options(secure.url + HANDSHAKE, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers
    for trusted in ("http://listed.example", secure.url):
        async with http.get(secure.url + HANDSHAKE, headers={"Origin": trusted}) as response:
            assert response.headers["Access-Control-Allow-Origin"] == trusted
            assert response.headers["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_session_cookie_speaks_only_for_this_site_and_named_origins(secure, agent, orm, transport):
    admin = await orm(make_user, "cswsh-admin", superuser=True)
    cookie = await orm(session_cookie, admin)
    _token, secret = await orm(make_token, admin)
    private = secure.url + "/private"
    mark = secure.mark()
    with pytest.raises(ConnectionError) as refused:
        await agent.socket("evil").connect(
            private, transport, extraHeaders={"Origin": "http://evil.example", "Cookie": cookie}
        )
    assert refused.value.args == ("permission denied", None)
    await secure.await_log(r"session cookie ignored: handshake Origin 'http://evil\.example'", since=mark)
    # a token still works from any site
    socket = await agent.socket("evil-token").connect(
        private, transport, extraHeaders={"Origin": "http://evil.example"}, auth={"token": secret}
    )
    assert (await identity(socket))["user"] == admin.username
    for origin in (secure.url, "http://listed.example"):
        socket = await agent.socket(f"trusted-{origin}").connect(
            private, transport, extraHeaders={"Origin": origin, "Cookie": cookie}
        )
        assert await identity(socket) == {"user": admin.username, "token": None, "namespace": "/private"}


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_same_origin_is_scheme_aware_and_honours_the_proxy_ssl_header(secure, agent, orm, transport):
    user = await orm(make_user, "https-page")
    cookie = await orm(session_cookie, user)
    https_page = {"Origin": f"https://127.0.0.1:{secure.port}", "Cookie": cookie}
    with pytest.raises(ConnectionError) as refused:
        await agent.socket("http-request").connect(secure.url + "/private", transport, extraHeaders=https_page)
    assert refused.value.args == ("permission denied", None)
    # behind a TLS-terminating proxy that says so (SECURE_PROXY_SSL_HEADER), the request is https
    socket = await agent.socket("https-request").connect(
        secure.url + "/private", transport, extraHeaders={**https_page, "X-Forwarded-Proto": "https"}
    )
    assert (await identity(socket))["user"] == user.username


async def test_an_https_page_is_not_the_same_origin_as_the_http_site(server, http):
    """The shared server lists one origin: the http site's own https twin is cross-origin, and refused."""
    twin = {"Origin": f"https://127.0.0.1:{server.port}"}
    status, body = await status_and_body(http, server.url + HANDSHAKE, headers=twin)
    assert (status, json.loads(body)) == (403, FORBIDDEN)
    assert await ws_refused(http, server.ws_url + WS_HANDSHAKE, headers=twin) == 403
    status, _ = await status_and_body(http, server.url + HANDSHAKE, headers={"Origin": server.url})
    assert status == 200


# -- hosts ----------------------------------------------------------------------------------------


async def test_a_host_not_in_allowed_hosts_is_refused_on_both_transports(server, http):
    mark = server.mark()
    bad = {"Host": "evil.example"}
    status, body = await status_and_body(http, server.url + HANDSHAKE, headers=bad)
    assert (status, json.loads(body)) == (400, BAD_REQUEST)
    await server.await_log(
        r"WARNING realtime\.engineio: GET /engine\.io/ .* refused: Bad request \(code 3, sid=None\): "
        r"Host 'evil\.example' not in ALLOWED_HOSTS",
        since=mark,
    )
    assert await ws_refused(http, server.ws_url + WS_HANDSHAKE, headers=bad) == 403
    await server.await_log(r"WebSocket /engine\.io/ .* refused: Bad request .*Host 'evil\.example'", since=mark)
    # and a live session's requests are checked too, not only handshakes
    _, body = await status_and_body(http, server.url + HANDSHAKE)
    sid = json.loads(body[1:])["sid"]
    session = f"{server.url}{ENGINE}?EIO=4&transport=polling&sid={sid}"
    status, body = await status_and_body(http, session, headers=bad)
    assert (status, json.loads(body)) == (400, BAD_REQUEST)


def hosts_for(server: ServerProcess) -> list[str]:
    port = server.port
    return [
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "LOCALHOST",
        "sub.localhost",
        f"[::1]:{port}",
        "evil.example",
        "127.0.0.1.evil.example",
        "localhost.",
        "bad host",
        "évil.example",
    ]


@pytest.mark.parametrize("which", ["explicit ALLOWED_HOSTS", "DEBUG with empty ALLOWED_HOSTS"])
async def test_hosts_are_judged_exactly_as_a_django_view_judges_them(request, http, which):
    target = request.getfixturevalue("server" if which.startswith("explicit") else "secure")
    verdicts = {}
    for host in hosts_for(target):
        headers = {"Host": host}
        view, _ = await status_and_body(http, target.url + "/admin/login/", headers=headers)
        polling, _ = await status_and_body(http, target.url + HANDSHAKE, headers=headers)
        try:
            ws = await http.ws_connect(target.ws_url + WS_HANDSHAKE, headers=headers)
            await ws.close()
            websocket = 200
        except aiohttp.WSServerHandshakeError:
            websocket = 400
        assert view in (200, 400), (host, view)
        verdicts[host] = (view, polling, websocket)
    assert all(v[0] == v[1] == v[2] for v in verdicts.values()), verdicts
    # the two configurations differ where Django says they do: DEBUG's implicit localhost allowance
    assert verdicts["sub.localhost"][0] == (200 if target.settings.endswith("security") else 400)
    assert verdicts["evil.example"][0] == 400


# -- rate-limited lines for bad input -------------------------------------------------------------


async def test_a_flood_of_bad_input_gets_a_few_lines_and_a_count_while_others_are_served(django_db_setup, http):
    """3 lines per kind per 2 s (tests/settings_security.py), then one line that counts the rest."""
    flooded = start()
    try:
        bad = {"Host": "evil.example"}
        status, _ = await status_and_body(http, flooded.url + HANDSHAKE)  # the server is up
        assert status == 200
        began = time.monotonic()
        for _ in range(20):
            status, _ = await status_and_body(http, flooded.url + HANDSHAKE, headers=bad)
            assert status == 400
        status, body = await status_and_body(http, flooded.url + HANDSHAKE)  # a good client, mid-flood
        assert status == 200 and body.startswith("0{")
        flood_took = time.monotonic() - began
        assert flood_took < 2.0, f"the flood outlasted the 2 s window ({flood_took:.1f} s): cannot count"
        lines = re.findall(r"refused: Bad request .*not in ALLOWED_HOSTS.*", flooded.log())
        assert len(lines) == 3, lines
        # the next bad request after the window is logged again, with the count of what was held back
        sent = 20
        deadline = time.monotonic() + 5
        while True:
            await status_and_body(http, flooded.url + HANDSHAKE, headers=bad)
            sent += 1
            match = re.search(r"not in ALLOWED_HOSTS \((\d+) more suppressed in the last (\d+) s\)", flooded.log())
            if match:
                break
            assert time.monotonic() < deadline, flooded.log()[-2000:]
            await asyncio.sleep(0.1)  # poll cadence: the server's clock decides when the window ends
        assert int(match[1]) == sent - 1 - 3  # every request but the 3 logged and the one reporting
        assert 1 <= int(match[2]) <= 3
    finally:
        flooded.stop()


# -- secrets --------------------------------------------------------------------------------------


async def test_no_token_or_cookie_reaches_the_debug_log(secure, agent, orm):
    """Every realtime logger at DEBUG, packets included; a token and a session cookie over both transports."""
    user = await orm(make_user, "secretive")
    token, secret = await orm(make_token, user)
    cookie = await orm(session_cookie, user)
    session_key = cookie.split("=", 1)[1]
    private = secure.url + "/private"
    mark = secure.mark()
    sockets = []
    for transport in ("polling", "websocket", "upgrade"):
        sockets.append(await agent.socket(f"token-{transport}").connect(private, transport, auth={"token": secret}))
        sockets.append(
            await agent.socket(f"cookie-{transport}").connect(private, transport, extraHeaders={"Cookie": cookie})
        )
    sockets.append(
        await agent.socket("bearer").connect(private, "polling", extraHeaders={"Authorization": f"Bearer {secret}"})
    )
    for socket in sockets:
        assert (await identity(socket))["user"] == user.username  # the credential was used
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        private.removesuffix("/private"),
        namespaces=["/private"],
        transports=["websocket"],
        auth={"token": secret},
        headers={"Cookie": cookie},
    )
    try:
        assert (await client.call("identity", namespace="/private", timeout=5))["token"] == token.prefix
    finally:
        await client.disconnect()
    log = secure.log()[mark:]
    assert "DEBUG realtime.engineio.packets" in log and "DEBUG realtime.socketio.packets" in log
    assert secret not in log and secret.split("_", 2)[2] not in log  # the random part may hold "_" itself
    assert session_key not in log
    assert log.count("<auth redacted>") >= 7, log[-3000:]  # each CONNECT above was logged, redacted
