"""Steady broadcasts through a fault, and the check that every listener heard each one once, in order.

Shared by the Redis outage and stall tests (tests/e2e/test_cluster_faults.py) and the Sentinel
failover (tests/e2e/test_sentinel.py).
"""

import asyncio
import re
import time

import aiohttp


class Listening:
    """What one socket hears of the "n" events, timed as they arrive: it listens from its creation on."""

    def __init__(self, socket):
        self.socket = socket
        self.heard = {}  # (sender, number) -> when it arrived
        self.twice = []
        self._grew = asyncio.Event()
        self._task = asyncio.ensure_future(self._listen())

    async def _listen(self):
        while True:
            sender, number, *_ = await self.socket.next_event("n", timeout=3600)  # with recovery on: an offset
            message = (sender, number)
            if message in self.heard:
                self.twice.append(message)
            else:
                self.heard[message] = time.monotonic()
            self._grew.set()

    async def until(self, wanted, timeout):
        """Wait until every message in ``wanted`` arrived; then stop listening: {message: when it arrived}."""
        try:
            async with asyncio.timeout(timeout):
                while not wanted <= self.heard.keys():
                    self._grew.clear()
                    await self._grew.wait()
        finally:
            self._task.cancel()
        assert self.twice == [], f"heard twice: {self.twice[:5]}"
        return self.heard


async def collect(socket, wanted, timeout):
    """Every message of ``wanted`` that ``socket`` hears from now on (only for what comes without delay)."""
    return await Listening(socket).until(wanted, timeout)


async def steady(sender, tag, to, stop, period=0.03):
    """Broadcast (tag, 0), (tag, 1), ... to ``to`` about 30 times a second until ``stop``: {message: when sent}."""
    sent = {}
    while not stop.is_set():
        message = (tag, len(sent))
        spec = {"event": "n", "to": [to], "args": list(message)}
        sent[message] = time.monotonic()
        assert await sender.emit_with_ack("broadcast", spec) == ["sent"]  # kept in the outbox, never refused
        await asyncio.sleep(period)  # the sending rate, not synchronisation
    return sent


async def counter(server, name):
    """A counter's value in the server's /metrics (REALTIME["METRICS_PATH"] in tests.settings)."""
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def lose_nothing_through(agent, faults, fault, room):
    """Two senders (one per process) broadcast steadily through ``fault``; both listeners hear everything once."""
    a, b = faults.servers
    senders = [await agent.socket(f"s{i}").connect(server.url, "websocket") for i, server in enumerate((a, b))]
    listeners = [await agent.socket(f"l{i}").connect(server.url, "websocket") for i, server in enumerate((a, b))]
    for socket in listeners:
        await socket.emit_with_ack("join", room)
    marks = [a.mark(), b.mark()]
    listening = [Listening(listener) for listener in listeners]
    stop = asyncio.Event()
    streams = [asyncio.ensure_future(steady(s, f"from-{i}", room, stop)) for i, s in enumerate(senders)]
    back = await fault(stop)
    sent = {message: at for stream in await asyncio.gather(*streams) for message, at in stream.items()}
    during = [message for message, at in sent.items() if at < back]
    assert len(during) > 100
    delays = []
    for listener, heard_ in zip(listeners, listening, strict=True):
        heard_ = await heard_.until(set(sent), timeout=10)
        assert heard_.keys() == sent.keys()  # every message, none twice (until checks), nothing else
        for tag in ("from-0", "from-1"):  # in each sender's order
            numbers = [n for t, n in heard_ if t == tag]
            assert numbers == sorted(numbers)
        await listener.emit_with_ack("echo")  # a round trip: nothing more is on its way from its own process
        assert [args for kind, args in listener.drain() if kind == "event" and args[0] == "n"] == []
        delays.append(max(heard_[message] for message in during) - back)
    for server, mark in zip((a, b), marks, strict=True):
        log = server.log()[mark:]
        assert "ERROR" not in log and "Traceback" not in log, log
        assert re.search(
            r"channel layer reachable again; cross-process traffic resumes \(\d+ cross-process "
            r"messages kept to publish now, 0 lost during the outage",
            log,
        ), log
    return max(delays), len(during)
