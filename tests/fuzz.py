"""Hostile input for a live server, and well-behaved clients that must not notice it.

Two halves, both reused: tests/e2e/test_fuzz.py runs the generators against
one daphne process while the clients talk; tests/soak/run.py runs the same
clients beside its load. Everything random comes from one ``random.Random``
seeded by the caller, so a printed seed replays the inputs (the interleaving
of concurrent connections is up to the event loop).

The generators write wire text directly rather than Python objects, so they can
say what ``json.dumps`` never would: a lone surrogate as the escape
``"\\ud800"`` (valid JSON, not encodable as UTF-8) or as raw bytes (invalid
UTF-8), numbers past the float range, nesting deeper than the recursion limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio
import yarl

from tests.clients.node import NodeAgent

SEP = "\x1e"
MAX_PAYLOAD = 1_000_000  # tests/settings.py and tests/fuzz_settings.py

# -- JSON text, nasty on purpose ---------------------------------------------------------------

STRINGS = [
    "",
    "a",
    "hello",
    "é✓𝄞",
    "\\ud800",  # a lone high surrogate, escaped: json.loads returns a str that cannot be UTF-8 encoded
    "\\udfff",
    "x\\udc00y",
    "\\udc00\\ud800",  # a pair in the wrong order
    "\\ud83d\\ude00",  # a valid pair
    "\\u0000",
    "\\u2028\\u2029",
    "\\\\",
    '\\"',
    "_placeholder",
    "../../etc/passwd",
    "\u202e\u200b",
    "'; DROP TABLE x; --",
]
NUMBERS = ["0", "-0", "1", "-1", "1.5", "1e308", "-1e308", "1e309", "1e-400", "9007199254740991", "9007199254740992",
           "18446744073709551616", "1" + "0" * 4400, "0.1e1", "123456789012345678901234567890"]  # fmt: skip
ROOMS = ["fz-a", "fz-b", "fz-\\ud800", "fz-" + "r" * 300, "fz-é✓", "fz-\\u0000"]


def jstring(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return '"' + "".join(rng.choice(STRINGS) for _ in range(rng.randint(1, 4))) * rng.choice([1, 50, 5000]) + '"'
    return '"' + rng.choice(STRINGS) + '"'


def jvalue(rng: random.Random, depth: int = 0) -> str:
    """One JSON value as text; containers get rarer with depth."""
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice([jstring(rng), rng.choice(NUMBERS), "true", "false", "null"])
    if roll < 0.45:
        return deep(rng)
    if roll < 0.55:
        return '{"_placeholder":true,"num":' + rng.choice(["0", "1", "-1", "99", '"0"', "0.0", "true", "null"]) + "}"
    if roll < 0.8:
        return "[" + ",".join(jvalue(rng, depth + 1) for _ in range(rng.randint(0, 4))) + "]"
    items = [f"{jstring(rng)}:{jvalue(rng, depth + 1)}" for _ in range(rng.randint(0, 4))]
    return "{" + ",".join(items) + "}"


def deep(rng: random.Random) -> str:
    """Nesting around and past Python's recursion limit (and the JSON decoder's)."""
    n = rng.choice([50, 500, 900, 990, 1000, 1100, 5000, 100_000])
    if rng.random() < 0.5:
        return "[" * n + "]" * n
    return '{"a":' * n + "1" + "}" * n


# -- Socket.IO packets -------------------------------------------------------------------------

# The events the test namespaces (tests/sockets.py, project/sockets.py) handle, each with arguments
# of the arity and kind its handler takes, the values inside them hostile: a handler that raises on
# a wrong argument count is the application's bug, not the server's, so the fuzzer does not go there.
# "boom" (raises on purpose) is left out, and so are cluster-wide disconnects and joins, which would
# reach the well-behaved clients by design. Events with no handler take anything.


def values(rng: random.Random, most: int = 3) -> list[str]:
    return [jvalue(rng) for _ in range(rng.randint(0, most))]


def room(rng: random.Random) -> str:
    return '"' + rng.choice(ROOMS) + '"' if rng.random() < 0.8 else jstring(rng)


def rooms(rng: random.Random) -> list[str]:
    return [room(rng) for _ in range(rng.randint(0, 3))]


def seconds(rng: random.Random) -> str:
    return rng.choice(["0.05", "0.2", "0", "-1", "1e-9"])


def one_of_up_to_one(rng: random.Random) -> list[str]:
    return values(rng, 1)


def broadcast_spec(rng: random.Random) -> list[str]:
    """Always to fuzz rooms: a broadcast to everyone would disturb the good clients by the fuzzer's doing."""
    event = jstring(rng) if rng.random() < 0.5 else '"fz-event"'
    flags = "".join(f',"{f}":true' for f in ("volatile", "local", "include_self") if rng.random() < 0.3)
    return [f'{{"to":[{room(rng)}],"event":{event},"args":[{",".join(values(rng))}]{flags}}}']


