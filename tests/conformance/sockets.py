"""The namespaces the public Socket.IO conformance suite expects at /socket.io/.

"/" and "/custom" greet every connection with an ``auth`` event carrying the
CONNECT auth object; "/" echoes ``message`` as ``message-back`` and answers
``message-with-ack`` with its own arguments.
"""

from realtime import Namespace, event


class Main(Namespace):
    namespace = "/"

    async def on_connect(self, socket, auth):
        await socket.emit("auth", auth)

    async def on_message(self, socket, *args):
        await socket.emit("message-back", *args)

    @event("message-with-ack")
    async def echo_with_ack(self, socket, *args):
        return args


class Custom(Namespace):
    namespace = "/custom"

    async def on_connect(self, socket, auth):
        await socket.emit("auth", auth)
