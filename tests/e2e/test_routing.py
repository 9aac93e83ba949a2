"""Both ways of routing realtime: ``SocketIORouter`` (tests/asgi.py, the README's) and the URL patterns
inside Channels' routers (tests/asgi_patterns.py), on daphne and on uvicorn, with real clients.

The router is also called in-process with plain ASGI scopes: which requests it keeps, which it hands on.
"""

import asyncio
import json
import urllib.request

import pytest
import socketio

from realtime.routing import SocketIORouter
from tests.servers import ServerProcess


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def patterns_server(request, django_db_setup):
    process = ServerProcess("tests.settings", app="tests.asgi_patterns:application", asgi_server=request.param).start()
    yield process
    process.stop()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_url_patterns_serve_socketio_engineio_and_django(patterns_server, transports):
    sio = socketio.AsyncClient(reconnection=False)
    welcome = asyncio.get_running_loop().create_future()
    sio.on("welcome", welcome.set_result)
    await sio.connect(patterns_server.url, transports=transports, auth={"token": "py"})
    try:
        assert await asyncio.wait_for(welcome, 5) == {"token": "py"}
        assert await sio.call("echo", ["é😀", {"bin": b"\x00\x01"}], timeout=5) == ["é😀", {"bin": b"\x00\x01"}]
        assert sio.transport() == transports[-1]  # python-engineio upgrades before connect() returns
    finally:
        await sio.disconnect()
    # the echo endpoint (/engine.io/) beside it, and Django for the rest
    status, body = await asyncio.to_thread(_get, f"{patterns_server.url}/engine.io/?EIO=4&transport=polling")
    assert status == 200 and body.startswith(b"0{") and json.loads(body[1:])["upgrades"] == ["websocket"]
    status, body = await asyncio.to_thread(_get, f"{patterns_server.url}/admin/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body


async def test_router_serves_django_beside_socketio(server):
    """tests/asgi.py is SocketIORouter(Django): everything that is not an Engine.IO path is Django's."""
    status, body = await asyncio.to_thread(_get, f"{server.url}/admin/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body
    status, body = await asyncio.to_thread(_get, f"{server.url}/socket.io/?EIO=4&transport=polling")
    assert status == 200 and body.startswith(b"0{")


class Recorder:
    """The wrapped application: records what the router handed on."""

    def __init__(self):
        self.scopes = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)


@pytest.fixture
def router():
    from realtime.routing import endpoint_from_settings

    return SocketIORouter(Recorder(), endpoints={"rt-routing": endpoint_from_settings()})


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "lifespan"},
        {"type": "http", "path": "/"},
        {"type": "http", "path": "/rt-routing"},  # no trailing slash: Django's (as URLRouter's pattern)
        {"type": "http", "path": "/rt-routing/x/"},
        {"type": "websocket", "path": "/other/"},
        {"type": "http", "path": "/rt-routing/", "root_path": "/app"},  # not below the root path
    ],
)
async def test_router_hands_on_what_is_not_its_own(router, scope):
    async def receive():
        raise AssertionError("the router itself read the request")

    await router(scope, receive, None)
    assert router.application.scopes == [scope]
    assert router.application.scopes[0] is scope  # passed on as the server made it, not copied


@pytest.mark.parametrize(
    "scope",
    [
        {"path": "/rt-routing/"},
        {"path": "//rt-routing/"},  # leading slashes ignored, as URLRouter does
        {"path": "/app/rt-routing/", "root_path": "/app"},
    ],
)
async def test_router_keeps_its_engineio_paths(router, scope):
    """A polling request at the endpoint's path is answered by realtime, not the wrapped app."""
    scope = {
        "type": "http",
        "method": "GET",
        "query_string": b"EIO=4&transport=polling",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        **scope,
    }
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    sent = []
    answered = asyncio.Event()

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays: the consumer waits for a disconnect

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body":
            answered.set()

    task = asyncio.ensure_future(router(scope, receive, send))
    try:
        await asyncio.wait_for(answered.wait(), 5)
    finally:
        task.cancel()
    assert router.application.scopes == []
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    body = next(m for m in sent if m["type"] == "http.response.body")["body"]
    assert body.startswith(b"0{") and '"sid"' in body.decode()