ArgMaker = Callable[[random.Random], list[str]]
ARGS: dict[str, dict[str, ArgMaker]] = {
    "/": {
        "echo": values,
        "echo-event": values,
        "sync_echo": values,
        "join": rooms,
        "leave": rooms,
        "enter": rooms,
        "sync_enter": lambda rng: [room(rng)],
        "broadcast": broadcast_spec,
        "ask": lambda rng: [seconds(rng), *values(rng)],
        "ask-room": lambda rng: [room(rng), seconds(rng)],
        "whoami": lambda rng: [],
        "identity": lambda rng: [],
        "emit-reserved": lambda rng: [],
        "disconnect-reason": lambda rng: [jstring(rng)],
        "disconnect-me": lambda rng: rng.choice([[], ["true"], ["false"]]),
        "unhandled": values,
    },
    "/any": {"x": values, "seen": values, "é✓": values, "\\ud800": values, "": values, "outgoing": lambda rng: []},
    "/guarded": {"echo": values, "forbidden": values, "refused": values},
    "/refuse": {"echo": values},
    "/team-7": {"shout": lambda rng: [jvalue(rng)]},
    "/decorated": {"double": lambda rng: [rng.choice([*NUMBERS[:10], jstring(rng)])]},
    "/chat": {e: one_of_up_to_one for e in ("nick", "join", "message", "typing", "file")},
    "/cluster": {"fetch": lambda rng: [room(rng)] * rng.randint(0, 1), "rooms": lambda rng: [], "server_emit": values},
    "/private": {"identity": lambda rng: []},
    "/nope": {"echo": values},
}
EVENTS = {namespace: list(events) for namespace, events in ARGS.items()}
RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]
AUTHS = ["", '{"key":"k"}', '{"token":"good"}', '{"token":"\\ud800"}', '{"nick":"n","room":"fz-a"}', "[]", "null",
         '"str"', "{}"]  # fmt: skip


def ns_prefix(namespace: str) -> str:
    return "" if namespace == "/" else namespace + ","


def args_for(rng: random.Random, namespace: str, event: str) -> list[str]:
    return ARGS.get(namespace, {}).get(event, values)(rng)


def sio_event(rng: random.Random, namespace: str | None = None) -> str:
    namespace = namespace or rng.choice(list(EVENTS))
    roll = rng.random()
    if roll < 0.08:
        name = '"' + rng.choice(RESERVED) + '"'
    elif roll < 0.12:
        name = rng.choice(["1", "null", "[]", "{}", "true"])
    else:
        name = '"' + rng.choice(EVENTS.get(namespace, ["echo"])) + '"'
    ack = rng.choice(["", "", "1", "0", str(rng.randint(0, 2**53 - 1)), "9007199254740992", "9" * 30, "1" * 5000])
    arguments = args_for(rng, namespace, name.strip('"'))
    return f"2{ns_prefix(namespace)}{ack}[{','.join([name, *arguments])}]"


def sio_binary_event(rng: random.Random) -> tuple[str, list[bytes]]:
    """A BINARY_EVENT or BINARY_ACK header (counts often wrong) and the attachments that follow it."""
    count = rng.choice([0, 1, 1, 2, 3, 10, 11, 99])
    declared = rng.choice([str(count)] * 4 + ["", "-1", "a", "9" * 20, "٣", "1" * 5000])
    attachments = [rng.randbytes(rng.choice([0, 1, 16, 1000])) for _ in range(rng.choice([count, count, 0, count + 1]))]
    nums = [str(i) for i in range(count)] + [rng.choice(["-1", '"0"', str(count), "1.0"])] * (rng.random() < 0.3)
    placeholders = ",".join('{"_placeholder":true,"num":' + n + "}" for n in nums)
    kind = rng.choice(["5", "5", "6"])
    ack = "1" if kind == "6" or rng.random() < 0.5 else ""
    body = f'["echo",{placeholders}]' if kind == "5" else f"[{placeholders}]"
    return f"{kind}{declared}-{ack}{body}", attachments


