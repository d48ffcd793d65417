"""Regression tests of the durable-delivery findings (each failed before the
Streams protocol core). On the real Redis server only: fakeredis accepts what
Redis 7.0 refuses, and these are about what Redis does."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from _redis_support import (
    OrderPlaced,
    publisher_for,
    wait_until,
)

from eventspype import EventPublication, FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker, SubscriptionRefused

Factory = Callable[..., RedisStreamBroker]


@pytest.fixture
def make(real: tuple[redis.Redis, str]) -> Iterator[Factory]:
    client, prefix = real
    made: list[RedisStreamBroker] = []

    def factory(**options: Any) -> RedisStreamBroker:
        options.setdefault("channel_prefix", prefix)
        options.setdefault("group", "g")
        options.setdefault("claim_interval", 0.2)
        options.setdefault("retry_delay", (0.05, 0.2))
        broker = RedisStreamBroker(client, **options)
        broker.register_event_class(OrderPlaced)
        made.append(broker)
        return broker

    yield factory
    for broker in made:
        broker.close(drain=0)


def _key(prefix: str, channel: str) -> str:
    return f"{prefix}{{{channel}}}"


def test_entries_waiting_in_a_batch_are_not_claimed_by_another_consumer(
    make: Factory,
) -> None:
    # Handlers of 0.25 s, 16 entries in one consumer's hand: the last waits
    # 4 s, past claim_idle; its lease is renewed, so no duplicate.
    handled: list[tuple[str, int]] = []
    lock = threading.Lock()

    def slow(name: str) -> FunctionalEventSubscriber:
        def handle(event: Any, tag: Any, caller: Any) -> None:
            time.sleep(0.25)
            with lock:
                handled.append((name, event.order_id))

        return FunctionalEventSubscriber(handle)

    first = make(claim_idle=2.0, prefetch=16, consumer="a")
    second = make(claim_idle=2.0, prefetch=16, consumer="b")
    subs = [slow("a"), slow("b")]
    first.subscribe("ORDERS", subs[0])
    publisher = publisher_for(first, "orders", OrderPlaced)
    for index in range(16):
        publisher.publish(OrderPlaced(index, 0.0))
    wait_until(lambda: first.stats().delivered >= 1)
    second.subscribe("ORDERS", subs[1])
    wait_until(lambda: len(handled) >= 16, timeout=30)
    time.sleep(0.5)  # not a timing assertion: room for a duplicate to show
    ids = [order for _, order in handled]
    assert sorted(ids) == list(range(16)), "an entry was handled twice"
    assert first.stats().leases_lost == 0


def test_a_dead_letter_key_of_the_wrong_type_loses_nothing(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    client, prefix = real
    broker = make(claim_idle=5.0, max_deliveries=1)
    handled: list[int] = []

    def handle(event: Any, tag: Any, caller: Any) -> None:
        if event.order_id == 0:
            raise ValueError("poison")
        handled.append(event.order_id)

    subscriber = FunctionalEventSubscriber(handle)
    broker.subscribe("ORDERS", subscriber)
    client.set(_key(prefix, "ORDERS") + ":dead", b"not a stream")
    publisher = publisher_for(broker, "orders", OrderPlaced)
    for index in range(6):
        publisher.publish(OrderPlaced(index, 0.0))
    wait_until(lambda: sorted(handled) == [1, 2, 3, 4, 5])
    wait_until(lambda: broker.stats().key_errors >= 1)
    # The five are handled before their acknowledgements are sent: wait for
    # those. Then the poison entry stays pending (not acknowledged, not lost),
    # and the healthy ones were handled once.
    wait_until(lambda: broker.stats().acknowledged >= 5)
    assert broker.stats().channels["ORDERS"].pending == 1
    assert broker.stats().dead_lettered == 0
    client.delete(_key(prefix, "ORDERS") + ":dead")
    wait_until(lambda: broker.stats().dead_lettered == 1, timeout=20)
    assert sorted(handled) == [1, 2, 3, 4, 5]
    assert broker.stats().channels["ORDERS"].pending == 0


def test_a_broken_stream_key_stops_only_its_channel(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    client, prefix = real
    broker = make(claim_idle=5.0)
    got: list[str] = []
    subs = [
        FunctionalEventSubscriber(lambda e, t, c: got.append("A")),
        FunctionalEventSubscriber(lambda e, t, c: got.append("B")),
    ]
    broker.subscribe("A", subs[0])
    broker.subscribe("B", subs[1])
    client.delete(_key(prefix, "A"))
    client.set(_key(prefix, "A"), b"oops")
    publisher_for(broker, "b", OrderPlaced).publish(OrderPlaced(1, 0.0))
    wait_until(lambda: got == ["B"])
    wait_until(lambda: broker.stats().key_errors >= 1)
    assert not broker.health().ready
    assert broker.health().live


def test_subscribe_on_a_key_that_is_not_a_stream_raises_and_keeps_nothing(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    client, prefix = real
    broker = make()
    client.set(_key(prefix, "ORDERS"), b"oops")
    subscriber = FunctionalEventSubscriber(lambda e, t, c: None)
    with pytest.raises(SubscriptionRefused):
        broker.subscribe("ORDERS", subscriber)
    assert "ORDERS" not in broker._receiving.channels()


def test_malformed_and_oversized_entries_are_counted_and_dead_lettered(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    client, prefix = real
    broker = make(max_message_bytes=1000)
    subscriber = FunctionalEventSubscriber(lambda e, t, c: None)
    broker.subscribe("ORDERS", subscriber)
    key = _key(prefix, "ORDERS")
    client.xadd(key, {"not-event": "x"})
    client.xadd(key, {"event": b"x" * 5000})
    wait_until(lambda: broker.stats().dead_lettered == 2)
    stats = broker.stats()
    assert (stats.malformed, stats.oversized) == (1, 1)
    letters = broker.dead_letters("ORDERS")
    assert [letter.reason for letter in letters] == ["malformed", "oversized"]
    assert letters[1].size == 5000
    assert letters[1].event == b""  # not copied
    # Re-publishing refuses what would fail again.
    assert broker.republish_dead_letters("ORDERS") == 0
    assert len(broker.dead_letters("ORDERS")) == 2


def test_failing_entries_never_exceed_prefetch(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    broker = make(prefetch=5, max_deliveries=100, claim_idle=5.0)

    def fail(event: Any, tag: Any, caller: Any) -> None:
        raise RuntimeError("always")

    subscriber = FunctionalEventSubscriber(fail)
    broker.subscribe("ORDERS", subscriber)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    for index in range(50):
        publisher.publish(OrderPlaced(index, 0.0))
    wait_until(lambda: broker.stats().retried >= 20, timeout=30)
    stats = broker.stats()
    assert stats.channels["ORDERS"].pending == 5
    assert stats.reads_paused >= 1
    assert broker.health().paused


def test_a_restarted_consumer_resumes_its_own_entries_at_once(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    client, prefix = real
    key = _key(prefix, "ORDERS")
    client.xgroup_create(key, "g", id="0", mkstream=True)
    publisher = publisher_for(make(consumer="publisher"), "orders", OrderPlaced)
    for index in range(3):
        publisher.publish(OrderPlaced(index, 0.0))
    # worker-1 read them and died (kill -9) before handling: pending on it.
    client.xreadgroup("g", "worker-1", {key: ">"}, count=10)
    got: list[int] = []
    again = make(consumer="worker-1", claim_idle=30.0)
    subscriber = FunctionalEventSubscriber(lambda e, t, c: got.append(e.order_id))
    again.subscribe("ORDERS", subscriber)
    wait_until(lambda: sorted(got) == [0, 1, 2])  # well before claim_idle
    assert again.stats().resumed == 3


def test_close_hands_back_what_it_did_not_finish(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    gate = threading.Event()
    # All five are in the stream before "a" subscribes (start="all"), so its
    # first read takes all of them. Published after, a first read could take
    # only some; the handler then holds the reader thread and the rest stay
    # unread: "b" would read them as new, not take them back (seen under load).
    first = make(consumer="a", claim_idle=30.0, prefetch=10, start="all")
    publisher = publisher_for(first, "orders", OrderPlaced)
    for index in range(5):
        publisher.publish(OrderPlaced(index, 0.0))
    first.subscribe(
        "ORDERS", held := FunctionalEventSubscriber(lambda e, t, c: gate.wait(10))
    )
    wait_until(lambda: first.stats().delivered >= 1)
    client, prefix = real
    assert client.xpending(_key(prefix, "ORDERS"), "g")["pending"] == 5
    closing = threading.Thread(target=first.close, kwargs={"drain": 0.2})
    closing.start()
    time.sleep(0.5)
    gate.set()
    closing.join(20)
    got: list[int] = []
    second = make(consumer="b", claim_idle=30.0)
    second.subscribe(
        "ORDERS",
        sub := FunctionalEventSubscriber(lambda e, t, c: got.append(e.order_id)),
    )
    # Taken at its first sweep, not after claim_idle (30 s).
    wait_until(lambda: len(got) >= 4)
    assert first.stats().handed_back >= 4
    del held, sub


def test_mistakes_are_caught(make: Factory) -> None:
    with pytest.raises(ValueError, match="group"):
        make(group="")
    broker = make(max_deliveries=1)
    subscriber = FunctionalEventSubscriber(lambda e, t, c: 1 / 0)
    publication = EventPublication("invoice_due", OrderPlaced)
    broker.subscribe_publication(publication, subscriber)
    publisher_for(broker, "invoice_due", OrderPlaced).publish(OrderPlaced(1, 0.0))
    wait_until(lambda: broker.stats().dead_lettered == 1)
    assert len(broker.dead_letters("invoice_due")) == 1  # the tag as written
    assert len(broker.dead_letters(publication)) == 1


def test_dead_letter_warnings_are_rate_limited(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make(max_deliveries=1)
    subscriber = FunctionalEventSubscriber(lambda e, t, c: 1 / 0)
    broker.subscribe("ORDERS", subscriber)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
        for index in range(40):
            publisher.publish(OrderPlaced(index, 0.0))
        wait_until(lambda: broker.stats().dead_lettered == 40)
    moved = [r for r in caplog.records if "dead-letter stream" in r.getMessage()]
    assert 1 <= len(moved) < 10


def test_a_dropped_broker_is_collected_and_its_reader_stops(
    real: tuple[redis.Redis, str],
) -> None:
    import gc
    import weakref

    client, prefix = real
    broker = RedisStreamBroker(client, channel_prefix=prefix, group="g")
    subscriber = FunctionalEventSubscriber(lambda e, t, c: None)
    broker.subscribe("ORDERS", subscriber)
    reader = broker._reader
    ref = weakref.ref(broker)
    del broker
    wait_until(lambda: gc.collect() >= 0 and ref() is None)
    assert reader.join(10.0)


def test_two_live_processes_with_one_consumer_name_are_reported(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    subscriber = FunctionalEventSubscriber(lambda e, t, c: None)
    with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
        first = make(consumer="twin")
        first.subscribe("ORDERS", subscriber)
        wait_until(lambda: first._reader.readers()[0]._lease.conflicts == 0)
        second = make(consumer="twin")
        second.subscribe("ORDERS", subscriber)
        lease = second._reader.readers()[0]._lease
        first_lease = first._reader.readers()[0]._lease
        wait_until(lambda: lease.conflicts + first_lease.conflicts >= 1)
    assert any("consumer name" in r.getMessage() for r in caplog.records)


def test_a_hung_handler_shows_in_liveness_not_readiness(make: Factory) -> None:
    gate = threading.Event()
    broker = make()
    subscriber = FunctionalEventSubscriber(lambda e, t, c: gate.wait(20))
    broker.subscribe("ORDERS", subscriber)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    for index in range(3):
        publisher.publish(OrderPlaced(index, 0.0))
    wait_until(lambda: broker.stats().delivered >= 1)
    wait_until(lambda: not broker.health(stuck_after=0.3).live)
    health = broker.health(stuck_after=0.3, backlog=True)
    assert health.ready
    assert health.oldest_running is not None
    backlog = health.channels["ORDERS"]
    assert backlog.pending + (backlog.lag or 0) == 3
    gate.set()
    wait_until(lambda: broker.stats().acknowledged == 3)
    assert broker.health(stuck_after=0.3).live


def test_entries_trimmed_before_the_group_read_them_are_reported(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    client, prefix = real
    key = _key(prefix, "ORDERS")
    client.xgroup_create(key, "g", id="0", mkstream=True)
    publisher = publisher_for(make(consumer="publisher"), "orders", OrderPlaced)
    for index in range(10):
        publisher.publish(OrderPlaced(index, 0.0))
    client.xtrim(key, maxlen=2, approximate=False)  # 8 never read by "g"
    got: list[int] = []
    broker = make(forget_consumers_after=2.0)
    subscriber = FunctionalEventSubscriber(lambda e, t, c: got.append(e.order_id))
    broker.subscribe("ORDERS", subscriber)
    wait_until(lambda: got == [8, 9])
    wait_until(lambda: broker.stats().trimmed_unread >= 1)


def test_the_dead_letter_stream_has_its_own_bound(
    make: Factory, real: tuple[redis.Redis, str]
) -> None:
    # The stream itself is never trimmed here (maxlen=None): only
    # dead_letter_maxlen can shorten <stream>:dead. MAXLEN ~ trims whole
    # nodes of at most 100 entries, so about 10 means at most 110.
    client, prefix = real
    broker = make(maxlen=None, dead_letter_maxlen=10)
    subscriber = FunctionalEventSubscriber(lambda e, t, c: None)
    broker.subscribe("ORDERS", subscriber)
    key = _key(prefix, "ORDERS")
    with client.pipeline(transaction=False) as pipe:
        for index in range(300):
            pipe.xadd(key, {"not-event": str(index)})
        ids = [i.decode() for i in pipe.execute()]
    wait_until(lambda: broker.stats().dead_lettered == 300, timeout=30)
    assert 10 <= client.xlen(f"{key}:dead") <= 110
    letters = broker.dead_letters("ORDERS", count=1000)
    assert letters[-1].original_id == ids[-1]  # the oldest went first
    with pytest.raises(ValueError, match="dead_letter_maxlen"):
        make(dead_letter_maxlen=0)
