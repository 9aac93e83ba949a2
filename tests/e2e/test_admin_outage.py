"""A database that is slow or down makes the admin stale, never the sockets slower or broken.

The registry writes in its own thread: while the pytest process holds the
database's write lock (slow) or has renamed the registry's table away
(down), clients connect, talk and leave as usual; once the database is back
the registry catches up, rows of sockets that left in between included.
"""

import sqlite3
import time

import pytest
from django.conf import settings

from tests.admin_client import eventually
from tests.servers import ServerProcess


@pytest.fixture
def fresh_server(django_db_setup):
    process = ServerProcess("tests.settings", app="tests.asgi:application").start()
    yield process
    process.stop()


def raw_db():
    return sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None, timeout=20)


def registered(*socket_ids):
    with raw_db() as db:
        marks = ",".join("?" * len(socket_ids))
        rows = db.execute(f"SELECT socket_id FROM realtime_connection WHERE socket_id IN ({marks})", socket_ids)
        return {row[0] for row in rows}


async def round_trips(socket, count=20):
    """The slowest of ``count`` echo round trips, in seconds."""
    slowest = 0.0
    for i in range(count):
        started = time.monotonic()
        assert await socket.emit_with_ack("echo", i) == [i]
        slowest = max(slowest, time.monotonic() - started)
    return slowest


async def test_slow_and_down_database(fresh_server, agent):
    a = await agent.socket("a").connect(fresh_server.url, "websocket")

    async def a_listed():
        return registered(a.id) == {a.id}

    await eventually(a_listed)

    # slow: the registry's writes wait on a lock held for 1.5 s
    db = raw_db()
    db.execute("BEGIN EXCLUSIVE")
    locked = time.monotonic()
    started = time.monotonic()
    b = await agent.socket("b").connect(fresh_server.url, "upgrade")
    assert time.monotonic() - started < 1.0
    assert await round_trips(a) < 0.25
    assert await round_trips(b) < 0.25
    while time.monotonic() - locked < 1.5:  # keep the lock while the clients keep talking
        assert await round_trips(a, 5) < 0.25
    db.execute("ROLLBACK")

    async def b_listed():
        return registered(b.id) == {b.id}

    await eventually(b_listed)

    # down: the registry's table is gone; its writes fail, it says so once, and backs off
    mark = fresh_server.mark()
    db.execute("ALTER TABLE realtime_connection RENAME TO realtime_connection_away")
    try:
        c = await agent.socket("c").connect(fresh_server.url, "polling")
        await fresh_server.await_log(r"registry: database write failed .*the admin is stale", since=mark)
        await a.disconnect()
        assert await round_trips(b) < 0.25
        assert await round_trips(c) < 0.25
    finally:
        db.execute("ALTER TABLE realtime_connection_away RENAME TO realtime_connection")
    await fresh_server.await_log(r"registry: database writes succeed again", since=mark, timeout=10)

    async def caught_up():
        return registered(a.id, b.id, c.id) == {b.id, c.id}

    await eventually(caught_up)
    assert fresh_server.log()[mark:].count("registry: database write failed") == 1
    db.close()
