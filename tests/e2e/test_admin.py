"""The Django admin on a live cluster: the Connection list stays true, and its actions reach real clients.

Two daphne processes share Redis and the run's database; the operator's
admin runs in the first, the clients sit (mostly) on the second, so every
action has to cross processes to have its effect.
"""

import asyncio
import re
import time
from datetime import timedelta

import pytest
import socketio

from tests.admin_client import (
    AdminSession,
    changelist_rows,
    eventually,
    make_token,
    make_user,
    redis_layer,
)
from tests.cluster import Cluster, ensure_redis_installed

CONNECTIONS = "/admin/realtime/connection/"
TOKENS = "/admin/realtime/accesstoken/"
ROOMS = "/admin/realtime/room/"
AGENT = "realtime-admin-test/1.0 (socket.io-client)"


@pytest.fixture
async def admin(cluster, orm):
    operator = await orm(make_user, "operator", superuser=True)
    return await asyncio.to_thread(AdminSession(cluster.servers[0].url).login, operator.username)


async def rows(admin, query=""):
    return changelist_rows(await asyncio.to_thread(admin.get, CONNECTIONS + query))


async def row_of(admin, socket_id, **expected):
    """The admin's row for a socket, once it shows ``expected`` (field -> text)."""

    async def found():
        for row in await rows(admin, f"?q={socket_id}"):
            if row.get("socket_id") == socket_id and all(row.get(k) == v for k, v in expected.items()):
                return row
        return None

    return await eventually(found, timeout=3)


async def registered(orm, *socket_ids):
    from realtime.models import Connection

    return await orm(
        lambda: set(Connection.objects.filter(socket_id__in=socket_ids).values_list("socket_id", flat=True))
    )


async def test_the_list_shows_a_connected_client_with_the_right_fields(cluster, agent, admin, orm):
    from realtime.models import Connection

    user = await orm(make_user, "listed")
    token, secret = await orm(make_token, user)
    socket = await agent.socket("a").connect(
        cluster.servers[1].url, "upgrade", auth={"token": secret}, extraHeaders={"User-Agent": AGENT}
    )
    await socket.emit_with_ack("join", "lobby", "news")
    # upgraded from polling: the registry follows the transport
    row = await row_of(admin, socket.id, transport="websocket", room_list="lobby, news")
    assert row["namespace"] == "/"
    assert row["user_link"] == user.username
    assert row["address"] == "127.0.0.1"
    assert row["agent"] == AGENT[:40]
    moment = r"(\d{4}-\d\d-\d\d \d\d:\d\d|\d\d:\d\d:\d\d)"  # a time today, else date and time
    assert re.fullmatch(moment, row["since"]) and re.fullmatch(moment, row["active"])
    assert f":{cluster.servers[1].process.pid}:" in row["server"]
    state = await socket.state()
    stored = await orm(lambda: Connection.objects.get(socket_id=socket.id))
    assert (stored.sid, stored.token_id, stored.user_agent) == (state["sid"], token.pk, AGENT)
    assert stored.connected_at <= stored.last_activity


async def test_a_disconnected_socket_leaves_the_list_within_a_second(cluster, agent, admin, orm):
    socket = await agent.socket("d").connect(cluster.servers[1].url, "websocket")
    await row_of(admin, socket.id)
    await socket.disconnect()
    started = time.monotonic()

    async def gone():
        return not await registered(orm, socket.id)

    await eventually(gone, timeout=1.0, interval=0.02)
    assert time.monotonic() - started <= 1.0
    assert [r for r in await rows(admin, f"?q={socket.id}") if r.get("socket_id") == socket.id] == []


async def test_filters_and_search(cluster, agent, admin, orm):
    user = await orm(make_user, "filtered")
    _token, secret = await orm(make_token, user)
    a = await agent.socket("a").connect(cluster.servers[0].url + "/private", "polling", auth={"token": secret})
    b = await agent.socket("b").connect(cluster.servers[1].url, "websocket")
    await row_of(admin, a.id)
    await row_of(admin, b.id)
    by_namespace = {r["socket_id"] for r in await rows(admin, "?namespace=/private")}
    assert a.id in by_namespace and b.id not in by_namespace
    by_transport = {r["socket_id"] for r in await rows(admin, "?transport=polling")}
    assert a.id in by_transport and b.id not in by_transport
    key = await orm(lambda: __import__("realtime.models").models.Connection.objects.get(socket_id=b.id).server_id)
    by_server = {r["socket_id"] for r in await rows(admin, f"?server__key__exact={key}")}
    assert b.id in by_server and a.id not in by_server
    by_user = {r["socket_id"] for r in await rows(admin, f"?user__id__exact={user.pk}")}
    assert by_user == {a.id}
    assert {r["socket_id"] for r in await rows(admin, f"?q={user.username}")} == {a.id}


