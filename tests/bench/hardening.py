"""``python -m tests.bench.hardening``: issue 9's slow-reader and closing-recipient measurements, on the demo app.

1. Slow readers: 100 KB files broadcast at 30/s to the demo chat's room, where
   three clients sit: one that reads (python-socketio), a WebSocket that never
   reads but sends an Engine.IO pong every 10 s, and a polling client that
   never GETs but POSTs pongs. Prints the server's RSS every 5 s and when each
   client was dropped.
2. Closing recipients: N WebSockets in a room send their close frames at once
   while a sender broadcasts with acks; prints tracebacks in the log and acks lost.

The demo's project.settings with its defaults (daphne, SQLite, in-memory layer),
but for the per-IP limits that every client on 127.0.0.1 would hit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import aiohttp
import socketio

from tests.rawws import RawWebSocket
from tests.servers import ServerProcess

NS = "/chat"
LIMITS = {"MAX_CONNECTIONS_PER_IP": 100_000, "HANDSHAKE_RATE_PER_IP": None}


def start() -> ServerProcess:
    env = {"REALTIME_BENCH_OVERRIDES": json.dumps(LIMITS), "REALTIME_LOG_LEVEL": "INFO"}
    return ServerProcess("tests.bench.demo_settings", app="project.asgi:application", env=env).start()


async def slow_readers(seconds: float) -> None:
    server = start()
    try:
        slow, slow_sid = await RawWebSocket.engineio(server.port)
        slow.send(f'40{NS},{{"nick":"slow","room":"flood"}}')
        await slow.receive_until(f"40{NS},")
        base = f"{server.url}/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(base) as r:
                poll_sid = json.loads((await r.text())[1:])["sid"]
            url = f"{base}&sid={poll_sid}"
            async with http.post(url, data=f'40{NS},{{"nick":"poller","room":"flood"}}') as r:
                await r.read()
            reader = socketio.AsyncClient(reconnection=False)
            received = 0

            def on_file(payload: object) -> None:
                nonlocal received
                received += 1

            reader.on("file", on_file, namespace=NS)
            await reader.connect(server.url, namespaces=[NS], transports=["websocket"], auth={"nick": "reader"})
            sender = socketio.AsyncClient(reconnection=False)
            await sender.connect(
                server.url, namespaces=[NS], transports=["websocket"], auth={"nick": "sender", "room": "flood"}
            )
            await reader.call("join", "flood", namespace=NS, timeout=5)
            start_rss = server.rss()
            print(f"slow readers: RSS at start {start_rss / 2**20:.0f} MB")
            began = time.monotonic()
            sent = 0
            next_pong = began
            next_print = began + 5
            file = {"name": "x.bin", "type": "application/octet-stream", "data": os.urandom(100_000)}
            while time.monotonic() - began < seconds:
                await sender.emit("file", file, namespace=NS)
                sent += 1
                now = time.monotonic()
                if now >= next_pong:
                    slow.send("3")
                    async with http.post(url, data="3") as r:
                        await r.read()
                    next_pong = now + 10
                if now >= next_print:
                    print(
                        f"  t={now - began:4.0f} s  RSS {server.rss() / 2**20:6.0f} MB  sent {sent} received {received}"
                    )
                    next_print += 5
                await asyncio.sleep(max(0.0, began + sent / 30 - time.monotonic()))
            log = server.log()
            for label, sid in (("WebSocket that never reads", slow_sid), ("polling that never GETs", poll_sid)):
                line = next((line for line in log.splitlines() if f"sid={sid} closed" in line), "never closed")
                print(f"  {label}: {line.split(': ', 1)[-1]}")
            print(f"  reader got {received} of {sent}; RSS at end {server.rss() / 2**20:.0f} MB")
            await reader.disconnect()
            await sender.disconnect()
        slow.close()
    finally:
        server.stop()


async def closing_recipients(count: int) -> None:
    server = start()
    try:
        clients = []
        for _ in range(count):
            ws, _ = await RawWebSocket.engineio(server.port, rcvbuf=65536)
            ws.send(f'40{NS},{{"nick":"c","room":"closing"}}')
            await ws.receive_until(f"40{NS},")
            clients.append(ws)
        sender = socketio.AsyncClient(reconnection=False)
        await sender.connect(server.url, namespaces=[NS], transports=["websocket"], auth={"room": "closing"})
        mark = server.mark()

        async def close_all() -> None:
            for ws in clients:
                ws.writer.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
            await asyncio.gather(*(ws.closed(10) for ws in clients))

        closer = asyncio.create_task(close_all())
        acks = lost = 0
        for i in range(200):
            try:
                await sender.call("message", f"m{i}", namespace=NS, timeout=5)
                acks += 1
            except socketio.exceptions.TimeoutError:
                lost += 1
        await closer
        log = server.log()[mark:]
        print(
            f"closing recipients: {count} WebSockets closed mid-broadcast; {acks} acks, {lost} lost; "
            f"{log.count('Traceback')} tracebacks, {log.count('Task exception was never retrieved')} unretrieved"
        )
        await sender.disconnect()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--closing", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(slow_readers(args.seconds))
    asyncio.run(closing_recipients(args.closing))


if __name__ == "__main__":
    main()
