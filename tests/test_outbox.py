"""The outbox and the receivers' duplicate check (realtime.outbox): plain data structures, time an argument."""

import asyncio
import logging

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from realtime.member import ClusterMember, LayerErrorFilter
from realtime.outbox import Outbox, Seen, size_of


def test_a_fifo_bounded_in_bytes_and_messages():
    box = Outbox(max_bytes=100, max_messages=3, max_age=10.0)
    assert box.put("a", 40, True, now=0.0)
    assert box.put("b", 40, False, now=1.0)
    assert not box.put("c", 30, True, now=2.0)  # 110 bytes: refused, nothing queued
    assert box.put("d", 20, True, now=3.0)
    assert not box.put("e", 0, True, now=4.0)  # a fourth message
    assert (len(box), box.bytes) == (3, 100)
    assert [box.pop().item for _ in range(3)] == ["a", "b", "d"]
    assert (len(box), box.bytes, box.head()) == (0, 0, None)


def test_the_head_stays_until_it_is_popped():
    box = Outbox(max_bytes=100, max_messages=10, max_age=10.0)
    box.put("a", 10, True, now=0.0)
    head = box.head()
    head.attempts += 1  # a failed publish: it is retried, not lost
    assert box.head() is head and box.head().attempts == 1


def test_old_entries_expire_from_the_head():
    box = Outbox(max_bytes=100, max_messages=10, max_age=5.0)
    for i, now in enumerate((0.0, 1.0, 2.0, 7.0)):
        box.put(i, 10, True, now)
    gone = box.expire(now=6.5)  # older than 1.5
    assert [entry.item for entry in gone] == [0, 1]
    assert [box.pop().item for _ in range(len(box))] == [2, 3]


def test_an_outage_drops_what_is_not_durable_and_keeps_the_order_of_the_rest():
    box = Outbox(max_bytes=1000, max_messages=10, max_age=5.0)
    for item, durable in (("b1", True), ("poll", False), ("b2", True), ("reply", False), ("b3", True)):
        box.put(item, 10, durable, 0.0)
    gone = box.drop_ephemeral()
    assert [entry.item for entry in gone] == ["poll", "reply"]
    assert box.bytes == 30
    assert [box.pop().item for _ in range(len(box))] == ["b1", "b2", "b3"]


class OutboxMachine(RuleBasedStateMachine):
    """Any sequence of puts, pops, expiries and outages keeps the bounds, the byte count and the order."""

    def __init__(self):
        super().__init__()
        self.box = Outbox(max_bytes=500, max_messages=8, max_age=3.0)
        self.model = []  # (item, size, durable, at)
        self.now = 0.0
        self.counter = 0

    @rule(size=st.integers(0, 200), durable=st.booleans(), later=st.floats(0, 2))
    def put(self, size, durable, later):
        self.now += later
        self.counter += 1
        fits = sum(s for _, s, _, _ in self.model) + size <= 500 and len(self.model) < 8
        assert self.box.put(self.counter, size, durable, self.now) is fits
        if fits:
            self.model.append((self.counter, size, durable, self.now))

    @precondition(lambda self: self.model)
    @rule()
    def pop(self):
        assert self.box.pop().item == self.model.pop(0)[0]

    @rule(later=st.floats(0, 2))
    def expire(self, later):
        self.now += later
        gone = [entry.item for entry in self.box.expire(self.now)]
        expected = []
        while self.model and self.model[0][3] < self.now - 3.0:
            expected.append(self.model.pop(0)[0])
        assert gone == expected

    @rule()
    def outage(self):
        gone = [entry.item for entry in self.box.drop_ephemeral()]
        assert gone == [item for item, _, durable, _ in self.model if not durable]
        self.model = [entry for entry in self.model if entry[2]]

    @invariant()
    def counts_match(self):
        assert len(self.box) == len(self.model) <= 8
        assert self.box.bytes == sum(size for _, size, _, _ in self.model) <= 500
        head = self.box.head()
        assert (head.item if head else None) == (self.model[0][0] if self.model else None)


TestOutboxMachine = OutboxMachine.TestCase


def test_a_repeat_is_seen_once_per_origin():
    seen = Seen(per_origin=3, origins=2)
    assert seen.first_time("a", 1) and seen.first_time("b", 1)
    assert not seen.first_time("a", 1)
    assert seen.first_time("a", 3) and seen.first_time("a", 2)  # out of order across shards: still new
    assert seen.first_time("a", 4)  # remembers the last 3: 1 is forgotten
    assert seen.first_time("a", 1)


