"""OpenTelemetry spans (REALTIME["TRACING"]) on real daphne processes, read back from each one's SDK.

Two processes on a private Redis, each with the SDK's in-memory exporter and the
Django instrumentation (tests/tracing_asgi.py), each serving its finished spans at
``/test/spans/`` (tests/tracing_urls.py). Every payload the tests send (event
arguments, auth, acknowledgements, an exception's message, a client's event name)
carries ``MARKER``, and no span of either process may.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
import socketio

from tests.cluster import RedisServer, ensure_redis_installed
from tests.servers import ROOT, ServerProcess

MARKER = f"SECRET-PAYLOAD-{uuid.uuid4()}"
SETTINGS, APP = "tests.tracing_settings", "tests.tracing_asgi:application"
WAIT = 10.0  # longest wait for a span to be exported, in seconds (a loaded machine)
STARTUP = 60.0  # longest wait for a daphne process to answer: Django and the SDK import slowly on a busy machine


def first_request(server):
    """Wait for a server to answer (its start-up, however slow the machine): a handshake, so it joins its cluster."""
    urllib.request.urlopen(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=STARTUP).read()


def stop_all(servers):
    for server in servers:  # SIGTERM to all first: their graceful shutdowns overlap
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def untraced():
    """The same app, SDK and Django instrumentation included, with REALTIME["TRACING"] off (in-memory layer)."""
    server = ServerProcess(SETTINGS, app=APP, env={"REALTIME_TRACING": "0"}).start()
    yield server  # not waited for here: its start-up overlaps A's and B's (its test waits for it)
    stop_all([server])


@pytest.fixture(scope="module")
def processes(untraced):
    """A and B: two daphne processes with tracing on, one private Redis, peers of each other.

    ``untraced`` only so that it is started first, and starts up while these do.
    """
    ensure_redis_installed()
    redis = RedisServer().start()
    env = {"REDIS_URL": redis.url, "CELERY_BROKER_URL": redis.url}
    servers = [ServerProcess(SETTINGS, app=APP, env=env).start() for _ in range(2)]
    try:
        for server in servers:
            first_request(server)
        for server in servers:
            server.wait_for_log(r"peer \S+ joined", timeout=STARTUP)
        yield servers
    finally:
        stop_all(servers)
        redis.stop()


@pytest.fixture
async def client():
    sio = socketio.AsyncClient(reconnection=False)
    yield sio
    if sio.connected:
        await sio.disconnect()


def get_json(url):
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


def post_json(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


async def spans(server):
    """Every span ``server`` has finished so far (tests/tracing_urls.py)."""
    answer = await asyncio.to_thread(get_json, f"{server.url}/test/spans/")
    return answer["spans"]


async def await_spans(servers, ready, what):
    """Each server's spans once ``ready(*spans_per_server)`` holds: a span is exported when it ends."""
    deadline = time.monotonic() + WAIT
    while True:
        found = [await spans(server) for server in servers]
        if ready(*found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} within {WAIT} s; spans: {json.dumps(found, indent=1)}")
        await asyncio.sleep(0.05)  # another process's exporter: there is nothing to await but its answer


def named(spans, name, **attributes):
    return [s for s in spans if s["name"] == name and all(s["attributes"].get(k) == v for k, v in attributes.items())]


def trace_ids(spans):
    return {s["trace_id"] for s in spans}


def one(spans, name, **attributes):
    found = named(spans, name, **attributes)
    assert len(found) == 1, (name, attributes, found)
    return found[0]


# what no span may quote: the payloads, and the messages of the exceptions handlers raise
SECRETS = (MARKER, "cannot use", "boom from a handler")


def assert_no_payload(*span_lists):
    """No payload in any span name, attribute, status description or event of any process."""
    for span in (s for spans in span_lists for s in spans):
        text = json.dumps(span)
        assert not [secret for secret in SECRETS if secret in text], span


