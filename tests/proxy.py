"""A round-robin HTTP and WebSocket proxy with no session affinity, for the cluster tests.

Every HTTP request (not every connection) goes to the next backend in turn,
as nginx without ip_hash does, and so does every WebSocket. A backend that
refuses the connection (a stopped process) is skipped for the next one, as
nginx's default ``proxy_next_upstream error`` does: each request tries every
backend at most once, in turn from its own starting point (concurrent requests
must not send each other's retry back to the backend that just refused). A
backend that drops a request it was sent is skipped too, but only for an
idempotent one: nginx does not resend a POST (no ``non_idempotent``), it
answers 502, and so do we when no backend answered. Any answer a backend
gives, errors included, goes back to the client. Run as
``python tests/proxy.py PORT BACKEND_URL...``; it prints ``listening`` on
stdout when ready, and one line per request resent or answered 502 on stderr.
"""

import asyncio
import itertools
import sys

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
# What nginx resends to the next backend after an error (``proxy_next_upstream`` without ``non_idempotent``).
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
CONNECT_TIMEOUT = 1.0


def make_app(backends: list[str]) -> web.Application:
    turn = itertools.count()
    app = web.Application(client_max_size=16 * 1024 * 1024)

    async def session(app: web.Application):
        # a connection per request: a stopped backend is then a refused connection, skipped, never a dead
        # pooled one failing a request that was meant for the live backend; no limit on their number: every
        # polling client holds a long GET, and aiohttp's default of 100 would queue everything behind them.
        # No Accept-Encoding of its own (aiohttp adds "gzip, deflate"): the backend would then compress
        # answers for clients that never asked (Node's socket.io-client does not), and they would fail.
        # A backend that does not even accept within a second (a host cut off the network: no RST, the
        # SYN is lost) is skipped like a refusing one, as nginx's proxy_connect_timeout does.
        app["client"] = aiohttp.ClientSession(
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
        )
        yield
        await app["client"].close()

    app.cleanup_ctx.append(session)

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        first = next(turn)
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        for backend in (backends[(first + i) % len(backends)] for i in range(len(backends))):
            try:
                if websocket:
                    return await relay_websocket(request, backend, headers)
                return await forward(request, backend, headers, body)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):  # it never saw the request
                continue
            except aiohttp.WSServerHandshakeError as exc:  # it answered the upgrade with an error: pass it on
                return web.Response(status=exc.status, text=exc.message)
            except aiohttp.ClientConnectionError as exc:  # sent, then dropped before any answer
                why = f"{backend} dropped a {request.method} it was sent ({exc!r})"
                if websocket or request.method in IDEMPOTENT:
                    print(f"resent {request.method} {request.rel_url}: {why}", file=sys.stderr, flush=True)
                    continue
                break
        else:
            why = "no backend answered"
        print(f"502 {request.method} {request.rel_url}: {why}", file=sys.stderr, flush=True)
        return web.Response(status=502, text="Bad Gateway")

    async def forward(request: web.Request, backend: str, headers: dict, body: bytes) -> web.StreamResponse:
        async with app["client"].request(
            request.method, backend + request.rel_url.raw_path_qs, headers=headers, data=body
        ) as upstream:
            answer = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream.status, body=answer, headers=out)

    async def relay_websocket(request: web.Request, backend: str, headers: dict) -> web.StreamResponse:
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("sec-websocket")}
        upstream = await app["client"].ws_connect(
            backend.replace("http", "ws", 1) + request.rel_url.raw_path_qs, headers=headers, max_msg_size=0
        )
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)

        async def pump(source, sink):
            async for message in source:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                else:
                    break
            await sink.close(code=source.close_code or 1000)

        await asyncio.gather(pump(client, upstream), pump(upstream, client), return_exceptions=True)
        return client

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def main(port: int, backends: list[str]) -> None:
    runner = web.AppRunner(make_app(backends), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2:]))
