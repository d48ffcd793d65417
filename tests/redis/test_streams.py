"""RedisStreamBroker: publish, acknowledge, redeliver, dead-letter, groups.

Every test runs on fakeredis and on the shared server (see conftest), with a
prefix of its own; nothing is flushed. ``claim_idle`` is small so that
redelivery happens within the tests' generous waits.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from _redis_support import (
    Inbox,
    OrderCancelled,
    OrderPlaced,
    collect,
    publisher_for,
    wait_until,
)

from eventspype import EventPublication, FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker, RedisStreamBroker
from eventspype.broker.redis._wire import envelope as _envelope
from eventspype.serializers import JsonEventSerializer

StreamFactory = Callable[..., RedisStreamBroker]
READER_THREAD = "eventspype-redis-stream-reader"


@pytest.fixture
def streams(client: redis.Redis, prefix: str) -> Iterator[StreamFactory]:
    """Makes stream brokers on the test's server and prefix; cleans up after."""
    made: list[RedisStreamBroker] = []

    def make(**options: Any) -> RedisStreamBroker:
        options.setdefault("channel_prefix", prefix)
        options.setdefault("claim_idle", 0.2)
        options.setdefault("claim_interval", 0.1)
        options.setdefault("retry_delay", (0.05, 0.2))
        options.setdefault("group", "g")
        target = options.pop("client", client)
        broker = RedisStreamBroker(target, **options)
        broker.register_event_classes(OrderPlaced, OrderCancelled)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def _entries(client: redis.Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return [(i, dict(f)) for i, f in client.xrange(key)]


def test_publish_adds_the_redis_broker_envelope_in_one_field(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams()
    publisher_for(broker, "orders", OrderPlaced).publish(OrderPlaced(7, 2.5))

    [(_, fields)] = _entries(client, f"{prefix}{{ORDERS}}")
    expected = _envelope.encode(
        "ORDERS", OrderPlaced, JsonEventSerializer().serialize(OrderPlaced(7, 2.5))
    )
    assert fields == {b"event": expected}
    assert broker.stats().published == 1


def test_a_subscriber_receives_and_the_entry_is_acknowledged(
    streams: StreamFactory,
) -> None:
    broker = streams()
    publisher = publisher_for(broker, "orders", OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)

    for index in range(5):
        publisher.publish(OrderPlaced(index, 1.0))

    assert inbox.wait_for(5) == [OrderPlaced(i, 1.0) for i in range(5)]
    assert all(caller is broker for _, _, caller in inbox.items)
    wait_until(lambda: broker.stats().acknowledged == 5)
    stats = broker.stats()
    assert (stats.published, stats.delivered, stats.redelivered) == (5, 5, 0)
    assert stats.channels["ORDERS"].pending == 0
    assert stats.channels["ORDERS"].lag == 0


def test_events_published_while_nobody_reads_wait_for_the_group(
    streams: StreamFactory,
) -> None:
    first = streams()
    inbox = Inbox()
    first.subscribe("ORDERS", inbox.subscriber)  # creates the group
    first.close()
    publisher = publisher_for(streams(), "orders", OrderPlaced)
    for index in range(3):
        publisher.publish(OrderPlaced(index, 0.0))

    later = streams()
    late_inbox = Inbox()
    later.subscribe("ORDERS", late_inbox.subscriber)

    assert late_inbox.wait_for(3) == [OrderPlaced(i, 0.0) for i in range(3)]
    assert inbox.events == []


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
@pytest.mark.parametrize(("start", "expected"), [("new", [2]), ("all", [1, 2])])
def test_start_decides_where_a_new_group_begins(
    streams: StreamFactory, start: str, expected: list[int]
) -> None:
    publisher = publisher_for(streams(), "orders", OrderPlaced)
    publisher.publish(OrderPlaced(1, 0.0))
    broker = streams(start=start)
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    publisher.publish(OrderPlaced(2, 0.0))

    wait_until(lambda: len(inbox.events) >= len(expected))
    wait_until(lambda: broker.stats().acknowledged == len(expected))
    assert [e.order_id for e in inbox.events] == expected


def test_batch_sends_every_held_event_and_a_raising_block_none(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams()
    publisher = publisher_for(broker, "orders", OrderPlaced)
    with broker.batch() as batch:
        for index in range(4):
            publisher.publish(OrderPlaced(index, 0.0))
        assert batch.pending == 4
        assert client.exists(f"{prefix}{{ORDERS}}") == 0
    assert client.xlen(f"{prefix}{{ORDERS}}") == 4

    def failing_block() -> None:
        with broker.batch():
            publisher.publish(OrderPlaced(9, 0.0))
            raise KeyError("boom")

    with pytest.raises(KeyError):
        failing_block()
    assert client.xlen(f"{prefix}{{ORDERS}}") == 4
    assert broker.stats().published == 4


def test_maxlen_trims_the_stream_approximately(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams(maxlen=10)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    for index in range(500):
        publisher.publish(OrderPlaced(index, 0.0))
    assert client.xlen(f"{prefix}{{ORDERS}}") < 500
    untrimmed = publisher_for(streams(maxlen=None), "other", OrderPlaced)
    for index in range(500):
        untrimmed.publish(OrderPlaced(index, 0.0))
    assert client.xlen(f"{prefix}{{OTHER}}") == 500


def test_a_failing_subscriber_gets_the_event_again_then_it_is_acknowledged(
    streams: StreamFactory,
) -> None:
    broker = streams(max_deliveries=5)
    attempts: list[int] = []

    def flaky(event: Any, tag: Any, caller: Any) -> None:
        attempts.append(event.order_id)
        if len(attempts) < 3:
            raise RuntimeError("not yet")

    subscriber = FunctionalEventSubscriber(flaky)
    broker.subscribe("ORDERS", subscriber)
    publisher_for(broker, "orders", OrderPlaced).publish(OrderPlaced(1, 0.0))

    wait_until(lambda: broker.stats().acknowledged == 1)
    stats = broker.stats()
    assert attempts == [1, 1, 1]
    # Retried after a backoff (an XCLAIM to itself each), not claimed.
    assert (stats.redelivered, stats.retried, stats.dead_lettered) == (2, 2, 0)
    assert stats.claimed == 0
    assert stats.subscriber_errors == 2
    assert stats.channels["ORDERS"].pending == 0


def test_an_always_failing_event_is_dead_lettered_then_republished(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams(max_deliveries=3)
    broken = threading.Event()
    broken.set()
    handled: list[int] = []

    def handler(event: Any, tag: Any, caller: Any) -> None:
        if broken.is_set():
            raise ValueError(f"cannot handle order {event.order_id}")
        handled.append(event.order_id)

    subscriber = FunctionalEventSubscriber(handler)
    broker.subscribe("ORDERS", subscriber)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    publisher.publish(OrderPlaced(42, 0.0))

    # The counters follow the reply, which may travel with a blocking read.
    wait_until(lambda: broker.stats().dead_lettered == 1)
    [letter] = broker.dead_letters("ORDERS")
    assert letter.deliveries == 3
    assert letter.error == "ValueError: cannot handle order 42"
    assert (letter.group, letter.consumer) == ("g", broker.consumer)
    [(original_id, fields)] = _entries(client, f"{prefix}{{ORDERS}}")
    assert letter.original_id == original_id.decode()
    assert letter.event == fields[b"event"]
    stats = broker.stats()
    assert (stats.dead_lettered, stats.redelivered) == (1, 2)
    wait_until(lambda: broker.stats().channels["ORDERS"].pending == 0)

    broken.clear()  # the fix is deployed
    assert broker.republish_dead_letters("ORDERS") == 1

    wait_until(lambda: handled == [42])
    assert broker.dead_letters("ORDERS") == []
    assert client.xlen(f"{prefix}{{ORDERS}}:dead") == 0


def test_dead_letters_page_with_after(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams(max_deliveries=1)

    def refuse(event: Any, tag: Any, caller: Any) -> None:
        raise RuntimeError("no")

    subscriber = FunctionalEventSubscriber(refuse)
    broker.subscribe("ORDERS", subscriber)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    for index in range(5):
        publisher.publish(OrderPlaced(index, 0.0))
    wait_until(lambda: len(broker.dead_letters("ORDERS")) == 5)

    first = broker.dead_letters("ORDERS", count=2)
    rest = broker.dead_letters("ORDERS", after=first[-1].id)
    assert len(first) == 2
    assert len(rest) == 3
    assert {letter.deliveries for letter in first + rest} == {1}
    broker.unsubscribe("ORDERS", subscriber)  # the event would fail again
    assert broker.republish_dead_letters("ORDERS", rest[:1]) == 1
    assert [d.id for d in broker.dead_letters("ORDERS")] == [
        d.id for d in first + rest[1:]
    ]
    assert client.xlen(f"{prefix}{{ORDERS}}") == 6


def test_an_entry_that_fails_the_receiver_checks_is_dead_lettered_at_once(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams()
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    client.xadd(f"{prefix}{{ORDERS}}", {"event": b"not json"})
    sender = streams()
    publisher_for(sender, "orders", OrderPlaced).publish(OrderPlaced(1, 0.0))

    inbox.wait_for(1)
    wait_until(lambda: len(broker.dead_letters("ORDERS")) == 1)
    [letter] = broker.dead_letters("ORDERS")
    assert letter.error.startswith("invalid_json: ")
    assert letter.event == b"not json"
    stats = broker.stats()
    assert stats.dropped["invalid_json"] == 1
    assert stats.redelivered == 0


def test_an_unregistered_class_is_recovered_by_registering_and_republishing(
    streams: StreamFactory, prefix: str, client: redis.Redis
) -> None:
    broker = RedisStreamBroker(client, channel_prefix=prefix, group="g")
    try:
        inbox = Inbox()
        broker.subscribe("ORDERS", inbox.subscriber)
        publisher_for(streams(), "orders", OrderPlaced).publish(OrderPlaced(3, 0.0))
        wait_until(lambda: broker.stats().dead_lettered == 1)
        assert broker.stats().dropped["unregistered_class"] == 1

        broker.register_event_class(OrderPlaced)
        broker.republish_dead_letters("ORDERS")

        assert inbox.wait_for(1) == [OrderPlaced(3, 0.0)]
    finally:
        broker.close()


def test_two_groups_each_receive_every_event(streams: StreamFactory) -> None:
    inboxes = []
    for group in ("billing", "audit"):
        inbox = Inbox()
        streams(group=group).subscribe("ORDERS", inbox.subscriber)
        inboxes.append(inbox)
    publisher = publisher_for(streams(group="sender"), "orders", OrderPlaced)
    for index in range(20):
        publisher.publish(OrderPlaced(index, 0.0))

    for inbox in inboxes:
        assert [e.order_id for e in inbox.wait_for(20)] == list(range(20))


def test_two_consumers_of_one_group_share_the_events(streams: StreamFactory) -> None:
    inboxes = [Inbox(), Inbox()]
    brokers = [streams(prefetch=5), streams(prefetch=5)]
    for broker, inbox in zip(brokers, inboxes, strict=True):
        broker.subscribe("ORDERS", inbox.subscriber)
    publisher = publisher_for(streams(group="sender"), "orders", OrderPlaced)
    for index in range(200):
        publisher.publish(OrderPlaced(index, 0.0))

    wait_until(lambda: sum(len(i.events) for i in inboxes) >= 200)
    wait_until(lambda: sum(b.stats().acknowledged for b in brokers) == 200)
    ids = [[e.order_id for e in inbox.events] for inbox in inboxes]
    assert sorted(ids[0] + ids[1]) == list(range(200))  # none twice
    for own in ids:
        assert own == sorted(own)  # in order within the stream


def test_subscribe_publication_delivers_and_unsubscribe_publication_stops(
    streams: StreamFactory,
) -> None:
    broker = streams()
    publication = EventPublication("orders", OrderPlaced)
    inbox = Inbox()
    broker.subscribe_publication(publication, inbox.subscriber)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    publisher.publish(OrderPlaced(1, 0.0))
    inbox.wait_for(1)

    broker.unsubscribe_publication(publication, inbox.subscriber)
    wait_until(lambda: not broker._reader.streams)
    publisher.publish(OrderPlaced(2, 0.0))
    assert inbox.events == [OrderPlaced(1, 0.0)]


def test_close_joins_the_reader_and_leaves_the_group_when_nothing_is_pending(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams()
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    publisher_for(broker, "orders", OrderPlaced).publish(OrderPlaced(1, 0.0))
    inbox.wait_for(1)
    wait_until(lambda: broker.stats().acknowledged == 1)
    assert any(t.name == READER_THREAD for t in threading.enumerate())

    broker.close()
    broker.close()  # idempotent

    assert broker._reader.join(0)
    consumers = client.xinfo_consumers(f"{prefix}{{ORDERS}}", "g")
    assert broker.consumer.encode() not in [c["name"] for c in consumers]
    with pytest.raises(RuntimeError):
        broker.publish("ORDERS", OrderPlaced(2, 0.0), "ORDERS", None)
    with pytest.raises(RuntimeError):
        broker.subscribe("ORDERS", inbox.subscriber)


def test_a_consumer_with_pending_entries_is_never_forgotten(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    key = f"{prefix}{{ORDERS}}"
    client.xgroup_create(key, "g", id="0", mkstream=True)
    client.xadd(key, {"event": b"x"})
    client.xreadgroup("g", "ghost-with-work", {key: ">"})  # pending, never acked
    client.xgroup_createconsumer(key, "g", "ghost-idle")  # nothing pending
    broker = streams(forget_consumers_after=0.0, claim_idle=60)
    kept = Inbox()  # subscribers are held weakly: keep it alive
    broker.subscribe("ORDERS", kept.subscriber)

    def names() -> set[bytes]:
        return {c["name"] for c in client.xinfo_consumers(key, "g")}

    wait_until(lambda: b"ghost-idle" not in names())
    assert b"ghost-with-work" in names()


def test_a_vanished_group_is_created_again_and_reading_goes_on(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams()
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    publisher = publisher_for(streams(group="sender"), "orders", OrderPlaced)
    publisher.publish(OrderPlaced(1, 0.0))
    inbox.wait_for(1)

    client.xgroup_destroy(f"{prefix}{{ORDERS}}", "g")
    publisher.publish(OrderPlaced(2, 0.0))

    wait_until(lambda: OrderPlaced(2, 0.0) in inbox.events)


def test_events_a_redis_broker_publishes_do_not_reach_the_stream(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    # Different transports on purpose: Pub/Sub and Streams do not mix.
    pubsub = RedisBroker(client, channel_prefix=prefix)
    try:
        publisher_for(pubsub, "orders", OrderPlaced).publish(OrderPlaced(1, 0.0))
    finally:
        pubsub.close()
    assert client.exists(f"{prefix}{{ORDERS}}") == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": "middle"}, "start"),
        ({"claim_idle": 0}, "claim_idle"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"prefetch": 0}, "prefetch"),
        ({"maxlen": 0}, "maxlen"),
        ({"reconnect_delay": (2.0, 1.0)}, "reconnect_delay"),
    ],
)
def test_options_out_of_range_raise(
    client: redis.Redis, options: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RedisStreamBroker(client, **options)


def test_repr_names_prefix_and_group(streams: StreamFactory, prefix: str) -> None:
    broker = streams(group="billing")
    assert repr(broker) == (
        f"<RedisStreamBroker prefix={prefix!r} group='billing' 0 stream(s)>"
    )
    broker.close()
    assert "closed" in repr(broker)


def test_close_lets_the_events_in_hand_finish_and_be_acknowledged(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    sender = publisher_for(streams(group="sender"), "orders", OrderPlaced)
    for index in range(3):
        sender.publish(OrderPlaced(index, 0.0))
    broker = streams(prefetch=10, start="all")  # reads the three in one batch
    entered, release = threading.Event(), threading.Event()
    handled: list[int] = []

    def slow(event: Any, tag: Any, caller: Any) -> None:
        entered.set()
        assert release.wait(10)
        handled.append(event.order_id)

    subscriber = FunctionalEventSubscriber(slow)
    broker.subscribe("ORDERS", subscriber)
    assert entered.wait(10)
    closing = threading.Thread(target=broker.close)
    closing.start()
    release.set()
    closing.join(20)

    assert not closing.is_alive()
    assert handled == [0, 1, 2]
    assert broker.stats().acknowledged == 3
    assert client.xpending(f"{prefix}{{ORDERS}}", "g")["pending"] == 0


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_a_collected_subscriber_leaves_its_events_to_the_group(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams(max_deliveries=2)
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    gone = weakref.ref(inbox.subscriber)
    del inbox
    collect(gone)  # collected before the event exists, not just asked to be
    publisher = publisher_for(streams(group="sender"), "orders", OrderPlaced)
    publisher.publish(OrderPlaced(1, 0.0))

    wait_until(lambda: not broker._reader.streams)
    later = streams(consumer="later")
    late_inbox = Inbox()
    later.subscribe("ORDERS", late_inbox.subscriber)  # claims it after claim_idle

    assert late_inbox.wait_for(1) == [OrderPlaced(1, 0.0)]
    assert broker.dead_letters("ORDERS") == []


def test_publication_rules_apply_and_a_refused_event_is_acknowledged(
    streams: StreamFactory,
) -> None:
    broker = streams()
    placed_only, everything = Inbox(), Inbox()
    # Through a publisher: only OrderPlaced events of tag ORDERS.
    publisher_for(broker, "orders", OrderPlaced).add_subscriber(placed_only.subscriber)
    broker.subscribe("ORDERS", everything.subscriber)  # directly: the channel's
    sender = streams(group="sender")
    publisher_for(sender, "orders", OrderCancelled).publish(OrderCancelled(1))
    publisher_for(sender, "orders", OrderPlaced).publish(OrderPlaced(2, 0.0))

    assert everything.wait_for(2) == [OrderCancelled(1), OrderPlaced(2, 0.0)]
    wait_until(lambda: broker.stats().acknowledged == 2)
    assert placed_only.events == [OrderPlaced(2, 0.0)]
    stats = broker.stats()
    assert stats.dropped["class_mismatch"] == 1
    assert stats.dead_lettered == 0


def test_an_event_no_local_publication_accepts_is_acknowledged_not_dead(
    streams: StreamFactory,
) -> None:
    broker = streams()
    placed_only = Inbox()
    publisher_for(broker, "orders", OrderPlaced).add_subscriber(placed_only.subscriber)
    sender = streams(group="sender")
    publisher_for(sender, "orders", OrderCancelled).publish(OrderCancelled(1))

    wait_until(lambda: broker.stats().acknowledged == 1)
    assert placed_only.events == []
    assert broker.dead_letters("ORDERS") == []
    assert broker.stats().dropped["class_mismatch"] == 1


def test_an_entry_whose_tag_is_not_its_streams_is_dropped_and_acknowledged(
    streams: StreamFactory, client: redis.Redis, prefix: str
) -> None:
    broker = streams()
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    forged = _envelope.encode(
        "REFUNDS", OrderPlaced, JsonEventSerializer().serialize(OrderPlaced(1, 0.0))
    )
    client.xadd(f"{prefix}{{ORDERS}}", {"event": forged})

    wait_until(lambda: broker.stats().acknowledged == 1)
    assert inbox.events == []
    assert broker.stats().dropped["tag_mismatch"] == 1
    assert broker.dead_letters("ORDERS") == []


def test_a_resp3_client_works_the_same(
    backend: str, client_factory: Callable[..., redis.Redis], prefix: str
) -> None:
    if backend == "fake":
        pytest.skip("RESP3 replies are the real server's")
    resp3 = client_factory(protocol=3)
    broker = RedisStreamBroker(resp3, channel_prefix=prefix, group="g", claim_idle=0.2)
    try:
        broker.register_event_class(OrderPlaced)
        inbox = Inbox()
        broker.subscribe("ORDERS", inbox.subscriber)
        publisher = publisher_for(broker, "orders", OrderPlaced)
        publisher.publish(OrderPlaced(1, 0.0))
        assert inbox.wait_for(1) == [OrderPlaced(1, 0.0)]
        wait_until(lambda: broker.stats().acknowledged == 1)
        assert broker.stats().channels["ORDERS"].pending == 0
    finally:
        broker.close()
        resp3.delete(f"{prefix}{{ORDERS}}")
