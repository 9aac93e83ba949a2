"""socket.io-client@4 (Node) against the real server, over polling, WebSocket and polling upgraded."""

import asyncio

import pytest

pytestmark = pytest.mark.both_servers  # every test here runs on daphne and on uvicorn (tests/conftest.py)


@pytest.fixture
def url(server):
    return server.url


async def connect(agent, name, url, transport, namespace="/", **options):
    return await agent.socket(name).connect(url + namespace, transport, **options)


async def test_connect_with_auth(agent, url, transport):
    socket = await agent.socket("a").open(url, transport, auth={"token": "abc", "n": 1})
    kind, (sid, _) = await socket.next("connect")
    assert kind == "connect" and len(sid) == 20
    assert await socket.next_event("welcome") == [{"token": "abc", "n": 1}]
    [me] = await socket.emit_with_ack("whoami")
    assert me["id"] == sid
    assert me["namespace"] == "/"
    assert me["rooms"] == [sid]
    assert me["data"] == {"auth": {"token": "abc", "n": 1}}
    assert me["handshake"]["auth"] == {"token": "abc", "n": 1}
    assert me["handshake"]["address"] == "127.0.0.1"
    assert me["handshake"]["query"]["EIO"] == "4"
    assert me["handshake"]["has_host"] is True
    assert me["user"] == "AnonymousUser"


async def test_refused_connect_carries_message_and_data(agent, url, transport):
    socket = await agent.socket("a").open(url + "/refuse", transport, auth={"token": "bad"})
    kind, args = await socket.next("connect", "connect_error")
    assert (kind, args) == ("connect_error", ["Not authorized", {"reason": "bad token", "got": "bad"}])
    good = await agent.socket("b").connect(url + "/refuse", transport, auth={"token": "good"})
    assert good.id


async def test_unknown_namespace_is_invalid(agent, url, transport):
    socket = await agent.socket("a").open(url + "/nope", transport)
    assert await socket.next("connect", "connect_error") == ("connect_error", ["Invalid namespace", None])


async def test_namespaces_multiplex_over_one_connection(agent, url, transport):
    main = await agent.socket("main").connect(url, transport, forceNew=False)
    team = await agent.socket("team").connect(url + "/team-42", transport, forceNew=False)
    other = await agent.socket("other").connect(url + "/team-7", transport, forceNew=False)
    assert await team.next_event("team") == ["/team-42"]
    assert await other.next_event("team") == ["/team-7"]
    assert await main.emit_with_ack("echo", "main") == ["main"]
    await team.emit("shout", "hi")
    assert await team.next_event("shout") == ["/team-42", "hi"]
    await main.emit_with_ack("echo")  # same Engine.IO connection: a round trip after the shout has landed
    assert [e for e in other.drain() if e[0] == "event" and e[1][0] == "shout"] == []


JSON_VALUES = [
    0,
    -1,
    3.25,
    1e300,
    2**53,
    True,
    False,
    None,
    "",
    "plain",
    "unicode é ü ß 漢字",
    "emoji 😀🎉👍🏽",
    [],
    [1, [2, [3]]],
    {},
    {"nested": {"list": [1, "a", None], "n": -0.5}},
    'quotes " and \\ and \n newline',
]


