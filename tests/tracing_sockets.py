"""A namespace for tests/e2e/test_tracing.py (registered by tests/tracing_settings.py only)."""

from realtime import Namespace


class Traced(Namespace):
    namespace = "/traced"

    async def on_fail(self, socket, text):
        # the exception's message quotes what the client sent, as real ones often do: no span may carry it
        raise ValueError(f"cannot use {text!r}")

    async def on_shout(self, socket, room, *args):
        """A broadcast from inside a handler: its span is a child of the event's."""
        await self.to(room).emit("shout", *args)
        return "sent"

    def on_sync_shout(self, socket, room, *args):
        """The same from a ``def`` handler: a thread hop there and back, and still the event span's child."""
        socket.to(room).emit("shout", *args)
        return "sent"
