"""The namespace tests/e2e/test_prometheus.py drives (registered by tests/metrics_settings.py)."""

from realtime import AckTimeout, Namespace


class Metered(Namespace):
    """Declared handlers whose counts, timings and drops Prometheus is asked about; any other name is "other"."""

    namespace = "/metered"

    async def on_connect(self, socket, auth):
        room = (auth or {}).get("room")
        if room:  # a raw client cannot wait for a join's ack without a GET: it joins at CONNECT
            await socket.join(room)

    async def on_work(self, socket, n):
        return n

    async def on_barrier(self, socket):
        """A round trip: every packet the client sent before it has been read."""
        return "ok"

    async def on_spray(self, socket, room, count):
        """``count`` volatile events to ``room`` (in any process); the ack says they went out."""
        for i in range(count):
            await self.to(room).volatile.emit("spray", i)
        return count

    async def on_ask(self, socket, timeout):
        try:
            return {"answer": await socket.emit_with_ack("question", timeout=timeout)}
        except AckTimeout:
            return {"timeout": True}
