"""Operating realtime on real servers: Prometheus's scrape under gunicorn's workers, readiness while a
process drains and while Redis is away, and who may read the metrics.

The scrape is parsed with prometheus_client's own parser, as Prometheus would
read it; every number asserted is what real clients did (events sent with acks,
sockets connected) or what the real fault was (SIGTERM, kill -9, redis-server killed).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from prometheus_client.parser import text_string_to_metric_families

from realtime.member import key_of_sid
from tests.admin_client import AdminSession, make_user, session_cookie
from tests.cluster import ARTIFACTS, RedisServer, ensure_redis_installed
from tests.servers import BIN, ROOT, ServerProcess

APP = "tests.asgi:application"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
ECHO = {"namespace": "/", "event": "echo"}
READY = (200, {"status": "ready"})
ALIVE = (200, {"status": "alive"})
OUTSIDER = {"X-Forwarded-For": "203.0.113.9"}  # TEST-NET-3: an address no allow-list names


# -- HTTP and the exposition format ------------------------------------------------------------


def fetch(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """One request on a fresh connection: (status, content type, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()


def probe(port: int, path: str) -> tuple[int, Any]:
    """(status, JSON body) of a probe, on a fresh connection."""
    status, _, body = fetch(port, path)
    return status, json.loads(body)


def kept_alive(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    """A GET on ``connection`` itself: never a new connection opened behind the test's back."""
    assert connection.sock is not None, "the server closed the kept-alive connection"
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


class Exposition:
    """A scrape as Prometheus reads it: every sample, summed over the labels a question leaves open."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def total(self, name: str, **labels: str) -> float:
        assert any(n == name for n, _, _ in self.samples), f"{name} not in the scrape"
        return sum(v for n, found, v in self.samples if n == name and labels.items() <= found.items())


def scrape(port: int) -> Exposition:
    status, content_type, body = fetch(port, "/metrics")
    assert (status, content_type) == (200, TEXT_FORMAT), body[:300]
    return Exposition(body.decode())


def until(
    condition: Callable[[], Any],
    timeout: float,
    what: str | Callable[[], str],
    every: Callable[[], None] | None = None,
) -> Any:
    """Poll ``condition`` (another process's state: no event to await) until truthy; ``every`` asserts on each turn."""
    deadline = time.monotonic() + timeout
    while True:
        if every is not None:
            every()
        if result := condition():
            return result
        assert time.monotonic() < deadline, f"not within {timeout} s: {what if isinstance(what, str) else what()}"
        time.sleep(0.05)  # poll cadence, not synchronisation


# -- 1. gunicorn's workers: any of them answers for all ------------------------------------------


class Gunicorn:
    """``gunicorn -c python:realtime.gunicorn -k uvicorn.workers.UvicornWorker -w 2`` on a socket the test owns.

    ``--bind fd://N`` as tests/servers.py hands daphne its socket: no port race, and
    connections made before a worker is up wait in the listen backlog. Settings
    tests.operating_settings: a 20 s ping, so a worker the test pauses (``paused``)
    loses no client to a ping timeout meanwhile.
    """

    def __init__(self, metrics_dir: Path) -> None:
        self.metrics_dir = metrics_dir
        self.log_path = ARTIFACTS / f"gunicorn-operating-{os.getpid()}-{id(self)}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gunicorn:
        listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = listener.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the in-memory layer: WebSocket clients only
        env.update(DJANGO_SETTINGS_MODULE="tests.operating_settings", PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir))
        env["PYTHONUNBUFFERED"] = "1"
        command = [str(BIN / "gunicorn"), "-c", "python:realtime.gunicorn", "-k", "uvicorn.workers.UvicornWorker"]
        command += ["-w", "2", "-b", f"fd://{listener.fileno()}", APP]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=[listener.fileno()]
            )
        listener.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def booted(self, count: int, timeout: float = 30) -> list[int]:
        """The pids of the first ``count`` workers, once each has loaded the application."""

        def up() -> list[int] | None:
            assert self.process is not None and self.process.poll() is None, self.log()[-3000:]
            log = self.log()
            started = len(re.findall(r"Application startup complete|'lifespan' protocol appears unsupported", log))
            pids = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log)]
            return pids if len(pids) >= count and started >= count else None

        return until(up, timeout, f"{count} gunicorn workers booted")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def gunicorn(tmp_path):
    server = Gunicorn(tmp_path / "prometheus").start()
    yield server
    server.stop()


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP a worker, so the other takes every new connection; SIGCONT after.

    Both workers wait on the one listening socket and the kernel wakes them
    both; which accepts is a race that one of them wins most of the time (seen
    here: 58 connections of 60). A stopped worker cannot run, so it never wins.
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        # /proc/<pid>/stat's state field: "T" once the signal took effect
        until(lambda: re.search(r"\) (\S)", Path(f"/proc/{pid}/stat").read_text())[1] == "T", 5, f"{pid} stopped")
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def scrape_one_worker(port: int) -> tuple[str, Exposition]:
    """A fresh connection: a handshake, whose sid names the worker that took it, then /metrics on it.

    A connection kept alive stays with the worker that accepted it, so the key says who answered the scrape.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.connect()
        status, body = kept_alive(connection, HANDSHAKE)
        assert status == 200, body
        key = key_of_sid(re.search(rb'"sid":"([^"]+)"', body)[1].decode())
        status, body = kept_alive(connection, "/metrics")
        assert status == 200, body[:300]
        return key, Exposition(body.decode())
    finally:
        connection.close()


def cluster_wide(exposition: Exposition) -> dict[str, float]:
    return {
        "sockets": exposition.total("realtime_sockets"),
        "events": exposition.total("realtime_events_received_total", **ECHO),
        "acks": exposition.total("realtime_acks_sent_total", **ECHO),
        "handled": exposition.total("realtime_handler_duration_seconds_count", **ECHO),
        # livemin over the live workers: one that just started serving must not make the server read "not ready"
        "ready": exposition.total("realtime_ready"),
        "layer_up": exposition.total("realtime_cluster_layer_up"),
    }


SCRAPES_EACH = 5


def every_scrape_shows(port: int, expected: dict[str, float], workers: dict[int, str]) -> None:
    """Each worker (pid -> key) answers scrapes, and every scrape shows the cluster's totals.

    The worker that answers copies its own counts at once; the other's reach the
    shared files within METRICS_FLUSH_INTERVAL (1 s), so the first scrapes may wait
    for that flush, up to a deadline (readiness never waits). From the first
    scrape showing the totals on, every worker's scrapes must show them.
    """
    seen: list[tuple[str, dict[str, float]]] = []

    def settled() -> bool:
        key, exposition = scrape_one_worker(port)
        seen.append((key, now := cluster_wide(exposition)))
        assert (now["ready"], now["layer_up"]) == (1, 1), seen[-5:]
        return now == expected

    until(settled, 10, lambda: f"a scrape showing {expected}; last ones: {seen[-5:]}")
    for pid, key in workers.items():
        (other,) = set(workers) - {pid}
        with paused(other):
            for _ in range(SCRAPES_EACH):
                answered_by, exposition = scrape_one_worker(port)
                assert (answered_by, cluster_wide(exposition)) == (key, expected)


async def connect_to(url: str, count: int) -> tuple[str, list[socketio.AsyncClient]]:
    """``count`` WebSocket clients (one connection: one worker), and the key of the worker that took them all."""
    clients = []
    for _ in range(count):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(url, transports=["websocket"], wait_timeout=10)
        clients.append(client)
    keys = {key_of_sid(client.get_sid("/")) for client in clients} | {key_of_sid(c.eio.sid) for c in clients}
    assert len(keys) == 1, keys  # each socket id and session id names the one worker that was running
    return keys.pop(), clients


async def test_gunicorn_workers_each_answer_the_scrape_for_all_and_a_killed_worker_keeps_its_counts(gunicorn):
    first, second = await asyncio.to_thread(gunicorn.booted, 2)
    keys: dict[int, str] = {}
    clients: dict[int, list[socketio.AsyncClient]] = {}
    try:
        for pid, other, count in ((first, second, 3), (second, first, 4)):
            with paused(other):
                keys[pid], clients[pid] = await connect_to(gunicorn.url, count)
        assert keys[first] != keys[second]
        everyone = clients[first] + clients[second]
        sent = 0
        for i, client in enumerate(everyone):
            for n in range(i % 3 + 1):  # 1, 2 or 3 events each
                assert await client.call("echo", [i, n], timeout=5) == [i, n]
                sent += 1
        expected = {"sockets": len(everyone), "events": sent, "acks": sent, "handled": sent, "ready": 1, "layer_up": 1}
        await asyncio.to_thread(every_scrape_shows, gunicorn.port, expected, keys)

        os.kill(first, signal.SIGKILL)  # no goodbye: gunicorn reaps it (child_exit) and boots another

        def gone() -> bool:
            return not any(client.connected for client in clients[first])

        await asyncio.to_thread(until, gone, 10, "the killed worker's clients disconnected")
        assert all(client.connected for client in clients[second])
        for n, client in enumerate(clients[second]):
            assert await client.call("echo", ["after", n], timeout=5) == ["after", n]
            sent += 1
        third = (await asyncio.to_thread(gunicorn.booted, 3))[2]
        assert third not in (first, second)
        # child_exit: the dead worker's gauges are gone from the shared files, its counters stay
        files = gunicorn.metrics_dir
        await asyncio.to_thread(until, lambda: not list(files.glob(f"gauge_live*_{first}.db")), 5, "gauges dropped")
        assert (files / f"counter_{first}.db").exists() and (files / f"histogram_{first}.db").exists()
        with paused(second):  # the new worker's key; this handshake is the first request it serves
            keys[third] = (await asyncio.to_thread(scrape_one_worker, gunicorn.port))[0]
        assert keys[third] not in (keys[first], keys[second])

        expected.update(sockets=len(clients[second]), events=sent, acks=sent, handled=sent)
        survivors = {pid: keys[pid] for pid in (second, third)}
        await asyncio.to_thread(every_scrape_shows, gunicorn.port, expected, survivors)
    finally:
        for owned in clients.values():
            for client in owned:
                if client.connected:
                    await client.disconnect()


# -- 2. readiness while a process drains -------------------------------------------------------

SESSIONS = 300  # more than one SHUTDOWN_BATCH (200): two batches, SHUTDOWN_GRACE / 4 apart


@pytest.fixture
def draining_server():
    """tests/operating_settings.py: idle polling sessions outlive the test's pace, a 6 s SHUTDOWN_GRACE."""
    server = ServerProcess("tests.operating_settings", app=APP).start()
    yield server
    server.stop()