def sio_packet(rng: random.Random) -> str:
    """Any Socket.IO packet text, well formed or not."""
    namespace = rng.choice(list(EVENTS))
    roll = rng.random()
    if roll < 0.35:
        return sio_event(rng, namespace)
    if roll < 0.5:
        return f"0{ns_prefix(namespace)}{rng.choice(AUTHS)}"
    if roll < 0.55:
        return "0/" + rng.choice(["", "x", "nope", "team-", "team-99999999999999999999", "\\ud800"]) + ","
    if roll < 0.6:
        return f"1{ns_prefix(namespace)}" + rng.choice(["", "{}", "1"])
    if roll < 0.7:
        return f"3{ns_prefix(namespace)}{rng.choice(['', '0', '1', '9' * 20])}[{jvalue(rng)}]"
    if roll < 0.75:
        return f"4{ns_prefix(namespace)}" + rng.choice(['{"message":"x"}', '"x"', ""])
    if roll < 0.85:
        return sio_binary_event(rng)[0]
    return rng.choice(["7", "9", "", "x", "-", "2", "2[]", "2[1]", "0/", "0,", "2/,[]", "21-[]"]) + jvalue(rng)


def mutate(rng: random.Random, text: str) -> str:
    """Truncate, cut, splice or repeat part of ``text``; may add raw lone surrogates and control chars."""
    if not text:
        return rng.choice(["\x00", "\ud800", SEP])
    i, j = sorted(rng.randrange(len(text) + 1) for _ in range(2))
    op = rng.randrange(5)
    if op == 0:
        return text[:i]
    if op == 1:
        return text[:i] + text[j:]
    if op == 2:
        return text[:i] + rng.choice(["\ud800", "\x00", SEP, '"', "[", "]", "\\", ",", "-", "9", "\udfff"]) + text[i:]
    if op == 3:
        return text[:j] + text[i:j] * rng.randint(2, 50) + text[j:]
    return text[::-1]


def sio_text(rng: random.Random) -> str:
    packet = sio_packet(rng)
    return mutate(rng, packet) if rng.random() < 0.3 else packet


# -- Engine.IO frames and payloads -------------------------------------------------------------


def eio_text(rng: random.Random) -> str:
    """An Engine.IO text packet: mostly a message, sometimes any other type or none."""
    roll = rng.random()
    if roll < 0.75:
        return "4" + sio_text(rng)
    return rng.choice(["0", "0{}", "1", "2", "2probe", "3", "3probe", "5", "6", "7", "8x", "", "x", "\x00", "44", "b"])


def wire(text: str) -> bytes:
    """Text as bytes on the wire; a raw lone surrogate becomes bytes that are not UTF-8."""
    return text.encode("utf-8", "surrogatepass")


def polling_body(rng: random.Random) -> bytes:
    """A polling POST body: records joined by the separator, b64 records, or bytes that are not UTF-8."""
    roll = rng.random()
    if roll < 0.01:
        return b"4" + b"x" * (MAX_PAYLOAD + rng.choice([1, 100_000]))
    if roll < 0.08:
        return rng.choice([b"4\xff\xfe", b"4\xc0\xaf", b'42["echo","\xed\xa0\x80"]', b"4\xe2\x82", b"\x80"])
    records = []
    for _ in range(rng.choice([1, 1, 2, 3, 17, 200])):
        if rng.random() < 0.1:
            records.append("b" + rng.choice([base64.b64encode(rng.randbytes(8)).decode(), "!!!", "", "QQ", "QQ=="]))
        else:
            records.append(eio_text(rng))
    return wire(SEP.join(records))