async def test_events_with_every_json_type_round_trip(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    assert await socket.emit_with_ack("echo", *JSON_VALUES) == JSON_VALUES
    await socket.emit("echo-event", *JSON_VALUES)
    assert await socket.next_event("echo-event") == JSON_VALUES


# bytes at the top, nested in objects and lists, and empty
BINARY_ARGS = [bytes(range(256)), {"file": b"\x00\x01", "meta": {"deep": [b"\xff", "text", {"x": b""}]}}, "tail"]


async def test_binary_anywhere_in_the_arguments(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    assert await socket.emit_with_ack("echo", *BINARY_ARGS) == BINARY_ARGS
    await socket.emit("echo-event", *BINARY_ARGS)
    assert await socket.next_event("echo-event") == BINARY_ARGS


async def test_acks_both_ways(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    await socket.reply("question", "forty", 2)
    assert await socket.emit_with_ack("ask", 2.0, "what?") == [{"answer": ["forty", 2]}]
    assert await socket.emit_with_ack("sync_echo", 1, "x") == [1, "x"]
    assert await socket.next_event("from-sync") == [1, "x"]


async def test_server_ack_timeout(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    await socket.silent("question")
    assert await socket.emit_with_ack("ask", 0.3) == [{"timeout": True}]


async def test_client_ack_timeout_when_the_handler_does_not_answer(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    with pytest.raises(RuntimeError, match="operation has timed out"):
        await socket.emit_with_ack("no-such-handler", timeout=300)
    assert await socket.emit_with_ack("echo", "still fine") == ["still fine"]


async def test_a_raising_handler_does_not_kill_the_session(agent, url, transport, server):
    socket = await connect(agent, "a", url, transport)
    mark = server.mark()
    await socket.emit("boom")
    await server.await_log(r"handler raised; the session goes on", since=mark)
    assert "RuntimeError: boom from a handler" in server.log()[mark:]
    assert await socket.emit_with_ack("echo", "alive") == ["alive"]


async def test_server_disconnect_is_io_server_disconnect(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    observer = await connect(agent, "o", url, "websocket")
    await socket.emit("disconnect-me")
    assert await socket.next("disconnect") == ("disconnect", ["io server disconnect"])
    reason, signals = await observer.emit_with_ack("disconnect-reason", socket.id)
    assert reason == "server namespace disconnect"
    assert signals == ["connected /", "disconnected server namespace disconnect"]


async def disconnect_reason(observer, socket_id):
    """The reason the server's on_disconnect got for ``socket_id``, asked until it has run (5 s at most)."""
    async with asyncio.timeout(5):
        while not (reason := (await observer.emit_with_ack("disconnect-reason", socket_id))[0]):
            pass
    return reason


async def test_client_disconnect_reason_reaches_the_server(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    observer = await connect(agent, "o", url, "websocket")
    await socket.disconnect()
    assert await disconnect_reason(observer, socket.id) == "client namespace disconnect"


async def test_900kb_payload_is_accepted(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    big = "x" * 900_000
    assert await socket.emit_with_ack("echo", big) == [big]
    # over polling a binary attachment travels as base64 (4/3 larger) inside the 1 MB body limit
    blob = bytes(range(256)) * (900_000 // 256 if transport == "websocket" else 700_000 // 256)
    assert await socket.emit_with_ack("echo", blob) == [blob]


async def test_middlewares(agent, url, transport):
    refused = await agent.socket("r").open(url + "/guarded", transport, auth={})
    assert await refused.next("connect", "connect_error") == ("connect_error", ["missing key", None])
    socket = await connect(agent, "a", url, transport, "/guarded", auth={"key": "k"})
    assert await socket.emit_with_ack("echo", 1) == [True, 1]
    assert await socket.emit_with_ack("refused") == [{"error": "not allowed here"}]
    with pytest.raises(RuntimeError, match="timed out"):
        await socket.emit_with_ack("forbidden", timeout=300)


async def test_catch_all_listeners(agent, url, transport):
    socket = await connect(agent, "a", url, transport, "/any")
    await socket.emit("anything", 1, {"a": 2})
    assert await socket.next_event("seen") == ["anything", 1, {"a": 2}]
    assert await socket.emit_with_ack("outgoing") == [["seen", "seen"]]  # "anything", then "outgoing" itself


async def test_decorator_form(agent, url, transport):
    socket = await connect(agent, "a", url, transport, "/decorated")
    assert await socket.next_event("hello") == ["from a decorator"]
    assert await socket.emit_with_ack("double", 21) == [42]


async def test_reserved_event_names(agent, url, transport):
    socket = await connect(agent, "a", url, transport)
    assert await socket.emit_with_ack("emit-reserved") == ["'disconnect' is a reserved event name"]
