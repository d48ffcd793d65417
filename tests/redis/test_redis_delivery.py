"""Delivery through Redis: channels, tags, callers, exactly-once, weak references."""

from __future__ import annotations

import json
import time
import weakref
from typing import Any

import pytest
import redis
from _redis_support import (
    Color,
    Inbox,
    OrderCancelled,
    OrderPlaced,
    Point,
    collect,
    next_message,
    numsub,
    publisher_for,
    wait_until,
)

from eventspype import (
    EventPublication,
    EventPublisher,
    EventSerializer,
    FunctionalEventSubscriber,
    MsgpackEventSerializer,
)
from eventspype.broker.redis import RedisBroker


def test_seed_example_publishes_and_delivers(broker: RedisBroker) -> None:
    publication = EventPublication("order_placed", OrderPlaced)
    publisher = EventPublisher(publication, broker=broker)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)

    publisher.publish(OrderPlaced(order_id=1, amount=49.99))

    inbox.wait_for(1)
    [(event, tag, caller)] = inbox.items
    assert event == OrderPlaced(order_id=1, amount=49.99)
    assert tag == "ORDER_PLACED"
    assert caller is broker


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("order_placed", "ORDER_PLACED"), (42, 42), (Color.RED, "Color.RED")],
)
def test_subscribers_see_the_normalized_tag(
    broker: RedisBroker, tag: Any, expected: Any
) -> None:
    publisher = publisher_for(broker, tag, OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    publisher.publish(OrderPlaced(1, 2.0))
    inbox.wait_for(1)
    assert inbox.items[0][1] == expected
    assert type(inbox.items[0][1]) is type(expected)


def test_message_is_the_1_4_2_envelope_on_the_prefixed_channel(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    spy = client.pubsub(ignore_subscribe_messages=True)
    spy.subscribe(f"{prefix}ORDER_PLACED")
    try:
        publisher_for(broker, "order_placed", OrderPlaced).publish(OrderPlaced(7, 1.5))
        message = next_message(spy)
        assert message["channel"] == f"{prefix}ORDER_PLACED".encode()
        envelope = json.loads(message["data"])
        assert envelope == {
            "event_tag": "ORDER_PLACED",
            "event_class": "OrderPlaced",
            "event_module": OrderPlaced.__module__,
            "payload": envelope["payload"],
        }
        assert list(envelope) == ["event_tag", "event_class", "event_module", "payload"]
        assert json.loads(envelope["payload"]) == {"order_id": 7, "amount": 1.5}
    finally:
        spy.close()


def test_default_prefix_is_eventspype(client: redis.Redis) -> None:
    with RedisBroker(client) as default:
        assert default.channel_prefix == "eventspype:"


def test_every_broker_gets_each_event_exactly_once(
    broker_factory: Any, client_factory: Any
) -> None:
    # Two brokers on separate clients stand for two processes.
    brokers = [broker_factory(client=client_factory()) for _ in range(2)]
    inboxes = []
    publishers = []
    for each in brokers:
        each.register_event_class(OrderPlaced)
        publisher = publisher_for(each, "orders", OrderPlaced)
        inbox = Inbox()
        publisher.add_subscriber(inbox.subscriber)
        publishers.append(publisher)
        inboxes.append(inbox)

    for i in range(20):
        publishers[i % 2].publish(OrderPlaced(i, float(i)))

    for inbox in inboxes:
        assert inbox.wait_for(20) == [OrderPlaced(i, float(i)) for i in range(20)]
    # A marker published last proves nothing else was still in flight.
    publishers[0].publish(OrderPlaced(-1, 0.0))
    for inbox in inboxes:
        inbox.wait_for(21)
        assert len(inbox.events) == 21


def test_channels_are_separate(broker: RedisBroker) -> None:
    placed = publisher_for(broker, "placed", OrderPlaced)
    cancelled = publisher_for(broker, "cancelled", OrderCancelled)
    placed_inbox, cancelled_inbox = Inbox(), Inbox()
    placed.add_subscriber(placed_inbox.subscriber)
    cancelled.add_subscriber(cancelled_inbox.subscriber)

    cancelled.publish(OrderCancelled(1, "no stock"))
    placed.publish(OrderPlaced(2, 3.0))

    assert placed_inbox.wait_for(1) == [OrderPlaced(2, 3.0)]
    assert cancelled_inbox.wait_for(1) == [OrderCancelled(1, "no stock")]


def test_namedtuple_events(broker: RedisBroker) -> None:
    publisher = publisher_for(broker, "points", Point)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    publisher.publish(Point(3, 4))
    assert inbox.wait_for(1) == [Point(3, 4)]


def test_msgpack_serializer_round_trips_as_base64(
    broker_factory: Any, client: redis.Redis, prefix: str
) -> None:
    broker = broker_factory(MsgpackEventSerializer())
    broker.register_event_class(OrderPlaced)
    publisher = publisher_for(broker, "binary", OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    spy = client.pubsub(ignore_subscribe_messages=True)
    spy.subscribe(f"{prefix}BINARY")
    try:
        publisher.publish(OrderPlaced(9, 0.25))
        assert inbox.wait_for(1) == [OrderPlaced(9, 0.25)]
        message = next_message(spy)
        envelope = json.loads(message["data"])
        assert envelope["payload_encoding"] == "base64"
    finally:
        spy.close()


def test_custom_serializer_subclass(broker_factory: Any) -> None:
    class PipeSerializer(EventSerializer):
        def serialize(self, event: Any) -> bytes:
            return f"{event.order_id}|{event.amount}".encode()

        def deserialize(self, data: bytes, event_class: type) -> Any:
            order_id, amount = data.decode().split("|")
            return event_class(int(order_id), float(amount))

    broker = broker_factory(serializer=PipeSerializer())
    broker.register_event_class(OrderPlaced)
    assert isinstance(broker.serializer, PipeSerializer)
    publisher = publisher_for(broker, "pipe", OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    publisher.publish(OrderPlaced(5, 6.5))
    assert inbox.wait_for(1) == [OrderPlaced(5, 6.5)]


def test_unsubscribe_stops_delivery_and_the_redis_subscription(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    publisher = publisher_for(broker, "orders", OrderPlaced)
    inbox, other = Inbox(), Inbox()
    publisher.add_subscriber(inbox.subscriber)
    publisher.add_subscriber(other.subscriber)
    channel = f"{prefix}ORDERS"
    assert numsub(client, channel) == 1

    publisher.remove_subscriber(inbox.subscriber)
    publisher.publish(OrderPlaced(1, 1.0))
    other.wait_for(1)
    assert inbox.events == []
    assert numsub(client, channel) == 1

    publisher.remove_subscriber(other.subscriber)
    wait_until(lambda: numsub(client, channel) == 0)


def test_subscribers_are_held_weakly(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    publisher = publisher_for(broker, "weak", OrderPlaced)
    received: list[Any] = []
    subscriber = FunctionalEventSubscriber(received.append, with_event_info=False)
    broker.subscribe("WEAK", subscriber)
    publisher.publish(OrderPlaced(1, 1.0))
    wait_until(lambda: received)

    gone = weakref.ref(subscriber)
    del subscriber
    collect(gone)
    publisher.publish(OrderPlaced(2, 2.0))
    # The next message finds no live subscriber and ends the subscription.
    channel = f"{prefix}WEAK"
    wait_until(lambda: numsub(client, channel) == 0)
    assert received == [OrderPlaced(1, 1.0)]


@pytest.mark.filterwarnings(
    "ignore::eventspype.SubscriberLostWarning"
)  # dropped on purpose
def test_a_quiet_channel_is_unsubscribed_once_its_subscribers_are_collected(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    # No message arrives on the channel to notice it: the subscription must
    # end anyway (and the broker stop counting the channel).
    subscriber = FunctionalEventSubscriber(print, with_event_info=False)
    broker.subscribe("QUIET", subscriber)
    keeper = FunctionalEventSubscriber(print)
    broker.subscribe("KEPT", keeper)
    assert numsub(client, f"{prefix}QUIET") == 1
    gone = weakref.ref(subscriber)
    del subscriber
    collect(gone)
    wait_until(lambda: numsub(client, f"{prefix}QUIET") == 0)
    assert "1 channel(s)" in repr(broker)
    assert numsub(client, f"{prefix}KEPT") == 1
    del keeper


def test_a_raising_subscriber_is_isolated_and_counted(broker: RedisBroker) -> None:
    publisher = publisher_for(broker, "orders", OrderPlaced)

    def explode(event: Any) -> None:
        raise RuntimeError("subscriber bug")

    bad = FunctionalEventSubscriber(explode, with_event_info=False)
    good = Inbox()
    publisher.add_subscriber(bad)
    publisher.add_subscriber(good.subscriber)
    publisher.publish(OrderPlaced(1, 1.0))
    publisher.publish(OrderPlaced(2, 2.0))
    assert good.wait_for(2) == [OrderPlaced(1, 1.0), OrderPlaced(2, 2.0)]
    wait_until(lambda: broker.stats().subscriber_errors == 2)


def test_subscribing_from_a_subscriber_does_not_deadlock(broker: RedisBroker) -> None:
    first = publisher_for(broker, "first", OrderPlaced)
    second = publisher_for(broker, "second", OrderPlaced)
    late = Inbox()

    def add_late(event: Any) -> None:
        second.add_subscriber(late.subscriber)  # runs on the listener thread

    trigger = FunctionalEventSubscriber(add_late, with_event_info=False)
    first.add_subscriber(trigger)
    first.publish(OrderPlaced(1, 1.0))
    wait_until(lambda: second.get_subscribers())
    # The listener confirms the new channel itself; then it receives.
    deadline = time.monotonic() + 10
    while not late.events and time.monotonic() < deadline:
        second.publish(OrderPlaced(2, 2.0))
        time.sleep(0.05)
    assert late.events


def test_allow_unregistered_classes_imports_known_classes(
    unsafe_broker: RedisBroker,
) -> None:
    broker = unsafe_broker
    publisher = publisher_for(broker, "free", OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    publisher.publish(OrderPlaced(1, 1.0))
    assert inbox.wait_for(1) == [OrderPlaced(1, 1.0)]


def test_publish_returns_after_redis_accepted(broker: RedisBroker) -> None:
    publisher = publisher_for(broker, "orders", OrderPlaced)
    publisher.publish(OrderPlaced(1, 1.0))
    assert broker.stats().published == 1
    assert broker.stats().delivered == 0  # nobody subscribed here


def test_register_event_class_rejects_non_classes(broker: RedisBroker) -> None:
    with pytest.raises(TypeError, match="needs a class"):
        broker.register_event_class(OrderPlaced(1, 1.0))  # type: ignore[arg-type]


def test_a_subscriber_sees_its_event_counted_in_stats(broker: RedisBroker) -> None:
    # A subscriber that passes the event to another thread (a queue, a loop)
    # lets that thread read stats() at once: the event must be counted by then.
    publisher = publisher_for(broker, "counted", OrderPlaced)
    seen: list[int] = []
    subscriber = FunctionalEventSubscriber(
        lambda _: seen.append(broker.stats().delivered), with_event_info=False
    )
    publisher.add_subscriber(subscriber)
    for order_id in range(4):
        publisher.publish(OrderPlaced(order_id, 1.0))
    wait_until(lambda: len(seen) == 4)
    assert seen == [1, 2, 3, 4]