def traceparent():
    """A client's own W3C trace context (an instrumented browser sends one): its trace id and parent span id."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


async def test_view_broadcast_and_the_other_process_delivery_are_one_trace(processes, client):
    a, b = processes
    received = asyncio.get_running_loop().create_future()
    client.on("news", lambda *args: received.set_result(args))
    await client.connect(b.url, transports=["websocket"], auth={"token": MARKER})
    room = f"room-{MARKER}"
    assert await client.call("join", room, timeout=5) == [room]

    body = {"event": "news", "args": [MARKER, {"nested": MARKER}], "to": room}
    assert await asyncio.to_thread(post_json, f"{a.url}/test/emit/", body) == {"ok": True}
    assert await asyncio.wait_for(received, 5) == (MARKER, {"nested": MARKER})

    def delivered(on_a, on_b):
        traces = trace_ids(named(on_a, "POST test/emit/"))  # the only call to it in this module
        return traces and all(trace_ids(named(x, "realtime deliver /")) & traces for x in (on_a, on_b))

    on_a, on_b = await await_spans(processes, delivered, "the view's trace")
    view = one(on_a, "POST test/emit/")  # the Django instrumentation's span: the trace starts at the view
    assert (view["kind"], view["parent_id"], view["attributes"]["http.route"]) == ("SERVER", None, "test/emit/")
    trace_id = view["trace_id"]
    on_a, on_b = ([s for s in spans if s["trace_id"] == trace_id] for spans in (on_a, on_b))

    broadcast = one(on_a, "realtime broadcast /")
    assert broadcast["kind"] == "PRODUCER"
    assert (broadcast["trace_id"], broadcast["parent_id"]) == (trace_id, view["span_id"])
    assert broadcast["attributes"] == {
        "realtime.namespace": "/",
        "realtime.rooms": 1,
        "realtime.volatile": False,
        "realtime.local": False,
    }

    remote = one(on_b, "realtime deliver /")  # B's delivery: its parent came over Redis in the envelope
    assert remote["kind"] == "CONSUMER"
    assert (remote["trace_id"], remote["parent_id"], remote["parent_remote"]) == (trace_id, broadcast["span_id"], True)
    assert remote["attributes"]["realtime.namespace"] == "/"
    assert remote["attributes"]["realtime.recipients"] >= 1

    local = one(on_a, "realtime deliver /")  # A's own delivery (nobody in the room there), a local child
    assert (local["trace_id"], local["parent_id"], local["parent_remote"]) == (trace_id, broadcast["span_id"], False)
    assert local["attributes"]["realtime.recipients"] == 0

    in_trace = sorted(s["name"] for s in on_a + on_b)
    assert in_trace == ["POST test/emit/", "realtime broadcast /", "realtime deliver /", "realtime deliver /"]
    assert_no_payload(*[await spans(server) for server in processes])


@pytest.mark.parametrize("event", ["shout", "sync_shout"])  # async def and def handlers
async def test_a_broadcast_from_a_handler_is_a_child_of_its_event_span(processes, client, event):
    """A handler on A emits to a socket's own room on B: sent to B's process directly, in the same trace."""
    a, b = processes
    listener = socketio.AsyncClient(reconnection=False)
    heard = asyncio.get_running_loop().create_future()
    listener.on("shout", lambda *args: heard.set_result(args), namespace="/traced")
    await listener.connect(b.url, namespaces=["/traced"], transports=["websocket"])
    try:
        await client.connect(a.url, namespaces=["/traced"], transports=["polling"], auth={"token": MARKER})
        room = listener.get_sid("/traced")
        assert await client.call(event, (room, MARKER), namespace="/traced", timeout=5) == "sent"
        assert await asyncio.wait_for(heard, 5) == (MARKER,)
    finally:
        await listener.disconnect()

    sender = client.get_sid("/traced")

    def delivered(on_a, on_b):
        handled = named(on_a, f"realtime event /traced {event}", **{"realtime.socket_id": sender})
        return trace_ids(handled) & trace_ids(named(on_b, "realtime deliver /traced"))

    on_a, on_b = await await_spans(processes, delivered, "the shout's trace")
    handled = one(on_a, f"realtime event /traced {event}", **{"realtime.socket_id": sender})
    assert (handled["kind"], handled["parent_id"], handled["attributes"]["realtime.ack"]) == ("SERVER", None, True)
    broadcast = one([s for s in on_a if s["parent_id"] == handled["span_id"]], "realtime broadcast /traced")
    assert (broadcast["trace_id"], broadcast["attributes"]["realtime.rooms"]) == (handled["trace_id"], 1)
    remote = one([s for s in on_b if s["parent_id"] == broadcast["span_id"]], "realtime deliver /traced")
    assert (remote["trace_id"], remote["parent_remote"], remote["attributes"]["realtime.recipients"]) == (
        handled["trace_id"],
        True,
        1,
    )
    assert_no_payload(on_a, on_b)


async def test_handshake_connect_event_ack_and_error_spans(processes, client):
    _, b = processes
    trace_id, parent_id, header = traceparent()
    client.on("question", lambda *args: ("answer", *args))
    await client.connect(
        b.url,
        namespaces=["/", "/traced"],
        transports=["websocket"],
        auth={"token": MARKER},
        headers={"traceparent": header},
    )
    root, traced = client.get_sid("/"), client.get_sid("/traced")
    assert await client.call("echo", MARKER, timeout=5) == MARKER
    assert await client.call("ask", (2.0, MARKER), timeout=5) == {"answer": ["answer", MARKER]}
    await client.emit("boom")  # no ack: the handler raises, the client gets no answer
    await client.emit("fail", MARKER, namespace="/traced")
    await client.emit(f"no-handler-{MARKER}", MARKER)  # a client's event name is its data too

    def recorded(on_b):  # a span is exported when it ends, which may be just after the client had its answer
        by_socket = [("/traced fail", traced), *((f"/ {e}", root) for e in ("echo", "ask", "boom", "other"))]
        return (
            [s for s in on_b if s["trace_id"] == trace_id]
            and all(named(on_b, f"realtime connect {n}", **{"realtime.sid": client.eio.sid}) for n in ("/", "/traced"))
            and named(on_b, "realtime emit_with_ack /", **{"realtime.socket_id": root})
            and all(named(on_b, f"realtime event {e}", **{"realtime.socket_id": i}) for e, i in by_socket)
        )

    (on_b,) = await await_spans([b], recorded, "the client's spans")

    handshake = one([s for s in on_b if s["trace_id"] == trace_id], "realtime handshake")
    assert (handshake["kind"], handshake["parent_id"], handshake["parent_remote"]) == ("SERVER", parent_id, True)
    assert handshake["attributes"] == {
        "realtime.transport": "websocket",
        "realtime.eio": "4",
        "realtime.outcome": "accepted",
    }

    connect = one(on_b, "realtime connect /", **{"realtime.sid": client.eio.sid})
    assert connect["kind"] == "SERVER"
    assert connect["attributes"] == {
        "realtime.namespace": "/",
        "realtime.sid": client.eio.sid,
        "realtime.auth": "anonymous",
        "realtime.outcome": "accepted",
        "realtime.recovered": False,
    }
    assert one(on_b, "realtime connect /traced", **{"realtime.sid": client.eio.sid})["status"]["code"] == "UNSET"

    echo = one(on_b, "realtime event / echo", **{"realtime.socket_id": root})
    assert echo["kind"] == "SERVER"
    assert echo["attributes"] == {
        "realtime.namespace": "/",
        "realtime.event": "echo",
        "realtime.socket_id": root,
        "realtime.ack": True,
    }
    assert echo["status"]["code"] == "UNSET"

    ask = one(on_b, "realtime event / ask", **{"realtime.socket_id": root})
    asked = one(on_b, "realtime emit_with_ack /", **{"realtime.socket_id": root})
    assert asked["kind"] == "CLIENT"
    assert (asked["trace_id"], asked["parent_id"]) == (ask["trace_id"], ask["span_id"])
    assert asked["attributes"] == {"realtime.namespace": "/", "realtime.socket_id": root}

    for name, socket_id, exception in [
        ("realtime event /traced fail", traced, "ValueError"),  # its message quotes MARKER
        ("realtime event / boom", root, "RuntimeError"),  # its message: "boom from a handler"
    ]:
        failed = one(on_b, name, **{"realtime.socket_id": socket_id})
        assert failed["status"]["code"] == "ERROR", failed
        assert failed["attributes"]["exception.type"] == f"builtins.{exception}", failed
        assert failed["status"]["description"] in (None, exception), failed  # the type at most, never the message
        assert failed["events"] == [], failed  # no recorded exception: its message and traceback stay out

    other = one(on_b, "realtime event / other", **{"realtime.socket_id": root})
    assert (other["attributes"]["realtime.event"], other["attributes"]["realtime.ack"]) == ("other", False)
    assert_no_payload(on_b)


async def test_refused_handshake_and_refused_connects(processes):
    a, _ = processes
    trace_id, parent_id, header = traceparent()
    request = urllib.request.Request(
        f"{a.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": "http://evil.example", "traceparent": header}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
    assert refused.value.code == 403

    namespaces = ("/refuse", "/private")  # the only CONNECTs to them in this module
    for namespace in namespaces:
        sio = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(a.url, namespaces=[namespace], transports=["websocket"], auth={"token": MARKER})
        await sio.disconnect()

    def recorded(on_a):
        return [s for s in on_a if s["trace_id"] == trace_id] and all(
            named(on_a, f"realtime connect {n}") for n in namespaces
        )

    (on_a,) = await await_spans([a], recorded, "the refusals' spans")
    handshake = one([s for s in on_a if s["trace_id"] == trace_id], "realtime handshake")
    assert (handshake["parent_id"], handshake["attributes"]["realtime.transport"]) == (parent_id, "polling")
    assert handshake["attributes"]["realtime.outcome"] == "origin"

    by_namespace = {n: one(on_a, f"realtime connect {n}") for n in namespaces}
    # /refuse: on_connect raised ConnectionRefused, with MARKER in its data; /private: login required
    assert by_namespace["/refuse"]["attributes"]["realtime.outcome"] == "connect_refused"
    assert by_namespace["/refuse"]["attributes"]["realtime.auth"] == "anonymous"
    assert by_namespace["/private"]["attributes"]["realtime.outcome"] == "auth"
    assert by_namespace["/private"]["attributes"]["realtime.auth"] == "refused"
    assert_no_payload(on_a)


async def test_a_client_made_up_protocol_version_is_not_recorded(processes):
    """``realtime.eio`` is a version the server knows or "other": the query string is the client's to fill."""
    a, _ = processes
    trace_id, _, header = traceparent()
    url = f"{a.url}/socket.io/?EIO={MARKER}&transport=polling"
    request = urllib.request.Request(url, headers={"traceparent": header})
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
    assert refused.value.code == 400

    (on_a,) = await await_spans([a], lambda on_a: trace_ids(on_a) & {trace_id}, "the handshake's span")
    handshake = one([s for s in on_a if s["trace_id"] == trace_id], "realtime handshake")
    assert handshake["attributes"] == {
        "realtime.transport": "polling",
        "realtime.eio": "other",
        "realtime.outcome": "bad_request",
    }
    assert_no_payload(on_a)