async def test_admin_actions_reach_clients_on_another_process(cluster, agent, admin, orm):
    node_client = await agent.socket("n").connect(cluster.servers[1].url, "websocket")
    py_client = socketio.AsyncClient(reconnection=False)
    received = asyncio.Queue()
    py_client.on("notice", lambda *args: received.put_nowait(args))
    await py_client.connect(cluster.servers[1].url, transports=["polling"])
    try:
        await row_of(admin, node_client.id)
        await row_of(admin, py_client.get_sid())
        ids = [node_client.id, py_client.get_sid()]

        page = await asyncio.to_thread(
            admin.action, CONNECTIONS, "send_event", ids, event="notice", payload='["hello", {"n": 1}]'
        )
        assert "Sent &#x27;notice&#x27; to 2 sockets." in page
        assert await node_client.next_event("notice") == ["hello", {"n": 1}]
        assert await asyncio.wait_for(received.get(), 5) == ("hello", {"n": 1})

        page = await asyncio.to_thread(admin.action, CONNECTIONS, "join_room", ids, room="vip")
        assert "2 sockets joined &#x27;vip&#x27;." in page
        [me] = await node_client.emit_with_ack("whoami")
        assert "vip" in me["rooms"]
        assert "vip" in (await py_client.call("whoami", timeout=5))["rooms"]
        await row_of(admin, node_client.id, room_list="vip")

        page = await asyncio.to_thread(admin.action, CONNECTIONS, "leave_room", [node_client.id], room="vip")
        assert "1 sockets left &#x27;vip&#x27;." in page
        [me] = await node_client.emit_with_ack("whoami")
        assert "vip" not in me["rooms"]

        page = await asyncio.to_thread(admin.action, CONNECTIONS, "disconnect", ids)
        assert "Disconnected 2 of 2 sockets." in page
        assert await node_client.next("disconnect") == ("disconnect", ["io server disconnect"])
    finally:
        await py_client.disconnect()


async def test_invalid_event_payload_is_refused_by_the_form(cluster, agent, admin):
    socket = await agent.socket("x").connect(cluster.servers[0].url, "websocket")
    await row_of(admin, socket.id)
    page = await asyncio.to_thread(admin.action, CONNECTIONS, "send_event", [socket.id], event="e", payload="{nope")
    assert "Not JSON" in page
    assert await socket.emit_with_ack("echo", 1) == [1]  # nothing was sent, still connected


async def test_creating_a_token_shows_the_secret_once_and_it_works(cluster, agent, admin, orm):
    from realtime.models import AccessToken

    owner = await orm(make_user, "owner")
    form = await asyncio.to_thread(admin.get, TOKENS + "add/")
    assert 'name="namespaces"' in form
    page = await asyncio.to_thread(
        admin.post,
        TOKENS + "add/",
        {"user": owner.pk, "name": "kiosk", "namespaces": "/chat /", "expires_0": "", "expires_1": ""},
    )
    secret = re.search(r'id="token-secret"[^>]*>(rt_[0-9a-f]{8}_[A-Za-z0-9_-]+)<', page).group(1)
    token = await orm(lambda: AccessToken.objects.get(name="kiosk", user=owner))
    assert secret.split("_")[1] == token.prefix
    assert secret not in await asyncio.to_thread(admin.get, TOKENS)
    assert secret not in await asyncio.to_thread(admin.get, f"{TOKENS}{token.pk}/change/")
    socket = await agent.socket("k").connect(cluster.servers[1].url, "websocket", auth={"token": secret})
    assert (await socket.emit_with_ack("identity"))[0] == {
        "user": owner.username,
        "token": token.prefix,
        "namespace": "/",
    }
    assert await _refusal(agent, cluster.servers[1].url + "/private", {"token": secret}) == ("permission denied", None)


async def _refusal(agent, url, auth):
    with pytest.raises(ConnectionError) as refused:
        await agent.socket("refused").connect(url, "websocket", auth=auth)
    return refused.value.args


