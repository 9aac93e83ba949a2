"""The cost of polling without sticky sessions: echo round trips answered by the owner vs forwarded.

A raw polling client opens its session on process A, then sends every POST
and GET either to A (sticky) or to B (every request forwarded to A through
the channel layer), and times ``echo`` acknowledgements.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import aiohttp


async def round_trips(handshake_base: str, request_base: str, count: int = 200) -> list[float]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{handshake_base}/socket.io/?EIO=4&transport=polling") as r:
            sid = json.loads((await r.text())[1:])["sid"]
        url = f"http://{request_base}/socket.io/?EIO=4&transport=polling&sid={sid}"
        async with http.post(url, data="40") as r:
            assert await r.text() == "ok"
        async with http.get(url) as r:
            assert (await r.text()).startswith("40")
        times = []
        for i in range(count):
            started = time.perf_counter()
            async with http.post(url, data=f'42{i}["echo",{i}]') as r:
                assert await r.text() == "ok"
            body = ""
            while f"43{i}[" not in body:
                async with http.get(url) as r:
                    body = await r.text()
            times.append((time.perf_counter() - started) * 1000)
        return times


def measure(owner: str, other: str) -> dict[str, float]:
    sticky = asyncio.run(round_trips(owner, owner))
    forwarded = asyncio.run(round_trips(owner, other))
    return {
        "sticky_p50_ms": statistics.median(sticky),
        "forwarded_p50_ms": statistics.median(forwarded),
        "added_ms": statistics.median(forwarded) - statistics.median(sticky),
    }