@dataclass
class Frame:
    """One WebSocket frame: text (possibly not valid UTF-8 once encoded) or binary."""

    data: str | bytes

    async def send(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        if isinstance(self.data, bytes):
            await ws.send_bytes(self.data)
            return
        try:
            await ws.send_str(self.data)
        except UnicodeEncodeError:  # a raw lone surrogate: send the bytes as a text frame anyway
            await ws.send_frame(wire(self.data), aiohttp.WSMsgType.TEXT)


def ws_frames(rng: random.Random) -> list[Frame]:
    """A few WebSocket frames: text packets, binary events with their attachments, stray binary."""
    roll = rng.random()
    if roll < 0.01:
        return [Frame("4" + "x" * (MAX_PAYLOAD + 1))]
    if roll < 0.15:
        header, attachments = sio_binary_event(rng)
        return [Frame("4" + header), *(Frame(a) for a in attachments)]
    if roll < 0.2:
        return [Frame(rng.randbytes(rng.choice([0, 1, 100])))]  # binary when nothing expects it
    return [Frame(eio_text(rng)) for _ in range(rng.randint(1, 3))]


# -- a record of what was sent, per session ---------------------------------------------------


@dataclass
class Journal:
    """What the fuzzer sent, by sid, so that a traceback in the server log can be traced to input."""

    path: Path
    sent: dict[str, list[str]] = field(default_factory=dict)
    count: int = 0

    def __post_init__(self) -> None:
        self.file = self.path.open("w", encoding="utf-8", errors="backslashreplace")

    def log(self, sid: str, what: str, data: str | bytes) -> None:
        self.count += 1
        entry = f"{what} {data[:400]!r}" + (f" ...({len(data)} long)" if len(data) > 400 else "")
        entries = self.sent.setdefault(sid, [])
        if len(entries) < 40:
            entries.append(entry)
        self.file.write(f"{sid} {entry}\n")

    def close(self) -> None:
        self.file.close()


# -- scenarios: one hostile connection each ---------------------------------------------------

Scenario = Callable[[random.Random, aiohttp.ClientSession, str, Journal], Any]
STEP = 2.0  # seconds any one request or frame may take before the scenario moves on


async def handshake(http: aiohttp.ClientSession, base: str) -> str | None:
    async with http.get(f"{base}?EIO=4&transport=polling", timeout=aiohttp.ClientTimeout(total=STEP)) as r:
        text = await r.text()
    return json.loads(text[1:])["sid"] if r.status == 200 and text.startswith("0") else None


async def drain_ws(ws: aiohttp.ClientWebSocketResponse, rng: random.Random, wait: float) -> bool:
    """Read what the server sent for up to ``wait`` s, answering pings at random; False once closed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while True:
                message = await ws.receive()
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return False
                if message.type is aiohttp.WSMsgType.TEXT and message.data == "2" and rng.random() < 0.7:
                    await ws.send_str("3")
    return not ws.closed


async def polling_session(rng: random.Random, http: aiohttp.ClientSession, base: str, journal: Journal) -> None:
    sid = await handshake(http, base)
    if sid is None:
        return
    url = f"{base}?EIO=4&transport=polling&sid={sid}"
    if rng.random() < 0.7:
        await post(http, url, b"40" if rng.random() < 0.7 else wire("4" + sio_packet(rng)), sid, journal)
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        if roll < 0.6:
            if not await post(http, url, polling_body(rng), sid, journal):
                return
        elif roll < 0.9:
            await get(http, url, rng.choice([0.05, 0.3, 1.2]))
        else:  # two GETs at once: the spec's error
            journal.log(sid, "GET", "twice at once")
            await asyncio.gather(get(http, url, 0.5), get(http, url, 0.5))
    if rng.random() < 0.5:
        await post(http, url, b"1", sid, journal)


async def post(http: aiohttp.ClientSession, url: str, body: bytes, sid: str, journal: Journal) -> bool:
    journal.log(sid, "POST", body)
    async with http.post(url, data=body, timeout=aiohttp.ClientTimeout(total=STEP)) as r:
        await r.read()
        return r.status == 200


async def get(http: aiohttp.ClientSession, url: str, wait: float) -> None:
    with contextlib.suppress(TimeoutError):  # a held GET given up on: the server sees a disconnect
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=wait)) as r:
            await r.read()


async def websocket_session(rng: random.Random, http: aiohttp.ClientSession, base: str, journal: Journal) -> None:
    async with http.ws_connect(f"{ws_base(base)}?EIO=4&transport=websocket", max_msg_size=0) as ws:
        opening = await ws.receive(timeout=STEP)
        if opening.type is not aiohttp.WSMsgType.TEXT:
            return
        sid = json.loads(opening.data[1:])["sid"]
        if rng.random() < 0.7:
            await send_frames(ws, [Frame("40" if rng.random() < 0.7 else "4" + sio_packet(rng))], sid, journal)
        for _ in range(rng.randint(1, 8)):
            await send_frames(ws, ws_frames(rng), sid, journal)
            if not await drain_ws(ws, rng, rng.choice([0, 0.01, 0.1])):
                return


async def upgrade_session(rng: random.Random, http: aiohttp.ClientSession, base: str, journal: Journal) -> None:
    """A polling session whose upgrade goes wrong in some way (or right, then gets garbage)."""
    sid = await handshake(http, base)
    if sid is None:
        return
    url = f"{base}?EIO=4&transport=polling&sid={sid}"
    await post(http, url, b"40", sid, journal)
    held = asyncio.ensure_future(get(http, url, 1.2)) if rng.random() < 0.6 else None
    async with http.ws_connect(f"{ws_base(base)}?EIO=4&transport=websocket&sid={sid}", max_msg_size=0) as ws:
        steps = [Frame("2probe"), Frame("5")]
        if rng.random() < 0.6:
            steps.insert(rng.randrange(3), rng.choice([*ws_frames(rng), Frame(b"\x01"), Frame("2probex"), Frame("6")]))
        await send_frames(ws, steps[: rng.randint(1, len(steps))], sid, journal)
        if rng.random() < 0.4:
            await post(http, url, polling_body(rng), sid, journal)
        if await drain_ws(ws, rng, 0.1):
            await send_frames(ws, ws_frames(rng), sid, journal)
            await drain_ws(ws, rng, 0.05)
    if held is not None:
        await held


async def http_garbage(rng: random.Random, http: aiohttp.ClientSession, base: str, journal: Journal) -> None:
    """Requests the handshake must refuse: wrong versions, transports, methods, sids, origins."""
    query = rng.choice(["EIO=5&transport=polling", "EIO=4&transport=flash", "EIO=3&transport=polling&b64=1",
                        "EIO=4", "", "EIO=4&transport=polling&sid=" + "A" * rng.choice([1, 26, 5000]),
                        "EIO=4&transport=polling&sid=%ED%A0%80", "EIO=%FF&transport=polling&t=%00"])  # fmt: skip
    method = rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    headers = rng.choice([{}, {"Origin": "https://evil.example"}, {"Origin": "null"}, {"Content-Type": "x/y"}])
    journal.log("-", method, query)
    body = polling_body(rng) if method in ("POST", "PUT") else None
    url = yarl.URL(f"{base}?{query}", encoded=True)  # sent as written, invalid escapes included
    timeout = aiohttp.ClientTimeout(total=STEP)
    async with http.request(method, url, data=body, headers=headers, timeout=timeout) as r:
        await r.read()


async def send_frames(ws: aiohttp.ClientWebSocketResponse, frames: list[Frame], sid: str, journal: Journal) -> None:
    for frame in frames:
        if ws.closed:
            return
        journal.log(sid, "WS", frame.data)
        await frame.send(ws)


def ws_base(base: str) -> str:
    return base.replace("http://", "ws://", 1)


SCENARIOS: list[tuple[Scenario, int]] = [
    (polling_session, 4),
    (websocket_session, 4),
    (upgrade_session, 2),
    (http_garbage, 1),
]


async def fuzz(base: str, seed: int, seconds: float, journal: Journal, workers: int = 16) -> int:
    """Run hostile sessions against ``base`` (the /socket.io/ URL) for ``seconds``; how many ran."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    ran = 0

    async def worker(index: int) -> None:
        nonlocal ran
        rng = random.Random(f"{seed}-{index}")
        scenarios, weights = zip(*SCENARIOS, strict=True)
        connector = aiohttp.TCPConnector(limit=4, force_close=rng.random() < 0.5)
        async with aiohttp.ClientSession(connector=connector) as http:
            while loop.time() < stop_at:
                scenario = rng.choices(scenarios, weights)[0]
                # what the client sees (refusals, resets, timeouts) is the protocol's business, not a failure here
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ConnectionError, ValueError, KeyError):
                    await asyncio.wait_for(scenario(rng, http, base, journal), 10)
                ran += 1

    await asyncio.gather(*(worker(i) for i in range(workers)))
    return ran


