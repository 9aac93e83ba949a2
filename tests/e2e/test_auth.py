"""Authentication at CONNECT, against real daphne processes on Redis, with real clients.

Tokens from the CONNECT auth object and the Authorization header, the Django
session cookie, namespace requirements, and revocation that disconnects live
sockets in every process within a second. The pytest process shares the
cluster's database and channel layer, so a token revoked here is revoked for
the servers the way one revoked in a shell or a Celery task would be.
"""

import asyncio
import time

import pytest
import socketio

from tests.admin_client import (
    AdminSession,
    eventually,
    make_token,
    make_user,
    session_cookie,
)


async def refusal(agent, url, **options):
    """The CONNECT_ERROR a client gets: (message, data)."""
    with pytest.raises(ConnectionError) as refused:
        await agent.socket("refused").connect(url, "websocket", **options)
    return refused.value.args


@pytest.mark.parametrize("transport", ["websocket", "polling", "upgrade"])
async def test_a_token_in_the_auth_object_authenticates(cluster, agent, orm, transport):
    user = await orm(make_user, "alice")
    token, secret = await orm(make_token, user)
    socket = await agent.socket("a").connect(cluster.servers[0].url, transport, auth={"token": secret})
    assert await socket.emit_with_ack("identity") == [{"user": user.username, "token": token.prefix, "namespace": "/"}]


async def test_a_bearer_header_authenticates(cluster, agent, orm):
    user = await orm(make_user, "bearer")
    token, secret = await orm(make_token, user)
    socket = await agent.socket("h").connect(
        cluster.servers[1].url, "polling", extraHeaders={"Authorization": f"Bearer {secret}"}
    )
    assert (await socket.emit_with_ack("identity"))[0]["token"] == token.prefix


async def test_python_socketio_client_with_a_token(cluster, orm):
    user = await orm(make_user, "py")
    _token, secret = await orm(make_token, user)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(cluster.servers[0].url, transports=["websocket"], auth={"token": secret})
    try:
        assert (await client.call("identity", timeout=5))["user"] == user.username
    finally:
        await client.disconnect()


async def test_wrong_tokens_are_refused_with_invalid_token_and_nothing_more(cluster, agent, orm):
    user = await orm(make_user, "wrong")
    token, secret = await orm(make_token, user)
    url = cluster.servers[0].url
    unknown_prefix = "rt_00000000_" + secret.split("_", 2)[2]
    wrong_secret = f"rt_{token.prefix}_" + "A" * 43
    for bad in (unknown_prefix, wrong_secret, "rt_nonsense", secret[:-1]):
        assert await refusal(agent, url, auth={"token": bad}) == ("invalid token", None), bad
    assert await refusal(agent, url, extraHeaders={"Authorization": f"Bearer {wrong_secret}"}) == (
        "invalid token",
        None,
    )
    # a revoked token, and the token of a deactivated user, are merely invalid
    revoked, revoked_secret = await orm(make_token, user)
    await orm(revoked.revoke)
    assert await refusal(agent, url, auth={"token": revoked_secret}) == ("invalid token", None)


async def test_python_client_sees_the_refusal(cluster, orm):
    client = socketio.AsyncClient(reconnection=False)
    errors = []
    client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(cluster.servers[1].url, transports=["websocket"], auth={"token": "rt_0_x"})
    assert errors == [{"message": "invalid token"}]


async def test_an_expired_token_is_refused(cluster, agent, orm):
    from datetime import timedelta

    user = await orm(make_user, "late")
    _token, secret = await orm(make_token, user, ttl=timedelta(seconds=-1))
    assert await refusal(agent, cluster.servers[0].url, auth={"token": secret}) == ("token expired", None)


async def test_a_live_socket_is_disconnected_when_its_token_expires(cluster, agent, orm):
    from datetime import timedelta

    user = await orm(make_user, "expiring")
    token, secret = await orm(make_token, user, ttl=timedelta(seconds=1.5))
    socket = await agent.socket("e").connect(cluster.servers[1].url, "websocket", auth={"token": secret})
    assert await socket.next("disconnect", timeout=3) == ("disconnect", ["io server disconnect"])
    late = (await orm(lambda: type(token).objects.get(pk=token.pk).expires)) - _now()
    assert abs(late.total_seconds()) < 0.5  # at expiry, not before, not much later


