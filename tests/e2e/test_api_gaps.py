"""API a real app needs, each against real clients (the /gaps namespace in tests/sockets.py).

Catch-all acks, ``socket.transport`` and ``socket.conn`` (id, ``close()``),
one shape for ``emit_with_ack``, ``socket.timeout(s).emit_with_ack``,
``socket.handshake``, and ``manage.py realtime_emit`` refusing the in-memory layer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import socketio

from tests.servers import ROOT


async def gaps(agent, server, name, transport="websocket", **options):
    return await agent.socket(name).connect(f"{server.url}/gaps", transport, **options)


async def test_on_any_answers_the_ack_of_an_event_without_handler(agent, server, transport):
    socket = await gaps(agent, server, "a", transport)
    assert await socket.emit_with_ack("no-such-event", 1, "x") == [{"caught": "no-such-event", "args": [1, "x"]}]
    assert await socket.emit_with_ack("join", "r") == ["r"]  # an event with a handler: the handler's answer
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, namespaces=["/gaps"], transports=["websocket"])
    try:
        assert await client.call("nothing", {"k": 1}, namespace="/gaps", timeout=5) == {
            "caught": "nothing",
            "args": [{"k": 1}],
        }
    finally:
        await client.disconnect()


async def test_transport_and_engineio_id_follow_the_upgrade(agent, server, transport):
    socket = await gaps(agent, server, "a", transport)
    if transport == "upgrade" and socket.transport != "websocket":  # not upgraded before its CONNECT answer
        await socket.next("upgrade")
    state = await socket.state()
    [me] = await socket.emit_with_ack("whoami")
    assert me["id"] == socket.id and me["conn"] == state["sid"] != socket.id
    assert me["transport"] == state["transport"] == ("polling" if transport == "polling" else "websocket")
    assert await socket.emit_with_ack("whoami_sync") == [{"transport": me["transport"], "conn": state["sid"]}]


async def test_conn_close_drops_the_connection_and_the_client_reconnects(agent, server, transport):
    observer = await gaps(agent, server, "observer")
    assert await observer.emit_with_ack("join", "observers") == ["observers"]
    for drop in ("drop", "drop_sync"):
        socket = await gaps(agent, server, f"dropped-{drop}", transport, reconnection=True, reconnectionDelay=50)
        first_id = socket.id
        await socket.emit(drop)
        assert await observer.next_event("gone") == [first_id, "forced close"]  # the server's reason
        _, (reason,) = await socket.next("disconnect")
        assert reason in {"transport close", "transport error"}  # not "io server disconnect": it may reconnect
        _, (second_id, _) = await socket.next("connect", timeout=10)  # by itself
        assert second_id != first_id
        assert (await socket.emit_with_ack("whoami"))[0]["id"] == second_id


async def test_emit_with_ack_always_returns_the_list_of_ack_arguments(agent, server):
    cases = {"one": ["x"], "one-list": [["a", "b"]], "two": ["a", "b"], "none": []}
    for name, answer in cases.items():
        socket = await gaps(agent, server, name)
        await socket.reply("question", *answer)
        assert await socket.emit_with_ack("ask", 2.0) == [{"answer": answer}], name


async def test_socket_timeout_times_an_emit_to_this_socket_only(agent, server, transport):
    asker = await gaps(agent, server, "asker", transport)
    bystander = await gaps(agent, server, "bystander", transport)
    await bystander.reply("question", "not me")
    await asker.silent("question")
    assert await asker.emit_with_ack("ask", 0.3) == [{"timeout": True}]
    await asker.reply("question", "me")  # a second listener; this one answers
    assert await asker.emit_with_ack("ask", 2.0) == [{"answer": ["me"]}]
    assert await asker.next_event("question") == ["to you"]
    await bystander.emit_with_ack("whoami")  # a round trip: anything sent to it before has arrived
    assert [args for kind, args in bystander.drain() if kind == "event" and args[0] == "question"] == []


async def test_handshake_fields(agent, server, transport):
    before = datetime.now(UTC) - timedelta(seconds=1)
    socket = await gaps(
        agent, server, "a", transport, extraHeaders={"x-probe": "h1"}, query={"probe": "q1"}, auth={"k": "v"}
    )
    [shake] = await socket.emit_with_ack("handshake")
    assert shake["probe_header"] == "h1"
    assert shake["query"]["probe"] == "q1" and shake["query"]["EIO"] == "4"
    assert shake["auth"] == {"k": "v"}
    assert shake["address"] == "127.0.0.1"
    assert before <= datetime.fromisoformat(shake["time"]) <= datetime.now(UTC)
    assert shake["url"].startswith("/socket.io/?") and "probe=q1" in shake["url"]
    assert shake["secure"] is False


def test_realtime_emit_refuses_the_in_memory_layer():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"  # no REDIS_URL: Channels' in-memory layer
    result = subprocess.run(
        [sys.executable, "manage.py", "realtime_emit", "news", '"hi"', "--to", "lobby"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "emitted" not in result.stdout
    assert "the in-memory layer, which cannot leave this process" in result.stderr