async def test_readiness_says_draining_from_sigterm_until_the_process_stops_listening(draining_server):
    server = draining_server
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as http_client:

        async def handshake() -> None:
            async with http_client.get(server.url + HANDSHAKE) as response:
                assert response.status == 200

        await asyncio.gather(*(handshake() for _ in range(SESSIONS)))  # raw sessions: cheap, and the drain's work

    # opened before the SIGTERM: the process accepts no connection once its drain ends
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    connection.connect()
    try:
        status, body = await asyncio.to_thread(kept_alive, connection, "/readyz")
        assert (status, json.loads(body)) == READY
        status, body = await asyncio.to_thread(kept_alive, connection, "/metrics")
        exposition = Exposition(body.decode())
        assert status == 200 and exposition.total("realtime_ready") == 1
        assert exposition.total("realtime_sessions") >= SESSIONS

        mark = server.mark()
        server.process.terminate()  # SIGTERM, as Kubernetes would
        # The drain has begun, and daphne's own shutdown trigger (Server.kill_all_applications, called in the
        # same breath as the drain's) is past. Not a probe before: that trigger cancels every application
        # instance running at SIGTERM, and a probe it cancels is never answered (the drain then waits its
        # whole SHUTDOWN_GRACE for it). Once past, every probe is answered.
        await server.await_log(r"shutting down: closing \d+ sessions", since=mark)
        answers: list[tuple[int, Any]] = []
        ended: Exception | None = None
        deadline = time.monotonic() + 15
        while True:
            try:
                status, body = await asyncio.to_thread(kept_alive, connection, "/readyz")
            except (OSError, http.client.HTTPException, AssertionError) as exc:
                ended = exc  # the process is gone: the connection with it
                break
            answers.append((status, json.loads(body)))
            assert time.monotonic() < deadline, answers[-3:]
            await asyncio.sleep(0.05)  # pacing the probes, as a kubelet's period would; not synchronisation
    finally:
        connection.close()
    assert server.process.wait(10) == 0
    # draining on every probe, until the process stopped listening and exited with the connection
    assert answers == [(503, {"status": "draining"})] * len(answers), (answers, ended)
    assert len(answers) >= 3, (answers, ended)  # the drain lasts SHUTDOWN_GRACE / 4 at least: many probe periods
    assert isinstance(ended, ConnectionError), ended  # the connection ended with the process, not a stuck probe
    log = server.log()[mark:]
    closing = re.search(r"shutting down: closing (\d+) sessions", log)
    assert closing and int(closing[1]) >= SESSIONS, log[-2000:]
    assert "shut down: sessions closed\n" in log  # nothing left unanswered