async def test_moving_a_tokens_expiry_rearms_its_sockets(cluster, agent, orm):
    from datetime import timedelta

    user = await orm(make_user, "moved")
    token, secret = await orm(make_token, user, ttl=timedelta(hours=1))
    sockets = await connect_on_both(agent, cluster, secret)

    def expire_soon():
        token.expires = _now() + timedelta(seconds=1)
        token.save()

    await orm(expire_soon)
    for socket in sockets:
        assert await socket.next("disconnect", timeout=3) == ("disconnect", ["io server disconnect"])
    assert abs((_now() - token.expires).total_seconds()) < 0.5


def _now():
    from django.utils import timezone

    return timezone.now()


async def test_token_limited_to_namespaces(cluster, agent, orm):
    user = await orm(make_user, "chatonly")
    _token, secret = await orm(make_token, user, namespaces=["/chat"])
    url = cluster.servers[0].url
    assert await refusal(agent, url, auth={"token": secret}) == ("permission denied", None)
    chat = await agent.socket("c").connect(url + "/chat", "websocket", auth={"token": secret, "nick": "x"})
    assert chat.id


async def test_namespace_requirements(cluster, agent, orm):
    url = cluster.servers[1].url
    nobody = await orm(make_user, "nobody")
    viewer = await orm(make_user, "viewer", perms=("realtime.view_connection",))
    sre = await orm(make_user, "sre", groups=("sre",))
    admin = await orm(make_user, "root", superuser=True)
    secrets = {u.username: (await orm(make_token, u))[1] for u in (nobody, viewer, sre, admin)}

    # login_required
    assert await refusal(agent, url + "/private") == ("permission denied", None)
    private = await agent.socket("p").connect(url + "/private", "websocket", auth={"token": secrets[nobody.username]})
    assert (await private.emit_with_ack("identity"))[0]["user"] == nobody.username
    # permission_required
    for who in (None, nobody):
        auth = {"token": secrets[who.username]} if who else {}
        assert await refusal(agent, url + "/staff", auth=auth) == ("permission denied", None)
    for who in (viewer, admin):
        await agent.socket(f"s-{who.pk}").connect(url + "/staff", "websocket", auth={"token": secrets[who.username]})
    # groups_required: any of ops, sre
    assert await refusal(agent, url + "/ops", auth={"token": secrets[viewer.username]}) == ("permission denied", None)
    ops = await agent.socket("o").connect(url + "/ops", "polling", auth={"token": secrets[sre.username]})
    assert (await ops.emit_with_ack("identity"))[0]["namespace"] == "/ops"


async def test_session_cookie_of_a_logged_in_browser(cluster, agent, orm):
    """Log in through Django's login view, then connect with the browser's cookie: no token needed."""
    user = await orm(make_user, "browser", superuser=True)
    admin = await asyncio.to_thread(AdminSession(cluster.servers[0].url).login, user.username)
    for server, transport in ((cluster.servers[0], "upgrade"), (cluster.servers[1], "polling")):
        socket = await agent.socket(f"b-{transport}").connect(
            server.url + "/private", transport, extraHeaders={"Cookie": admin.cookie_header}
        )
        assert await socket.emit_with_ack("identity") == [
            {"user": user.username, "token": None, "namespace": "/private"}
        ]
    # python-socketio, with a session made in the database
    cookie = await orm(session_cookie, user)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(cluster.servers[1].url, transports=["websocket"], headers={"Cookie": cookie})
    try:
        assert (await client.call("identity", timeout=5))["user"] == user.username
    finally:
        await client.disconnect()
    # a cookie of no session is anonymous
    assert await refusal(agent, cluster.servers[0].url + "/private", extraHeaders={"Cookie": "sessionid=nope"}) == (
        "permission denied",
        None,
    )