def test_the_oldest_origin_is_forgotten():
    seen = Seen(per_origin=10, origins=2)
    seen.first_time("a", 1)
    seen.first_time("b", 1)
    seen.first_time("a", 2)  # a is recent again
    seen.first_time("c", 1)  # b goes
    assert not seen.first_time("a", 1)
    assert seen.first_time("b", 1)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 50)), max_size=200))
def test_every_pair_is_new_exactly_once_within_the_window(pairs):
    seen = Seen(per_origin=1000, origins=10)
    first = [seen.first_time(origin, n) for origin, n in pairs]
    assert sum(first) == len(set(pairs))


def test_size_of_counts_strings_bytes_and_structure():
    assert size_of({"a": "xyz", "b": [b"12", 3]}) == (1 + 3) + (1 + (2 + 8 + 8)) + 8


def test_channels_redis_receive_errors_become_the_members_outage(caplog):
    """No library traceback: the member hears of it (its subscriptions are gone) and the lines are counted."""
    failures = []
    layer_errors = LayerErrorFilter()
    layer_errors.on_error = failures.append  # the member's _receive_failed, tested below
    library = logging.getLogger("channels_redis.pubsub")
    installed, library.filters = library.filters, [layer_errors]  # the runtime's own is there since ready()
    try:
        with caplog.at_level(logging.DEBUG, logger="channels_redis.pubsub"):
            for _ in range(3):
                try:
                    raise ConnectionError("Connection closed by server.")
                except ConnectionError:
                    library.exception("Unexpected exception in receive task")
            library.warning("something else")
    finally:
        library.filters = installed
    assert [r.getMessage() for r in caplog.records if r.name == "channels_redis.pubsub"] == ["something else"]
    assert [str(f) for f in failures] == ["Connection closed by server."] * 3
    assert layer_errors.reset() == 3 and layer_errors.reset() == 0


def test_a_receive_error_marks_a_serving_member_unhealthy_once(caplog):
    async def scenario():
        member = ClusterMember(handle=None, subscriptions=list, clustered=True)
        member.serving = True
        member._loop = asyncio.get_running_loop()  # start() sets it, with a real layer
        with caplog.at_level(logging.WARNING, logger="realtime.node"):
            member._receive_failed(ConnectionError("Connection closed by server."))
            member._receive_failed(ConnectionError("Connection closed by server."))
        return member

    member = asyncio.run(scenario())
    assert not member.healthy
    lines = [r.getMessage() for r in caplog.records if r.name == "realtime.node"]
    assert len(lines) == 1 and lines[0].startswith("channel layer unreachable (ConnectionError")


def test_the_publisher_keeps_a_durable_head_through_a_failure_and_sends_it_again_in_order():
    """The sender task against a layer call that fails once: the member is told, nothing is lost or reordered."""
    from realtime.metrics import Metrics
    from realtime.publisher import Publisher

    async def scenario():
        delivered, failures, lost = [], [], []
        fail_next = [True]
        failed = asyncio.Event()

        async def layer_send(target, message):
            if fail_next[0]:
                fail_next[0] = False
                raise ConnectionError("Redis went away")
            delivered.append(message["n"])

        metrics = Metrics()
        publisher = Publisher(
            Outbox(max_bytes=10_000, max_messages=100, max_age=60.0),
            metrics,
            lost=lambda reason, count: lost.append((reason, count)),
            failed=lambda exc: (failures.append(str(exc)), publisher.hold(), failed.set()),  # as the member does
            warn=lambda *args: None,
        )
        task = asyncio.ensure_future(publisher.run())
        for n in range(3):
            assert publisher.put((layer_send, "group", {"type": "realtime.broadcast", "n": n}), True, True)
        assert publisher.put((layer_send, "peer", {"type": "realtime.poll", "n": 99}), False, True)
        await asyncio.wait_for(failed.wait(), 2)
        assert failures == ["Redis went away"] and publisher.held
        assert lost == [("outage", 1)]  # the poll: pointless after an outage
        assert not publisher.put((layer_send, "peer", {"type": "realtime.poll", "n": 100}), False, False)
        assert publisher.put((layer_send, "group", {"type": "realtime.broadcast", "n": 3}), True, False)
        publisher.release()
        assert await publisher.flush(2)
        task.cancel()
        return delivered, metrics, lost

    delivered, metrics, lost = asyncio.run(scenario())
    assert delivered == [0, 1, 2, 3]
    assert metrics.retried == 1 and metrics.published == {"broadcast": 4}
    assert lost == [("outage", 1), ("outage", 1)]
