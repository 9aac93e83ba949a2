"""The benchmark's Socket.IO handlers for realtime; peer_app.py has the same for python-socketio."""

from realtime import Namespace


class Bench(Namespace):
    namespace = "/"

    async def on_echo(self, socket, *args):
        return args

    async def on_join(self, socket, room):
        await socket.join(room)
        return "joined"

    async def on_fanout(self, socket, room, *args):
        await self.to(room).emit("tick", *args)