SLOW = 3  # views in flight at SIGTERM


def test_requests_in_flight_at_sigterm_are_answered_and_the_process_exits_early(draining_server):
    """daphne's own shutdown step cancelled every application instance running at SIGTERM: a view in
    flight then was never answered (its client saw the connection drop), and the drain waited the whole
    SHUTDOWN_GRACE (6 s here) for it. realtime replaces that step (realtime/consumers/daphne.py): the
    drain lets them finish and answer, then the process exits."""
    server = draining_server
    assert fetch(server.port, HANDSHAKE)[0] == 200
    mark = server.mark()

    def slow() -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        try:
            connection.request("GET", "/test/slow/?seconds=1.5")
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    with ThreadPoolExecutor(SLOW) as pool:
        views = [pool.submit(slow) for _ in range(SLOW)]
        # every one running in the server (a pattern that needs SLOW lines)
        server.wait_for_log(r"(?s)" + r".*".join(["slow view started"] * SLOW), timeout=10, since=mark)
        started = time.monotonic()
        server.process.terminate()
        answers = [view.result(30) for view in views]
    assert server.process.wait(15) == 0
    took = time.monotonic() - started
    assert answers == [(200, b'{"slept": true}')] * SLOW
    log = server.log()[mark:]
    assert "some HTTP answers unsent" not in log and "Traceback" not in log, log[-2000:]
    assert took < 5, f"exit {took:.1f} s after SIGTERM (SHUTDOWN_GRACE is 6 s): the drain waited for the lost"


