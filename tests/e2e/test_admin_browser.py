"""The admin pages and the dashboard in a real Chromium (playwright-core), with screenshots in tests/artifacts/.

Also the browser half of session authentication: after logging in through
the admin's login form, a Socket.IO connection from the same browser is that
user, with no token.
"""

import re

from tests.admin_client import PASSWORD, eventually, make_token, make_user
from tests.e2e.test_browser import ARTIFACTS

SCREENSHOTS = ["admin-connections", "admin-token-created", "admin-tokens", "admin-rooms", "admin-dashboard"]


def declare_room(name):
    from realtime.models import Room

    return Room.objects.get_or_create(name=name, namespace="/", defaults={"description": "shown in Chromium"})[0]


async def test_admin_pages_and_dashboard_in_chromium(server, agent, orm, node, browser_ready):
    operator = await orm(make_user, "chromium", superuser=True)
    member = await orm(make_user, "member")
    _token, secret = await orm(make_token, member)
    room = await orm(declare_room, "lobby")
    socket = await agent.socket("s").connect(server.url, "upgrade", auth={"token": secret})
    await socket.emit_with_ack("enter", "lobby")
    await socket.emit_with_ack("echo", "some traffic for the chart")

    from realtime.models import Connection

    async def listed():
        return await orm(lambda: Connection.objects.filter(socket_id=socket.id, rooms__icontains="lobby").exists())

    await eventually(listed)
    for name in SCREENSHOTS:
        (ARTIFACTS / f"{name}.png").unlink(missing_ok=True)

    report = node(
        "browser_admin.mjs",
        server.url,
        {
            "username": operator.username,
            "password": PASSWORD,
            "socketId": socket.id,
            "tokenUser": member.pk,
            "room": room.name,
            "screenshots": str(ARTIFACTS),
        },
        timeout=120,
    )

    assert report["error"] is None, f"{report['error']}\nserver log tail:\n{server.log()[-3000:]}"
    assert report["pageErrors"] == []
    assert report["adminTitle"].startswith("Site administration")
    assert report["connectionRow"] == {
        "namespace": "/",
        "user": member.username,
        "transport": "websocket",
        "rooms": "lobby",
    }
    # (the server filter appears once there are two processes to choose from: tests/e2e/test_admin.py)
    assert {"by namespace", "by transport", "by user"} <= {f.strip().lower() for f in report["filters"]}
    assert re.fullmatch(r"rt_[0-9a-f]{8}_[A-Za-z0-9_-]+", report["secret"])
    assert report["tokenListShowsSecret"] is False
    assert int(report["liveMembers"]) >= 1
    assert int(report["dashboard"]["total"]) >= 1
    assert report["dashboard"]["charts"] == ["Connections", "Messages per second"]
    assert all(count > 0 for count in report["dashboard"]["drawn"])
    assert report["loggedInIdentity"] == {"user": operator.username, "token": None, "namespace": "/private"}
    assert report["anonymousIdentity"] == {"error": "permission denied"}
    for name in SCREENSHOTS:
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000, name
