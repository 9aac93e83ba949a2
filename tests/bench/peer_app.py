"""python-socketio's ASGI app with the same handlers as sockets.py: the peer we measure against.

REDIS_URL set: its AsyncRedisManager, for the cross-process broadcast.
"""

import os

import socketio

manager = socketio.AsyncRedisManager(os.environ["REDIS_URL"]) if os.environ.get("REDIS_URL") else None
sio = socketio.AsyncServer(
    async_mode="asgi", cors_allowed_origins="*", client_manager=manager, max_http_buffer_size=1_000_000
)


@sio.event
async def echo(sid, *args):
    return args


@sio.event
async def join(sid, room):
    await sio.enter_room(sid, room)
    return "joined"


@sio.event
async def fanout(sid, room, *args):
    await sio.emit("tick", args, to=room)


application = socketio.ASGIApp(sio)
