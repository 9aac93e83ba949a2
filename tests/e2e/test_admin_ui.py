"""The official Socket.IO admin UI (@socket.io/admin-ui) against a two-process cluster on Redis.

The UI's built files (node_modules/@socket.io/admin-ui/ui/dist) are served from
another origin, as admin.socket.io would serve them, by a small static file
server in this process; Chromium (playwright-core, tests/js/admin_ui.mjs)
logs in to process A as a Django staff user. The clients are real
socket.io-client sockets, one on each process, so the UI's lists, room pages
and its disconnect button are shown to work across processes.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.admin_client import PASSWORD, session_cookie, unique
from tests.cluster import Cluster, ensure_redis_installed
from tests.conftest import run_node
from tests.e2e.test_browser import ARTIFACTS
from tests.servers import ROOT

UI_DIST = ROOT / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
SCREENSHOTS = [
    "admin-ui-refused",
    "admin-ui-servers",
    "admin-ui-sockets",
    "admin-ui-socket",
    "admin-ui-rooms",
    "admin-ui-disconnected",
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def ui_server() -> Iterator[str]:
    """The UI's files on a free loopback port: a second origin, as the hosted UI is."""
    if not (UI_DIST / "index.html").exists():
        pytest.fail(f"{UI_DIST} is missing: run `make setup` (npm ci installs @socket.io/admin-ui)")
    handler = functools.partial(QuietHandler, directory=str(UI_DIST))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def ui_cluster(ui_server: str, django_db_setup: None) -> Iterator[Cluster]:
    """Two daphne processes on a private Redis, with REALTIME["ADMIN_UI"] on and the UI's origin allowed."""
    ensure_redis_installed()
    # a generous pong deadline: the polling client must outlive a busy machine for the whole browser run
    env = {"REALTIME_ADMIN_UI_ORIGIN": ui_server, "REALTIME_PING_TIMEOUT": "10000"}
    cluster = Cluster(2, env=env).start()
    yield cluster
    cluster.stop()


def make_staff(stem: str, *, staff: bool = True):
    from django.contrib.auth.models import User

    name = unique(stem)
    return User.objects.create_user(name, f"{name}@example.com", PASSWORD, is_staff=staff)


async def test_admin_ui_in_chromium_lists_and_disconnects_across_the_cluster(
    ui_server, ui_cluster, agent, orm, browser_ready
):
    a, b = ui_cluster.servers
    staff = await orm(make_staff, "ui-staff")
    room = unique("ops")
    remote = await agent.socket("remote").connect(b.url, "websocket")  # on process B; the UI talks to A
    nearby = await agent.socket("nearby").connect(a.url, "polling")
    assert await remote.emit_with_ack("join", room) == [[room]]
    for name in SCREENSHOTS:
        (ARTIFACTS / f"{name}.png").unlink(missing_ok=True)

    report = await asyncio.to_thread(
        run_node,
        "admin_ui.mjs",
        {
            "ui": ui_server + "/",
            "server": a.url,
            "username": staff.username,
            "password": PASSWORD,
            "wrongPassword": PASSWORD + "!",
            "socketIds": [remote.id, nearby.id],
            "target": remote.id,
            "room": room,
            "pids": [a.process.pid, b.process.pid],
            "screenshots": str(ARTIFACTS),
        },
        timeout=150,
    )

    assert report["error"] is None, f"{report['error']}\nA log tail:\n{a.log()[-3000:]}\nB log tail:\n{b.log()[-3000:]}"
    assert report["pageErrors"] == []
    assert report["refusal"] == "Invalid credentials"
    assert report["sessionSaved"] is True
    # both processes' server_stats, pulled by A: one row each, with its pid
    assert len(report["serverRows"]) == 2
    assert all(any(str(s.process.pid) in row for row in report["serverRows"]) for s in (a, b))
    assert report["socketRows"][remote.id][:3] == [remote.id, "127.0.0.1", "WebSocket"]
    assert report["socketRows"][nearby.id][:3] == [nearby.id, "127.0.0.1", "HTTP long-polling"]
    assert any(room in row for row in report["socketPageRooms"])
    assert report["roomRow"][0] == room and report["roomRow"][2] == "1"
    assert not any(remote.id in row for row in report["remainingRows"])
    assert any(nearby.id in row for row in report["remainingRows"])
    # the client on the other process really was disconnected by the server, and the other one was not
    assert await remote.next("disconnect", timeout=5) == ("disconnect", ["io server disconnect"])
    assert (await nearby.emit_with_ack("echo", "still here")) == ["still here"]
    for name in SCREENSHOTS:
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000, name
    assert "logged in from" in a.log() and PASSWORD not in a.log() + b.log()