# -- 3. readiness while Redis is away ----------------------------------------------------------


@pytest.fixture
def redis_pair(django_db_setup):
    """A private Redis; one process whose readiness needs the layer (READINESS_REQUIRES_LAYER), one default."""
    ensure_redis_installed()
    redis = RedisServer().start()
    env = {"REDIS_URL": redis.url, "CELERY_BROKER_URL": redis.url}
    strict = ServerProcess("tests.settings", app=APP, env={**env, "REALTIME_READINESS_REQUIRES_LAYER": "1"}).start()
    lenient = ServerProcess("tests.settings", app=APP, env=env).start()
    yield redis, strict, lenient
    strict.stop()
    lenient.stop()
    redis.stop()


# An outage is noticed at the next heartbeat (HEARTBEAT_INTERVAL 300 ms) or the layer's next call;
# a Redis back is noticed within a second (heartbeats retry at least once a second during an outage).
OUTAGE_NOTICED = 5.0
RECOVERY_NOTICED = 10.0


def test_readiness_follows_redis_only_where_the_setting_asks(redis_pair):
    redis, strict, lenient = redis_pair
    for server in (strict, lenient):
        assert fetch(server.port, HANDSHAKE)[0] == 200  # a first request: the process joins the cluster
    until(
        lambda: all(scrape(s.port).total("realtime_cluster_peers") == 1 for s in (strict, lenient)),
        15,
        "each process sees the other",
    )
    for server in (strict, lenient):
        assert probe(server.port, "/readyz") == READY
        exposition = scrape(server.port)
        assert (exposition.total("realtime_ready"), exposition.total("realtime_cluster_layer_up")) == (1, 1)

    def lenient_ready() -> None:
        assert probe(lenient.port, "/readyz") == READY  # the default: Redis is not this process's readiness

    def strict_says(expected: tuple[int, Any]) -> bool:
        answer = probe(strict.port, "/readyz")
        assert answer in (READY, (503, {"status": "channel layer unreachable"})), answer
        return answer == expected

    redis.stop()  # kill: every connection to it refused from now on
    started = time.monotonic()
    until(lambda: strict_says((503, {"status": "channel layer unreachable"})), OUTAGE_NOTICED, "503", lenient_ready)
    noticed = time.monotonic() - started
    assert probe(strict.port, "/ops/ready/") == (503, {"status": "channel layer unreachable"})
    exposition = scrape(strict.port)
    assert (exposition.total("realtime_ready"), exposition.total("realtime_cluster_layer_up")) == (0, 0)
    # the default process noticed the outage too, and stays ready
    until(lambda: scrape(lenient.port).total("realtime_cluster_layer_up") == 0, OUTAGE_NOTICED, "down", lenient_ready)
    assert scrape(lenient.port).total("realtime_ready") == 1

    redis.start()  # the same port, empty: the processes resubscribe
    started = time.monotonic()
    until(lambda: strict_says(READY), RECOVERY_NOTICED, "ready again", lenient_ready)
    recovered = time.monotonic() - started
    assert probe(strict.port, "/ops/ready/") == READY
    exposition = scrape(strict.port)
    assert (exposition.total("realtime_ready"), exposition.total("realtime_cluster_layer_up")) == (1, 1)
    assert exposition.total("realtime_cluster_reconnects_total") >= 1
    assert exposition.total("realtime_cluster_layer_errors_total") >= 1
    until(
        lambda: scrape(lenient.port).total("realtime_cluster_reconnects_total") >= 1,
        RECOVERY_NOTICED,
        "the default process reconnected",
        lenient_ready,
    )
    print(f"\nredis down: 503 after {noticed:.2f} s; back: 200 after {recovered:.2f} s")