# -- well-behaved clients ---------------------------------------------------------------------

ACK_TIMEOUT = 10.0


def payload(rng: random.Random, seq: int) -> str | bytes:
    """What a real application sends: text, some of it non-ASCII, sometimes binary."""
    if seq % 7 == 3:
        return rng.randbytes(rng.randint(1, 64))
    return f"msg {seq} é✓𝄞 " + "x" * rng.randint(0, 200)


class PythonClient:
    """python-socketio's AsyncClient: acked echoes in windows of four, plus server events in order."""

    WINDOW = 4

    def __init__(self, url: str, transport: str, seed: int = 0) -> None:
        self.url, self.transport = url, transport
        self.name = f"python-socketio/{transport}"
        self.rng = random.Random(f"{seed}-{transport}")
        # request_timeout: python-engineio aborts the session ("transport error") when one polling POST
        # takes over it, 5 s by default. During the soak's connect storm of 5,000 clients on 2 cores a
        # request waits up to 4 to 8 s (the soak's max latencies), which is the load, not a fault: 20 s,
        # twice the load generator's 10 s ack timeout. A lost POST would still show as an ack timeout.
        self.sio = socketio.AsyncClient(reconnection=False, request_timeout=20)
        self.problems: list[str] = []
        self.acked = 0
        self.events_sent = self.events_seen = 0
        self.sio.on("disconnect", self._disconnected)
        self.sio.on("echo-event", self._event)

    @property
    def sid(self) -> str | None:
        return self.sio.eio.sid

    async def start(self) -> PythonClient:
        await self.sio.connect(self.url, transports=[self.transport], wait_timeout=10)
        return self

    async def _disconnected(self, *reason: Any) -> None:
        self.problems.append(f"disconnected ({', '.join(map(str, reason))}) after {self.acked} acks")

    async def _event(self, seq: int) -> None:
        if seq != self.events_seen:
            self.problems.append(f"server event {seq} arrived when {self.events_seen} was next")
        self.events_seen = seq + 1

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        seq = 0
        while not stop.is_set() and not self.problems:
            answers: list[tuple[int, tuple[Any, ...]]] = []
            done = loop.create_future()
            sent = [(seq + i, payload(self.rng, seq + i)) for i in range(self.WINDOW)]

            def answered(seq: int, *args: Any, answers: list = answers, done: asyncio.Future = done) -> None:
                answers.append((seq, args))
                if len(answers) == self.WINDOW and not done.done():
                    done.set_result(None)

            for n, data in sent:
                await self.sio.emit("echo", (n, data), callback=lambda *a, n=n: answered(n, *a))
            await self.sio.emit("echo-event", self.events_sent)
            self.events_sent += 1
            try:
                await asyncio.wait_for(done, ACK_TIMEOUT)
            except TimeoutError:
                self.problems.append(f"acks {[n for n, _ in sent]}: only {len(answers)} answered in {ACK_TIMEOUT} s")
                return
            if [n for n, _ in answers] != [n for n, _ in sent]:
                self.problems.append(f"acks out of order: {[n for n, _ in answers]}")
            for (n, data), (_, args) in zip(sent, answers, strict=True):
                if args != (n, data):
                    self.problems.append(f"ack {n} answered {args!r:.200}, not {(n, data)!r:.200}")
            self.acked += self.WINDOW
            seq += self.WINDOW

    async def finish(self) -> None:
        """Every server event arrived, then a clean goodbye (which is not a disturbance)."""
        deadline = asyncio.get_running_loop().time() + ACK_TIMEOUT
        # python-socketio offers nothing to await for "all events in": polled, bounded
        while self.events_seen < self.events_sent and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.events_seen < self.events_sent:
            self.problems.append(f"server events: {self.events_seen} of {self.events_sent} arrived")
        self.sio.handlers["/"].pop("disconnect", None)
        await self.sio.disconnect()


