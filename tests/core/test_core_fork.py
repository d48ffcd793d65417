"""Core objects in the child of ``os.fork()`` (issue 8, item 5).

The documented way to resume in a child is to add the subscriber again: for a
broker that forgets the parent's subscriptions in the child (as RedisBroker
does), the re-add must subscribe it again. Locks that a parent thread held at
the fork must be free in the child.

Each scenario forks this test process; the child never returns into pytest: it
reports through a pipe and leaves with ``os._exit``.
"""

from __future__ import annotations

import threading
from typing import Any

from _core_support import FORKS, PLACED, Placed, Recorder, in_child

from eventspype import (
    EventPublisher,
    EventSubscription,
    LocalBroker,
    MultiPublisher,
    MultiSubscriber,
    QueueEventSubscriber,
    TrackingEventSubscriber,
)

pytestmark = FORKS


class ForgetfulBroker(LocalBroker):
    """Forgets every subscription in a forked child, as RedisBroker does."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribes = 0

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._channels.clear()

    def subscribe(self, channel: str, subscriber: Any) -> None:
        self.subscribes += 1
        super().subscribe(channel, subscriber)


def test_re_adding_a_subscriber_in_the_child_subscribes_it_again() -> None:
    broker = ForgetfulBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    subscriber = Recorder()
    other = Recorder()
    publisher.add_subscriber(subscriber)
    publisher.add_subscriber(other)

    def child() -> tuple[list[Any], list[Any], int]:
        publisher.publish(Placed(1))  # the broker forgot everyone
        publisher.add_subscriber(subscriber)  # the documented way to resume
        publisher.add_subscriber(subscriber)  # a second re-add: no effect
        publisher.publish(Placed(2))
        return subscriber.events, other.events, broker.subscribes

    # Two subscribes in the parent, exactly one more in the child.
    assert in_child(child) == "([Placed(order_id=2)], [], 3)"
    publisher.add_subscriber(subscriber)  # the parent: still a no-op
    assert broker.subscribes == 2
    publisher.publish(Placed(3))
    assert subscriber.events == [Placed(3)]


def test_re_attaching_a_multisubscriber_subscription_in_the_child() -> None:
    class Shop(MultiPublisher):
        PLACED = PLACED

    class Audit(MultiSubscriber):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Any] = []

        def on_placed(self, event: Any) -> None:
            self.seen.append(event)

        placed = EventSubscription(
            Shop, "order_placed", on_placed, callback_with_event_info=False
        )

    shop = Shop(broker=ForgetfulBroker())
    audit = Audit()
    audit.add_subscription(Audit.placed, shop)

    def child() -> list[Any]:
        audit.add_subscription(Audit.placed, shop)
        shop.publish(Shop.PLACED, Placed(7))
        return audit.seen

    assert in_child(child) == "[Placed(order_id=7)]"


def test_re_adding_a_callback_in_the_child_subscribes_it_again() -> None:
    class Shop(MultiPublisher):
        PLACED = PLACED

    broker = ForgetfulBroker()
    shop = Shop(broker=broker)
    got: list[Any] = []
    shop.add_subscriber_with_callback(Shop.PLACED, got.append, False)

    def child() -> tuple[list[Any], int]:
        # Before: the callback was known, so this returned without subscribing.
        shop.add_subscriber_with_callback(Shop.PLACED, got.append, False)
        shop.add_subscriber_with_callback(Shop.PLACED, got.append, False)
        shop.publish(Shop.PLACED, Placed(8))
        return got, broker.subscribes

    assert in_child(child) == "([Placed(order_id=8)], 2)"
    shop.add_subscriber_with_callback(Shop.PLACED, got.append, False)
    assert broker.subscribes == 1  # the parent: still a no-op
    shop.publish(Shop.PLACED, Placed(9))
    assert got == [Placed(9)]


def test_locks_held_by_parent_threads_at_the_fork_are_free_in_the_child() -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker=broker)

    class Shop(MultiPublisher):
        PLACED = PLACED

    shop = Shop()
    queue_subscriber = QueueEventSubscriber()
    tracker = TrackingEventSubscriber()
    subscriber = Recorder()
    locks = [
        publisher._lock,
        publisher._subscribers._lock,
        broker._lock,
        shop._lock,
        queue_subscriber._lock,
        tracker._lock,
    ]
    holding, release = threading.Event(), threading.Event()

    def hold_them_all() -> None:
        for lock in locks:
            lock.acquire()
        holding.set()
        release.wait(30)
        for lock in reversed(locks):
            lock.release()

    holder = threading.Thread(target=hold_them_all)
    holder.start()
    assert holding.wait(10)

    def child() -> list[Any]:
        publisher.add_subscriber(subscriber)
        publisher.publish(Placed(1))
        broker.channels()
        shop.add_subscriber(Shop.PLACED, subscriber)
        shop.publish(Shop.PLACED, Placed(2))
        queue_subscriber.subscribe_consumer()
        tracker.call(Placed(3), "x", None)
        return subscriber.events

    try:
        report = in_child(child)
    finally:
        release.set()
        holder.join(10)
    assert report == "[Placed(order_id=1), Placed(order_id=2)]"
