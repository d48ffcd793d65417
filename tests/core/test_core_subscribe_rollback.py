"""A broker that refuses a subscriber leaves the publisher as it was (issue 8).

RedisBroker raises ``SubscriptionRefused`` when Redis refuses a channel (an
ACL), and ``RuntimeError`` once closed. Before: ``EventPublisher`` added the
subscriber to its own list first and kept it there when the broker raised, so
a retry was a no-op ("already added") and the subscriber never got anything;
a refused broker swap left the publisher half on each broker.

Here a fake broker refuses chosen subscribers; the same paths against a real
refusal (a private ACL redis-server) are in tests/integration/test_redis_acl.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _core_support import (
    PLACED,
    SHIPPED,
    Placed,
    Recorder,
    RecordingBroker,
    Shipped,
    Tags,
)

from eventspype import (
    EventPublication,
    EventPublisher,
    EventSubscriber,
    EventSubscription,
    LocalBroker,
    MultiPublisher,
    MultiSubscriber,
)


class Refused(Exception):
    """What the fake broker raises (RedisBroker's is SubscriptionRefused)."""


class RefusingBroker(RecordingBroker):
    """Refuses (raises) the subscribers in ``refuse``, through the publication
    methods as RedisBroker does; records the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: set[int] = set()

    def subscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        if id(subscriber) in self.refuse:
            raise Refused(f"refused {publication.event_tag!r}")
        super().subscribe_publication(publication, subscriber)

    def subscribed(self, channel: str = "ORDER_PLACED") -> list[EventSubscriber]:
        return list(self.subscribers.get(channel, ()))


def test_a_refused_subscriber_is_not_kept_and_a_retry_subscribes() -> None:
    broker = RefusingBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    subscriber = Recorder()
    broker.refuse.add(id(subscriber))

    with pytest.raises(Refused):
        publisher.add_subscriber(subscriber)
    assert publisher.get_subscribers() == []

    # Before, the retry found it "already added" and never reached the broker.
    broker.refuse.clear()
    publisher.add_subscriber(subscriber)
    assert publisher.get_subscribers() == [subscriber]
    assert broker.subscribed() == [subscriber]
    publisher.publish(Placed(1))
    assert subscriber.events == [Placed(1)]


def test_a_refusal_leaves_the_other_subscribers_alone() -> None:
    broker = RefusingBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    kept, refused = Recorder(), Recorder()
    publisher.add_subscriber(kept)
    broker.refuse.add(id(refused))
    with pytest.raises(Refused):
        publisher.add_subscriber(refused)
    assert publisher.get_subscribers() == [kept]
    # Removing the refused one concerns nothing: the broker never had it.
    publisher.remove_subscriber(refused)
    assert broker.of_kind("unsubscribe") == []
    assert broker.subscribed() == [kept]


def test_a_refused_swap_leaves_everything_on_the_old_broker() -> None:
    old, new = RefusingBroker(), RefusingBroker()
    publisher = EventPublisher(PLACED, broker=old)
    first, second, third = Recorder(), Recorder(), Recorder()
    for subscriber in (first, second, third):
        publisher.add_subscriber(subscriber)
    new.refuse.add(id(second))

    with pytest.raises(Refused):
        publisher.broker = new
    assert publisher.broker is old
    assert publisher.get_subscribers() == [first, second, third]
    # The one the new broker had accepted is unsubscribed from it again...
    assert new.subscribed() == []
    assert new.of_kind("unsubscribe") == [("unsubscribe", "ORDER_PLACED", first)]
    # ...and the old broker never lost anyone: events still arrive through it.
    assert old.of_kind("unsubscribe") == []
    publisher.publish(Placed(2))
    assert [s.events for s in (first, second, third)] == [[Placed(2)]] * 3
    assert new.of_kind("publish") == []


def test_a_refused_swap_from_direct_dispatch_stays_direct() -> None:
    publisher = EventPublisher(PLACED)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    new = RefusingBroker()
    new.refuse.add(id(subscriber))
    with pytest.raises(Refused):
        publisher.broker = new
    assert publisher.broker is None
    publisher.publish(Placed(3))
    assert subscriber.events == [Placed(3)]
    assert new.of_kind("publish") == []


def test_a_failing_undo_is_logged_and_the_refusal_still_propagates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Stuck(RefusingBroker):
        def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
            raise OSError("cannot unsubscribe")

    publisher = EventPublisher(PLACED, broker=LocalBroker())
    first, second = Recorder(), Recorder()
    publisher.add_subscriber(first)
    publisher.add_subscriber(second)
    new = Stuck()
    new.refuse.add(id(second))
    with pytest.raises(Refused):
        publisher.broker = new
    assert "Undoing a refused broker swap" in caplog.text
    assert publisher.broker is not new
    publisher.publish(Placed(7))  # still on the LocalBroker
    assert first.events == second.events == [Placed(7)]


class Shop(MultiPublisher):
    PLACED = PLACED
    SHIPPED = SHIPPED


def test_multipublisher_does_not_keep_a_refused_subscriber() -> None:
    broker = RefusingBroker()
    shop = Shop(broker=broker)
    subscriber = Recorder()
    broker.refuse.add(id(subscriber))
    with pytest.raises(Refused):
        shop.add_subscriber(Shop.PLACED, subscriber)
    assert shop.get_subscribers(Shop.PLACED) == []
    broker.refuse.clear()
    shop.add_subscriber(Shop.PLACED, subscriber)
    shop.publish(Shop.PLACED, Placed(4))
    assert subscriber.events == [Placed(4)]


def test_multipublisher_callback_refused_then_retried() -> None:
    broker = RefusingBroker()
    shop = Shop(broker=broker)
    got: list[Any] = []

    def on_placed(event: Any) -> None:
        got.append(event)

    # Every subscriber is refused: the wrapper the callback gets is new.
    original = broker.subscribe_publication

    def refuse_all(publication: EventPublication, subscriber: EventSubscriber) -> None:
        raise Refused("no")

    broker.subscribe_publication = refuse_all  # type: ignore[method-assign]
    with pytest.raises(Refused):
        shop.add_subscriber_with_callback(Shop.PLACED, on_placed, False)
    broker.subscribe_publication = original  # type: ignore[method-assign]
    # Before, the failed wrapper stayed registered and this was a no-op.
    shop.add_subscriber_with_callback(Shop.PLACED, on_placed, False)
    shop.publish(Shop.PLACED, Placed(5))
    assert got == [Placed(5)]


def test_multipublisher_swap_is_all_or_nothing() -> None:
    old, new = RefusingBroker(), RefusingBroker()
    shop = Shop(broker=old)
    placed, shipped = Recorder(), Recorder()
    shop.add_subscriber(Shop.PLACED, placed)
    shop.add_subscriber(Shop.SHIPPED, shipped)
    new.refuse.add(id(shipped))

    with pytest.raises(Refused):
        shop.broker = new
    assert shop.broker is old
    # The publication that had moved came back to the old broker.
    assert new.subscribed("ORDER_PLACED") == []
    assert new.subscribed("1") == []
    shop.publish(Shop.PLACED, Placed(6))
    shop.publish(Shop.SHIPPED, Shipped(6))
    assert placed.events == [Placed(6)]
    assert shipped.events == [Shipped(6)]
    assert new.of_kind("publish") == []
    # A publication first used after the failed swap goes through the old one.
    assert shop.get_subscribers(Shop.PLACED) == [placed]


def test_a_refused_resubscribe_after_fork_is_not_kept() -> None:
    # In the child, re-adding subscribes again (the broker forgot the parent's
    # subscriptions); if the broker refuses, the subscriber is not kept, and
    # the next add subscribes it. Simulated with the fork hook itself.
    broker = RefusingBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    publisher._after_fork_in_child()
    broker.subscribers.clear()

    broker.refuse.add(id(subscriber))
    with pytest.raises(Refused):
        publisher.add_subscriber(subscriber)
    assert publisher.get_subscribers() == []
    broker.refuse.clear()
    publisher.add_subscriber(subscriber)
    assert broker.subscribed() == [subscriber]


def test_nothing_is_logged_when_nothing_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="eventspype")
    publisher = EventPublisher(PLACED, broker=RefusingBroker())
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    publisher.broker = RefusingBroker()
    assert caplog.text == ""


# --- an EventSubscription over several tags: all or nothing --------------------


class ChannelRefusingBroker(RefusingBroker):
    """Refuses every subscription to the channels in ``channels``."""

    def __init__(self, *channels: str) -> None:
        super().__init__()
        self.channels = set(channels)

    def subscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        if str(publication.event_tag) in self.channels:
            raise Refused(f"refused {publication.event_tag!r}")
        super().subscribe_publication(publication, subscriber)


class Audit(MultiSubscriber):
    def on_any(self, event: Any, tag: Any, caller: Any) -> None:
        pass

    both = EventSubscription(Shop, ["order_placed", Tags.SHIPPED], on_any)


def test_a_refused_tag_detaches_the_tags_attached_before_it() -> None:
    broker = ChannelRefusingBroker(str(SHIPPED.event_tag))
    shop = Shop(broker=broker)
    audit = Audit()

    with pytest.raises(Refused):
        audit.add_subscription(Audit.both, shop)

    # order_placed was attached first; it is detached again, everywhere.
    assert shop.get_subscribers(PLACED) == []
    assert broker.subscribed("ORDER_PLACED") == []
    assert broker.of_kind("unsubscribe") != []
    # MultiSubscriber recorded nothing, so a retry subscribes every tag.
    broker.channels.clear()
    audit.add_subscription(Audit.both, shop)
    assert len(shop.get_subscribers(PLACED)) == 1
    assert len(shop.get_subscribers(SHIPPED)) == 1
    assert len(broker.subscribed("ORDER_PLACED")) == 1


def test_event_subscription_subscribe_is_all_or_nothing_on_its_own() -> None:
    broker = ChannelRefusingBroker(str(SHIPPED.event_tag))
    shop = Shop(broker=broker)
    audit = Audit()

    with pytest.raises(Refused):
        Audit.both.subscribe(shop, audit)

    assert shop.get_subscribers(PLACED) == []
    assert broker.subscribed("ORDER_PLACED") == []
