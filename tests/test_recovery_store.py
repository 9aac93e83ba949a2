"""The connection state recovery store in memory (the Redis one is tested in tests/e2e/test_recovery.py)."""

import pytest

from realtime.conf import RecoverySettings
from realtime.recovery import RECOVERABLE_REASONS, Recovery, SocketState, StoredPacket
from realtime.recovery_stores import MemoryStore, redis_of_layer, redis_url_of_layer


def packet(offset, rooms=(), except_rooms=(), except_ids=(), namespace="/", frames=("2[]",)):
    return StoredPacket(offset, namespace, tuple(rooms), tuple(except_rooms), tuple(except_ids), tuple(frames))


def test_settings_parse_as_node_names_them():
    assert RecoverySettings.parse(None) is None
    assert RecoverySettings.parse(True) == RecoverySettings(120.0, True, 16 * 1024 * 1024)
    parsed = RecoverySettings.parse({"MAX_DISCONNECTION_DURATION": 5_000, "SKIP_MIDDLEWARES": False})
    assert (parsed.max_disconnection, parsed.skip_middlewares) == (5.0, False)
    for bad in ({"MAX_DISCONNECTION_DURATION": 0}, {"SKIP_MIDDLEWARES": 1}, {"NOPE": 1}, "yes"):
        with pytest.raises((TypeError, ValueError)):
            RecoverySettings.parse(bad)


def test_a_packet_reaches_the_rooms_it_named_less_its_exceptions():
    rooms = frozenset({"sid1", "r"})
    assert packet("1").reaches("sid1", rooms)  # the whole namespace
    assert packet("1", rooms=["r"]).reaches("sid1", rooms)
    assert not packet("1", rooms=["other"]).reaches("sid1", rooms)
    assert not packet("1", except_rooms=["r"]).reaches("sid1", rooms)
    assert not packet("1", except_ids=["sid1"]).reaches("sid1", rooms)
    kept = packet("1", ["r"], frames=("x", b"\x00"))
    assert StoredPacket.unpack(kept.pack()) == kept


def test_only_transport_losses_are_recoverable():
    assert {"transport close", "ping timeout", "transport error"} <= RECOVERABLE_REASONS
    assert not {"client namespace disconnect", "server namespace disconnect", "parse error"} & RECOVERABLE_REASONS


async def test_memory_store_replays_after_the_offset_and_forgets_by_bytes():
    store = MemoryStore(RecoverySettings(120.0, True, 3 * 64 + 12))  # three packets of 4 bytes and their overhead
    recovery = Recovery(store, "abcdef")
    for offset in ("a", "b", "c"):
        await recovery.record(packet(offset, frames=("2[1]",)))
    state = SocketState("pid", "sid1", "/", ("r",), {"k": 1}, None)
    await store.save(state, live=True)
    assert await recovery.find("pid", "a", "/") is None  # a live socket's state stays in its process
    await store.save(state, live=False)
    assert await recovery.find("pid", "a", "/") == state
    assert [p.offset for p in await recovery.missed(state, "a")] == ["b", "c"]
    assert await recovery.find("pid", "a", "/") == state  # still there until the recovered socket writes it again
    await recovery.record(packet("d", frames=("2[1]",)))  # over the byte bound: "a" goes
    await store.save(state, live=False)
    assert await recovery.find("pid", "a", "/") is None
    assert await recovery.find("pid", "b", "/admin") is None  # another namespace's state: no
    assert await recovery.find("pid", "b", "/") == state


def test_offsets_are_unique_strings_and_pids_are_secret_sized():
    recovery = Recovery(MemoryStore(RecoverySettings()), "abcdef")
    offsets = {recovery.new_offset() for _ in range(100)}
    assert len(offsets) == 100 and all(o.startswith("abcdef") for o in offsets)
    assert len(Recovery.new_pid()) >= 21


def test_the_store_follows_the_channel_layer():
    assert redis_url_of_layer({"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}) is None
    redis = "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert (
        redis_url_of_layer({"default": {"BACKEND": redis, "CONFIG": {"hosts": ["redis://h:1/2"]}}}) == "redis://h:1/2"
    )
    assert redis_url_of_layer({"default": {"BACKEND": redis, "CONFIG": {"hosts": [("h", 7)]}}}) == "redis://h:7"


class Flaky(MemoryStore):
    """The in-memory store, refusing every call while ``down`` (Redis away)."""

    down = False

    async def append(self, packet):
        if self.down:
            raise ConnectionError("store down")
        await super().append(packet)

    async def save(self, state, live):
        if self.down:
            raise ConnectionError("store down")
        await super().save(state, live)

    async def load(self, pid):
        if self.down:
            raise ConnectionError("store down")
        return await super().load(pid)


async def test_what_the_store_refused_is_written_late_in_order_and_an_offset_of_the_outage_recovers(caplog):
    store = Flaky(RecoverySettings(120.0, True, 1024 * 1024))
    recovery = Recovery(store, "abcdef")
    await recovery.record(packet("before"))
    store.down = True
    for offset in ("o1", "o2"):
        await recovery.record(packet(offset))  # refused: kept, in order
    state = SocketState("pid", "sid1", "/", ("r",), {}, None)
    await recovery.save(state, live=False)  # the socket went away during the outage
    assert recovery.backlog == 3
    assert await recovery.find("pid", "o2", "/") is None  # the store is away: the client connects afresh
    await recovery.record(packet("o3"))  # behind the backlog, never before it
    store.down = False
    assert await recovery.find("pid", "o1", "/") == state  # what waited goes in first: o1 is found
    assert [p.offset for p in await recovery.missed(state, "o1")] == ["o2", "o3"]
    assert [p.offset for _, p in store.packets["/"]] == ["before", "o1", "o2", "o3"]
    assert recovery.backlog == 0


async def test_the_backlog_keeps_the_stores_byte_bound():
    store = Flaky(RecoverySettings(120.0, True, 2 * 64 + 8))  # two packets of 4 bytes and their overhead
    store.down = True
    recovery = Recovery(store, "abcdef")
    for offset in ("a", "b", "c"):
        await recovery.record(packet(offset, frames=("2[1]",)))
    store.down = False
    await recovery.record(packet("d", frames=("2[1]",)))
    await recovery.find("nobody", "x", "/")  # drains
    assert [p.offset for _, p in store.packets["/"]] == ["c", "d"]


def test_behind_sentinel_the_store_asks_the_sentinels_for_the_primary():
    host = {"sentinels": [("127.0.0.1", 26379), ("127.0.0.1", 26380)], "master_name": "mymaster", "db": 2}
    layers = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [host]}}}
    client = redis_of_layer(layers)  # nothing is connected yet: the primary is found at the first command
    pool = client.connection_pool
    assert type(pool).__name__ == "SentinelConnectionPool" and pool.service_name == "mymaster"
    assert [
        (c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs["port"])
        for c in pool.sentinel_manager.sentinels
    ] == [("127.0.0.1", 26379), ("127.0.0.1", 26380)]
    assert pool.connection_kwargs["db"] == 2
    assert redis_url_of_layer(layers) is None
    assert redis_of_layer({"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}) is None
