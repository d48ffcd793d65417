"""Resuming in the child of ``fork()``: add the subscriber again (issue 8, item 5).

The documented way (docs/redis-in-production.md, "Running several processes"):
a RedisBroker created before a fork works in the child without the parent's
subscriptions, and the child subscribes what it needs itself. That includes
re-adding to the same publisher a subscriber that the parent had added, which
used to do nothing: the publisher believed it was still subscribed.

Each scenario forks this test process on the shared server, with a unique
channel prefix; the child reports through a pipe and leaves with ``os._exit``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from _core_support import FORKS, in_child
from _redis_support import UserDeleted, forged
from redis_helpers import shared_redis_url, unique_prefix, wait_until

from eventspype import (
    EventPublication,
    EventPublisher,
    EventSubscription,
    FunctionalEventSubscriber,
    MultiPublisher,
    MultiSubscriber,
)
from eventspype.broker.redis import RedisBroker

pytestmark = [pytest.mark.slow, *FORKS]


@dataclass
class Resumed:
    n: int


RESUMED = EventPublication("resumed", Resumed)


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    made = RedisBroker.from_url(shared_redis_url(), channel_prefix=unique_prefix())
    made.register_event_class(Resumed)
    yield made
    made.close()


def test_re_adding_the_parents_subscriber_resumes_delivery_in_the_child(
    broker: RedisBroker,
) -> None:
    got: list[Any] = []
    publisher = EventPublisher(RESUMED, broker=broker)
    subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
    publisher.add_subscriber(subscriber)
    publisher.publish(Resumed(1))
    wait_until(lambda: got == [Resumed(1)])

    def child() -> list[Any]:
        got.clear()  # the child's copy of the list
        publisher.add_subscriber(subscriber)  # resume, as documented
        publisher.add_subscriber(subscriber)  # twice: still one subscription
        publisher.publish(Resumed(2))
        wait_until(lambda: Resumed(2) in got, timeout=5)
        publisher.publish(Resumed(3))
        wait_until(lambda: Resumed(3) in got, timeout=5)
        broker.close()
        return got

    # Exactly once each: one subscription, not the parent's copy plus a new one.
    assert in_child(child) == "[Resumed(n=2), Resumed(n=3)]"
    # The parent's subscription was never touched; it heard the child too.
    wait_until(lambda: got == [Resumed(1), Resumed(2), Resumed(3)])
    publisher.publish(Resumed(4))
    wait_until(lambda: got[-1] == Resumed(4))
    assert got == [Resumed(1), Resumed(2), Resumed(3), Resumed(4)]


def test_re_attaching_a_multisubscriber_resumes_in_the_child(
    broker: RedisBroker,
) -> None:
    class Service(MultiPublisher):
        RESUMED = RESUMED

    class Listener(MultiSubscriber):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Any] = []

        def on_resumed(self, event: Any) -> None:
            self.seen.append(event)

        resumed = EventSubscription(
            Service, "resumed", on_resumed, callback_with_event_info=False
        )

    service = Service(broker=broker)
    listener = Listener()
    listener.add_subscription(Listener.resumed, service)

    def child() -> list[Any]:
        listener.add_subscription(Listener.resumed, service)
        service.publish(Service.RESUMED, Resumed(7))
        wait_until(lambda: listener.seen == [Resumed(7)], timeout=5)
        broker.close()
        return listener.seen

    assert in_child(child) == "[Resumed(n=7)]"


def test_re_added_subscribers_keep_their_publication_s_filter_in_the_child(
    broker: RedisBroker,
) -> None:
    # Issue 8, items 2 and 5 together: the child's broker starts with no
    # subscription; re-adding through the publishers must bring back the
    # publication (tag and class), not a bare channel subscription.
    class Service(MultiPublisher):
        RESUMED = RESUMED

    broker.register_event_class(UserDeleted)  # only the publication may stop it
    publisher = EventPublisher(RESUMED, broker=broker)
    service = Service(broker=broker)
    got: list[Any] = []
    service_got: list[Any] = []
    subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
    service_subscriber = FunctionalEventSubscriber(
        service_got.append, with_event_info=False
    )
    publisher.add_subscriber(subscriber)
    service.add_subscriber(Service.RESUMED, service_subscriber)
    channel = f"{broker.channel_prefix}RESUMED"

    def child() -> tuple[list[Any], list[Any], dict[str, int]]:
        got.clear()
        service_got.clear()
        publisher.add_subscriber(subscriber)
        service.add_subscriber(Service.RESUMED, service_subscriber)
        hostile = redis.Redis.from_url(shared_redis_url(), socket_timeout=5)
        hostile.publish(channel, forged("RESUMED", UserDeleted, {"user": "root"}))
        hostile.publish(channel, forged("OTHER", Resumed, {"n": 0}))
        hostile.close()
        publisher.publish(Resumed(2))
        wait_until(lambda: got and service_got, timeout=5)
        dropped = {k: n for k, n in broker.stats().dropped.items() if n}
        broker.close()
        return got, service_got, dropped

    assert in_child(child) == (
        "([Resumed(n=2)], [Resumed(n=2)], {'tag_mismatch': 1, 'class_mismatch': 2})"
    )
    # The parent's subscribers were on the channel all along: filtered too.
    wait_until(lambda: got == [Resumed(2)] and service_got == [Resumed(2)])
    assert {k: n for k, n in broker.stats().dropped.items() if n} == {
        "tag_mismatch": 1,
        "class_mismatch": 2,
    }


def test_re_adding_a_callback_resumes_in_the_child(broker: RedisBroker) -> None:
    class Service(MultiPublisher):
        RESUMED = RESUMED

    service = Service(broker=broker)
    got: list[Any] = []
    service.add_subscriber_with_callback(Service.RESUMED, got.append, False)

    def child() -> list[Any]:
        got.clear()
        # Before: the callback was known already, so this returned at once
        # and the child never subscribed.
        service.add_subscriber_with_callback(Service.RESUMED, got.append, False)
        service.add_subscriber_with_callback(Service.RESUMED, got.append, False)
        service.publish(Service.RESUMED, Resumed(8))
        wait_until(lambda: got, timeout=5)
        service.publish(Service.RESUMED, Resumed(9))
        wait_until(lambda: Resumed(9) in got, timeout=5)
        broker.close()
        return got

    assert in_child(child) == "[Resumed(n=8), Resumed(n=9)]"
