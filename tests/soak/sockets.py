"""The soak's namespace: echo with an ack, rooms joined and left with an ack, room broadcasts.

Every handler acknowledges, so the load generator knows when the server has
done what it asked: a join has taken effect once its ack is back, and a shout
has been handed to the cluster once its ack is back. Nothing is kept per
client, so memory measures the server, not this module.
"""

from realtime import Namespace, event


class Soak(Namespace):
    namespace = "/"

    async def on_echo(self, socket, *args):
        return args

    @event("echo-event")
    async def echo_event(self, socket, *args):
        """The server's own event back to the sender (tests/fuzz.py's clients check their order)."""
        await socket.emit("echo-event", *args)

    async def on_join(self, socket, room):
        await socket.join(room)
        return "joined"

    async def on_leave(self, socket, room):
        await socket.leave(room)
        return "left"

    async def on_shout(self, socket, room, message_id):
        """Everyone in ``room``, on every process, the sender too if it is a member."""
        await self.to(room).emit("shout", room, message_id)
        return "sent"