# -- 4. who may read the metrics ---------------------------------------------------------------


def test_the_scrape_is_for_allowed_addresses_and_staff_and_the_probes_for_everyone(daphne_server, django_db_blocker):
    port = daphne_server.port
    status, content_type, body = fetch(port, "/metrics")
    assert (status, content_type) == (200, TEXT_FORMAT)
    assert Exposition(body.decode()).total("realtime_ready") == 1
    # every address is judged: a proxy in front whose X-Forwarded-For daphne ignores exposes nothing
    assert fetch(port, "/metrics", headers=OUTSIDER)[:2] == (403, "")
    assert fetch(port, "/metrics", headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"})[0] == 403
    assert fetch(port, "/metrics", headers={"X-Forwarded-For": "127.0.0.1"})[0] == 200
    assert fetch(port, "/metrics", method="HEAD")[0] == 200

    # the view: the allow-list, or a staff user signed in to the admin
    status, content_type, _ = fetch(port, "/ops/metrics/")
    assert (status, content_type) == (200, TEXT_FORMAT)
    assert fetch(port, "/ops/metrics/", headers=OUTSIDER)[0] == 403
    with django_db_blocker.unblock():
        staff = make_user("metrics-staff", superuser=True)
        someone = make_user("metrics-user")
        someones_cookie = session_cookie(someone)
    assert fetch(port, "/ops/metrics/", headers={**OUTSIDER, "Cookie": someones_cookie})[0] == 403
    operator = AdminSession(daphne_server.url).login(staff.username)
    response = operator.http.get(daphne_server.url + "/ops/metrics/", headers=OUTSIDER, timeout=20)
    assert (response.status_code, response.headers["content-type"]) == (200, TEXT_FORMAT)
    assert Exposition(response.text).total("realtime_ready") == 1

    # the probes answer anyone: a kubelet asks by the pod's address
    for path in ("/healthz", "/ops/live/"):
        assert probe(port, path) == ALIVE
        status, _, body = fetch(port, path, headers=OUTSIDER)
        assert (status, json.loads(body)) == ALIVE
    assert probe(port, "/readyz") == READY
    assert probe(port, "/ops/ready/") == READY
    for path in ("/readyz", "/healthz", "/metrics"):
        assert fetch(port, path, method="POST")[0] == 405, path


def test_a_server_whose_allow_list_leaves_this_machine_out_refuses_its_scrape(django_db_setup):
    server = ServerProcess("tests.operating_settings", app=APP, env={"REALTIME_METRICS_ALLOWED_IPS": "10.0.0.0/8"})
    server.start()
    try:
        status, _, body = fetch(server.port, "/metrics")
        assert (status, body) == (403, b"Forbidden: not in REALTIME['METRICS_ALLOWED_IPS']\n")
        # naming an allowed address in X-Forwarded-For does not help: the connecting one is judged too
        assert fetch(server.port, "/metrics", headers={"X-Forwarded-For": "10.1.2.3"})[0] == 403
        assert fetch(server.port, "/ops/metrics/")[0] == 403
        assert probe(server.port, "/healthz") == ALIVE
        assert probe(server.port, "/readyz") == READY
    finally:
        server.stop()
