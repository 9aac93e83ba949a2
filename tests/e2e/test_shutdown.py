"""Stopping daphne closes every session first, and handlers hear why."""

import pytest

from tests.clients.node import NodeAgent
from tests.servers import ServerProcess


@pytest.fixture
def doomed_server():
    server = ServerProcess("tests.settings", app="tests.asgi:application").start()
    yield server
    server.stop()


async def test_sigterm_disconnects_with_server_shutting_down(doomed_server):
    agent = await NodeAgent().start()
    try:
        socket = await agent.socket("a").connect(doomed_server.url, "websocket")
        assert await socket.emit_with_ack("echo", 1) == [1]
        doomed_server.process.terminate()  # SIGTERM, as a process manager would
        assert (await socket.next("disconnect"))[0] == "disconnect"
        doomed_server.process.wait(10)
        assert f"on_disconnect {socket.id}: server shutting down" in doomed_server.log()
    finally:
        await agent.close()