class NodeClient:
    """socket.io-client@4 in Node (tests/js/sio_agent.mjs): acked echoes, one at a time, then its state."""

    def __init__(self, agent: NodeAgent, url: str, transport: str, seed: int = 0) -> None:
        self.socket = agent.socket(f"good-{transport}")
        self.url, self.transport = url, transport
        self.name = f"socket.io-client/{transport}"
        self.rng = random.Random(f"{seed}-node-{transport}")
        self.problems: list[str] = []
        self.acked = 0
        self.sid: str | None = None

    async def start(self) -> NodeClient:
        await self.socket.connect(self.url, self.transport)
        self.sid = (await self.socket.state())["sid"]
        return self

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self.problems:
            data = payload(self.rng, self.acked)
            try:
                answer = await self.socket.emit_with_ack("echo", self.acked, data, timeout=int(ACK_TIMEOUT * 1000))
            except (RuntimeError, TimeoutError) as exc:
                self.problems.append(f"ack {self.acked} failed: {exc}")
                return
            if answer != [self.acked, data]:
                self.problems.append(f"ack {self.acked} answered {answer!r:.200}")
            self.acked += 1
            self.check_events()

    def check_events(self) -> None:
        for kind, args in self.socket.drain():
            if kind in ("disconnect", "connect_error"):
                self.problems.append(f"{kind} {args} after {self.acked} acks")

    async def finish(self) -> None:
        self.check_events()
        state = await self.socket.state()
        if not state["connected"] or state["sid"] != self.sid:
            self.problems.append(f"not the same live connection at the end: {state}")
        await self.socket.disconnect()
