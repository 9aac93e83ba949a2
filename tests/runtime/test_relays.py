"""Requests for a session that lives in another runtime: polling forwarded, WebSockets relayed."""

import asyncio

from realtime.protocol.cluster import FetchRooms
from realtime.protocol.engine import Transport
from realtime.relays import Route
from realtime.sessions import ClientRequest
from tests.runtime.harness import PATH

TIMEOUT = 2.0


async def polling_session(process):
    request = ClientRequest(PATH, "EIO=4&transport=polling", {"EIO": "4", "transport": "polling"}, (), "::1", False)
    session = process.endpoint.create(Transport.POLLING, request)
    await session.start()
    return session


async def forward(process, sid, method, body=b""):
    relays = process.runtime.relays
    return await relays.forward_poll(PATH, sid, method, body, TIMEOUT, process.runtime.member.replies.new_id())


async def test_a_polling_client_is_served_through_a_process_that_does_not_hold_it(cluster):
    a, b, _ = cluster
    session = await polling_session(b)
    assert await a.runtime.relays.route(session.sid) is Route.FORWARD
    assert await b.runtime.relays.route(session.sid) is Route.LOCAL
    post = await forward(a, session.sid, "POST", b"40")
    assert (post["status"], post["body"]) == (200, b"ok")
    got = await forward(a, session.sid, "GET")
    assert got["status"] == 200
    connect, welcome = got["body"].decode().split("\x1e")
    assert connect.startswith(f'40{{"sid":"{b.runtime.key}')
    assert welcome == '42["welcome",{}]'
    assert a.runtime.relays.forwarded == {}  # nothing left waiting


async def test_a_held_get_answered_when_the_owner_has_something(cluster):
    a, b, _ = cluster
    session = await polling_session(b)
    await forward(a, session.sid, "POST", b"40")
    await forward(a, session.sid, "GET")  # the CONNECT answer
    held = asyncio.ensure_future(forward(a, session.sid, "GET"))
    await forward(a, session.sid, "POST", b'421["echo","hi"]')
    answer = await asyncio.wait_for(held, TIMEOUT)
    assert answer["body"] == b'431["hi"]'


async def test_a_sid_of_no_live_process_is_refused_at_once(cluster):
    a, *_ = cluster
    assert await a.runtime.relays.route("0f0f0f" + "x" * 20) is Route.NOWHERE


class RelayedWebSocket:
    """The receiving process's end of a relayed WebSocket: a RelayedSocket recording what it is sent."""

    def __init__(self, endpoint, sid):
        self.endpoint = endpoint
        self.relayed_sid = sid
        self.relay_id = None
        self.frames = asyncio.Queue()

    async def write(self, frame):
        await self.frames.put(frame)

    async def shut(self, code=1000):
        await self.frames.put(("shut", code))

    def buffered(self):
        return 0

    def abort(self):
        self.frames.put_nowait(("abort", None))


async def test_a_websocket_upgrade_relayed_to_the_owner(cluster):
    a, b, _ = cluster
    session = await polling_session(b)
    await forward(a, session.sid, "POST", b"40")
    await forward(a, session.sid, "GET")
    socket = RelayedWebSocket(a.endpoint, session.sid)
    relays = a.runtime.relays
    socket.relay_id = await relays.attach(socket, PATH, session.sid)
    assert socket.relay_id is not None
    await relays.relay_in(session.sid, socket.relay_id, "2probe")
    assert await asyncio.wait_for(socket.frames.get(), TIMEOUT) == "3probe"
    await relays.relay_in(session.sid, socket.relay_id, "5")  # upgraded: frames now go through the relay
    await relays.relay_in(session.sid, socket.relay_id, '421["echo","over the relay"]')
    assert await asyncio.wait_for(socket.frames.get(), TIMEOUT) == '431["over the relay"]'
    assert session.transport is Transport.WEBSOCKET
    await relays.relay_gone(session.sid, socket.relay_id)
    await b.runtime.ask_all(FetchRooms(namespace="/"), TIMEOUT)  # a fence: b has read a's goodbye before
    assert session.closed