async def test_token_last_used_is_recorded(cluster, agent, orm):
    user = await orm(make_user, "used")
    token, secret = await orm(make_token, user)
    await agent.socket("u").connect(cluster.servers[0].url, "websocket", auth={"token": secret})

    async def last_used():
        return await orm(lambda: type(token).objects.get(pk=token.pk).last_used)

    assert await eventually(last_used, timeout=2)


# -- revocation bites --------------------------------------------------------------------------------


async def connect_on_both(agent, cluster, secret):
    return [
        await agent.socket(f"r{i}").connect(server.url, "websocket", auth={"token": secret})
        for i, server in enumerate(cluster.servers)
    ]


async def dropped_within(sockets, seconds, started):
    for socket in sockets:
        assert await socket.next("disconnect", timeout=seconds) == ("disconnect", ["io server disconnect"])
    elapsed = time.monotonic() - started
    assert elapsed <= seconds, elapsed
    return elapsed


async def test_revoking_a_token_disconnects_its_sockets_in_every_process(cluster, agent, orm):
    user = await orm(make_user, "revoked")
    token, secret = await orm(make_token, user)
    _other, other_secret = await orm(make_token, user)
    sockets = await connect_on_both(agent, cluster, secret)
    bystander = await agent.socket("bystander").connect(
        cluster.servers[1].url, "websocket", auth={"token": other_secret}
    )

    started = time.monotonic()
    await orm(token.revoke)
    await dropped_within(sockets, 1.0, started)
    assert await bystander.emit_with_ack("echo", "still here") == ["still here"]
    assert await refusal(agent, cluster.servers[0].url, auth={"token": secret}) == ("invalid token", None)


async def test_deleting_a_token_disconnects_its_sockets(cluster, agent, orm):
    user = await orm(make_user, "deleted-token")
    token, secret = await orm(make_token, user)
    sockets = await connect_on_both(agent, cluster, secret)
    started = time.monotonic()
    await orm(token.delete)
    await dropped_within(sockets, 1.0, started)


async def test_deactivating_a_user_disconnects_tokens_and_sessions(cluster, agent, orm):
    user = await orm(make_user, "deactivated")
    _token, secret = await orm(make_token, user)
    cookie = await orm(session_cookie, user)
    sockets = await connect_on_both(agent, cluster, secret)
    sockets.append(
        await agent.socket("cookie").connect(
            cluster.servers[1].url + "/private", "polling", extraHeaders={"Cookie": cookie}
        )
    )

    def deactivate():
        user.is_active = False
        user.save()

    started = time.monotonic()
    await orm(deactivate)
    await dropped_within(sockets, 1.0, started)
    assert await refusal(agent, cluster.servers[0].url, auth={"token": secret}) == ("invalid token", None)


async def test_deleting_a_user_disconnects_their_sockets(cluster, agent, orm):
    user = await orm(make_user, "deleted-user")
    _token, secret = await orm(make_token, user)
    sockets = await connect_on_both(agent, cluster, secret)
    started = time.monotonic()
    await orm(user.delete)
    await dropped_within(sockets, 1.0, started)


async def test_revoking_from_the_management_command(cluster, agent, orm):
    user = await orm(make_user, "cli")
    token, secret = await orm(make_token, user)
    sockets = await connect_on_both(agent, cluster, secret)
    result = await asyncio.to_thread(cluster.manage, "realtime_token", "revoke", token.prefix)
    started = time.monotonic()  # the command's Django start-up is not the revocation's latency
    assert result.returncode == 0, result.stderr
    assert f"revoked token {token.prefix}" in result.stdout
    await dropped_within(sockets, 1.0, started)


async def test_revoking_from_the_admin(cluster, agent, orm):
    operator = await orm(make_user, "operator", superuser=True)
    user = await orm(make_user, "victim")
    token, secret = await orm(make_token, user)
    sockets = await connect_on_both(agent, cluster, secret)
    admin = await asyncio.to_thread(AdminSession(cluster.servers[0].url).login, operator.username)
    started = time.monotonic()
    page = await asyncio.to_thread(admin.action, "/admin/realtime/accesstoken/", "revoke", [token.pk])
    assert "Revoked 1 tokens." in page
    await dropped_within(sockets, 1.0, started)
