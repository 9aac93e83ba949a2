"""The ASGI limit: a bare app that frames the same packets with no Socket.IO logic.

It answers the Engine.IO polling handshake and the WebSocket and Socket.IO
handshakes with fixed frames, echoes ``echo`` with an ack, acks ``join``, and
writes one broadcast frame to every open WebSocket for each ``fanout``: what
any Socket.IO server must at least do, on the same ASGI server, for every
workload of the benchmark.
"""

import json
import secrets

sockets: dict[str, object] = {}
OPEN = '0{"sid":"%s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": f"{kind}.complete"})
            if kind == "lifespan.shutdown":
                return
    if scope["type"] == "http":
        await polling_handshake(scope, receive, send)
        return
    if scope["type"] != "websocket":
        return
    sid = secrets.token_urlsafe(15)
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": OPEN % sid})
        elif message["type"] == "websocket.disconnect":
            sockets.pop(sid, None)
            return
        else:
            text = message.get("text") or ""
            if text == "40":
                sockets[sid] = send
                await send({"type": "websocket.send", "text": f'40{{"sid":"{sid}"}}'})
            elif text.startswith("42"):
                await handle_event(text, send)


async def handle_event(text, send):
    body = text[2:]
    ack = ""
    while body and body[0].isdigit():
        ack, body = ack + body[0], body[1:]
    event, *args = json.loads(body)
    if event == "join":
        await send({"type": "websocket.send", "text": f'43{ack}["joined"]'})
    elif event == "echo":
        await send({"type": "websocket.send", "text": f"43{ack}" + json.dumps(args, separators=(",", ":"))})
    elif event == "fanout":
        frame = "42" + json.dumps(["tick", *args[1:]], separators=(",", ":"))
        for target in list(sockets.values()):
            await target({"type": "websocket.send", "text": frame})


async def polling_handshake(scope, receive, send):
    """A GET without a sid gets an open packet, as a polling handshake; anything else a 400."""
    while (await receive()).get("more_body"):
        pass
    if scope["method"] != "GET" or b"sid=" in scope.get("query_string", b""):
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = (OPEN % secrets.token_urlsafe(15)).replace('"upgrades":[]', '"upgrades":["websocket"]').encode()
    headers = [(b"content-type", b"text/plain; charset=UTF-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