async def test_a_client_chosen_namespace_name_is_not_recorded(processes):
    a, _ = processes
    unknown = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await unknown.connect(a.url, namespaces=[f"/nope-{MARKER}"], transports=["websocket"])
    team = socketio.AsyncClient(reconnection=False)
    await team.connect(a.url, namespaces=[f"/team-{uuid.uuid4().int}"], transports=["websocket"])
    sids = {"team": team.eio.sid}
    await team.disconnect()

    def recorded(on_a):
        connects = [s for s in on_a if s["name"].startswith("realtime connect")]
        return {s["attributes"]["realtime.sid"] for s in connects} >= {sids["team"]} and any(
            s["attributes"].get("realtime.outcome") == "invalid_namespace" for s in connects
        )

    (on_a,) = await await_spans([a], recorded, "the CONNECTs' spans")
    team_span = one(on_a, "realtime connect /team-\\d+", **{"realtime.sid": sids["team"]})
    assert team_span["attributes"]["realtime.namespace"] == "/team-\\d+"  # as its event spans say
    assert_no_payload(on_a)


async def test_tracing_off_records_no_realtime_span_even_with_the_sdk(untraced, client):
    """The view's span is recorded, so the SDK works there; nothing of realtime's is."""
    await asyncio.to_thread(first_request, untraced)
    received = asyncio.get_running_loop().create_future()
    client.on("news", lambda *args: received.set_result(args))
    client.on("question", lambda *args: ("answer", *args))
    await client.connect(untraced.url, transports=["polling", "websocket"], auth={"token": MARKER})
    assert await client.call("join", "off", timeout=5) == ["off"]
    assert await client.call("ask", (2.0, MARKER), timeout=5) == {"answer": ["answer", MARKER]}
    body = {"event": "news", "args": [MARKER], "to": "off"}
    assert await asyncio.to_thread(post_json, f"{untraced.url}/test/emit/", body) == {"ok": True}
    assert await asyncio.wait_for(received, 5) == (MARKER,)

    answer = await asyncio.to_thread(get_json, f"{untraced.url}/test/spans/")
    assert answer["tracing"] is False  # realtime.runtime.current().tracing.enabled in the server
    # the request's span ends as its response is sent: wait for it, then nothing of realtime's is there
    (found,) = await await_spans([untraced], lambda s: named(s, "POST test/emit/"), "the view's span")
    assert [s["name"] for s in found if s["name"].startswith("realtime")] == []


OFF = """
import sys
import django
django.setup()
import realtime.broadcast, realtime.member, realtime.namespaces, realtime.routing, realtime.server, realtime.tracing
import realtime.consumers.polling, realtime.consumers.websocket
import tests.asgi  # the whole test app, built as daphne builds it
from realtime.runtime import current
from realtime.tracing import NO_SPAN
assert current().tracing.enabled is False
assert current().tracing.span("realtime deliver /", "consumer") is NO_SPAN
assert current().tracing.traceparent() is None
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
print(len(loaded), loaded[:5])
"""


def test_tracing_off_does_not_import_opentelemetry():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", OFF], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 []", result.stdout