async def test_rooms_admin_counts_broadcasts_empties_and_closes(cluster, agent, admin, orm):
    from realtime.models import Room

    name = f"hall-{time.monotonic_ns()}"
    room = await orm(Room.objects.create, name=name, namespace="/", description="the main hall")
    sockets = [await agent.socket(f"m{i}").connect(cluster.servers[i % 2].url, "websocket") for i in range(3)]
    for socket in sockets:
        assert await socket.emit_with_ack("enter", name) == [[name]]

    async def members():
        for row in changelist_rows(await asyncio.to_thread(admin.get, f"{ROOMS}?q={name}")):
            if row.get("name") == name:
                return row["live_members"]
        return None

    assert await members() == "3"

    page = await asyncio.to_thread(admin.action, ROOMS, "broadcast", [room.pk], event="news", payload='"all hands"')
    assert "Broadcast &#x27;news&#x27; to 1 rooms." in page
    for socket in sockets:
        assert await socket.next_event("news") == ["all hands"]

    page = await asyncio.to_thread(admin.action, ROOMS, "remove_everyone", [room.pk])
    assert "Removed 3 sockets from 1 rooms." in page
    for socket in sockets:
        assert name not in (await socket.emit_with_ack("whoami"))[0]["rooms"]
    assert await members() == "0"

    assert await sockets[0].emit_with_ack("enter", name) == [[name]]  # still open: one comes back
    page = await asyncio.to_thread(admin.action, ROOMS, "close", [room.pk])
    assert "Closed 1 rooms; 1 sockets removed." in page
    for socket in sockets:  # on both processes, the closed room refuses
        assert await socket.emit_with_ack("enter", name) == [{"error": "room is closed"}]
    assert await orm(lambda: Room.objects.get(pk=room.pk).is_open) is False


async def test_dashboard_shows_totals_and_the_load_chart(cluster, agent, admin, orm):
    from realtime.models import Sample

    since = await orm(_now) - timedelta(seconds=1)  # the start of the sample bucket we are in
    sockets = [await agent.socket(f"l{i}").connect(cluster.servers[i % 2].url + "/any", "websocket") for i in range(4)]
    for socket in sockets:
        await socket.emit("ping")  # CatchAll answers every event: messages in and out

    async def sampled():
        return await orm(lambda: Sample.objects.filter(at__gte=since, messages_in__gte=1).exists())

    async def listed():
        return await registered(orm, *(s.id for s in sockets)) == {s.id for s in sockets}

    await eventually(listed)
    await eventually(sampled, timeout=5)
    page = await asyncio.to_thread(admin.get, CONNECTIONS + "dashboard/?minutes=5")
    assert "Realtime dashboard" in page
    by_namespace = re.search(r'id="rt-by-namespace".*?</table>', page, re.S).group(0)
    assert int(re.search(r">/any</a></td><td class=\"n\">(\d+)<", by_namespace).group(1)) == 4
    assert int(re.search(r'class="rt-total">(\d+)<', page).group(1)) >= 4
    assert "websocket" in re.search(r'id="rt-by-transport".*?</table>', page, re.S).group(0)
    servers = re.search(r'id="rt-by-server".*?</table>', page, re.S).group(0)
    for server in cluster.servers:
        assert f":{server.process.pid}:" in servers
    polylines = re.findall(r'<polyline class="(\w+)" points="([^"]*)"', page)
    assert {css for css, points in polylines if points} == {"conn", "in", "out"}


def _now():
    from django.utils import timezone

    return timezone.now()


async def test_a_killed_process_leaves_the_list_within_the_heartbeat_window(agent, orm):
    """Its rows are reaped by the survivor (3 heartbeats of 300 ms here), and hidden until then."""
    ensure_redis_installed()
    small = Cluster(2).start()
    try:
        with redis_layer(small.redis.url):
            operator = await orm(make_user, "operator", superuser=True)
            admin = await asyncio.to_thread(AdminSession(small.servers[0].url).login, operator.username)
            survivor = await agent.socket("s").connect(small.servers[0].url, "websocket")
            doomed = [await agent.socket(f"d{i}").connect(small.servers[1].url, "websocket") for i in range(3)]
            for socket in (survivor, *doomed):
                await row_of(admin, socket.id)

            small.servers[1].kill()
            started = time.monotonic()

            async def reaped():
                return not await registered(orm, *(s.id for s in doomed))

            await eventually(reaped, timeout=3, interval=0.05)
            assert time.monotonic() - started <= 0.9 + 1.0  # three heartbeats, plus a flush and slack
            listed = {r["socket_id"] for r in await rows(admin)}
            assert survivor.id in listed and not listed & {s.id for s in doomed}
    finally:
        small.stop()