@pytest.mark.parametrize("case", ["wrong password", "not staff", "no credentials", "forged session"])
async def test_admin_namespace_refuses_anyone_but_staff(ui_cluster, agent, orm, case):
    staff = await orm(make_staff, "ui-staff")
    outsider = await orm(make_staff, "ui-outsider", staff=False)
    auth = {
        "wrong password": {"username": staff.username, "password": "nope"},
        "not staff": {"username": outsider.username, "password": PASSWORD},
        "no credentials": {},
        "forged session": {"sessionId": f"{staff.pk}:1abcde:forgedsignature"},
    }[case]
    with pytest.raises(ConnectionError) as refused:
        await agent.socket("ui").connect(ui_cluster.servers[0].url + "/admin", "websocket", auth=auth)
    assert refused.value.args[0] == "invalid credentials"


async def test_a_session_id_logs_in_on_any_process_and_commands_reach_the_other(ui_cluster, agent, orm):
    """The UI's protocol without the UI: session id from A works on B; join/leave/emit reach sockets of A."""
    a, b = ui_cluster.servers
    staff = await orm(make_staff, "ui-staff")
    first = await agent.socket("first").connect(
        a.url + "/admin", "websocket", auth={"username": staff.username, "password": PASSWORD}
    )
    (session_id,) = await first.next_event("session")
    assert (await first.next_event("config"))[0]["supportedFeatures"][:4] == ["EMIT", "JOIN", "LEAVE", "DISCONNECT"]
    await first.disconnect()

    target = await agent.socket("target").connect(a.url, "websocket")
    admin = await agent.socket("admin").connect(b.url + "/admin", "polling", auth={"sessionId": session_id})
    sockets = (await admin.next_event("all_sockets"))[0]
    listed = {s["id"]: s for s in sockets}
    assert target.id in listed and listed[target.id]["nsp"] == "/" and listed[target.id]["rooms"] == [target.id]
    assert "cookie" not in listed[target.id]["handshake"]["headers"]

    late = await agent.socket("late").connect(a.url, "websocket")  # A relays what happens once B's UI watches
    connected = await admin.next_event("socket_connected")
    assert connected[0]["id"] == late.id and connected[0]["transport"] == "websocket" and connected[1].endswith("Z")
    assert await late.emit_with_ack("echo", "seen") == ["seen"]
    assert (await admin.next_event("event_received"))[:3] == ["/", late.id, ["echo", "seen"]]
    assert (await admin.next_event("server_stats"))[0]["serverId"]

    room = unique("pulled")
    await admin.emit("join", "/", room, target.id)
    joined = await admin.next_event("room_joined")
    assert joined[:3] == ["/", room, target.id]
    await admin.emit("emit", "/", room, "from-admin", {"n": 1})
    assert await target.next_event("from-admin") == [{"n": 1}]
    await admin.emit("leave", "/", room, target.id)
    assert (await admin.next_event("room_left"))[:3] == ["/", room, target.id]
    await admin.emit("_disconnect", "/", False, target.id)
    assert await target.next("disconnect") == ("disconnect", ["io server disconnect"])
    gone = await admin.next_event("socket_disconnected")
    assert gone[:3] == ["/", target.id, "server namespace disconnect"]


@pytest.mark.parametrize("staff", [True, False])
async def test_the_django_session_cookie_of_a_staff_user_logs_in(ui_cluster, agent, orm, staff):
    """A browser logged in to this site's Django admin needs no password; a non-staff session does not pass."""
    user = await orm(make_staff, "ui-cookie", staff=staff)
    cookie = await orm(session_cookie, user)
    socket = agent.socket("cookie")
    await socket.open(ui_cluster.servers[1].url + "/admin", "polling", extraHeaders={"Cookie": cookie})
    kind, args = await socket.next("connect", "connect_error")
    if staff:
        assert kind == "connect"
        assert (await socket.next_event("config"))[0]["supportedFeatures"][-1] == "ALL_EVENTS"
    else:
        assert (kind, args[0]) == ("connect_error", "invalid credentials")
