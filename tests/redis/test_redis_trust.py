"""A message is not trusted over its channel, nor over the subscriber's publication.

Issue 8, item 2: a subscriber of ``EventPublication("order_placed", OrderPlaced)``
received ``UserDeleted(user="root")`` with the tag ``SOMETHING_ELSE``, because the
envelope's class and tag were believed as sent.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import redis
from _redis_support import (
    ORDER_PLACED,
    BigOrderPlaced,
    Inbox,
    OrderPlaced,
    UserDeleted,
    forged,
    wait_until,
)

from eventspype import EventPublication, EventPublisher
from eventspype.broker.broker import MessageBroker
from eventspype.broker.redis import RedisBroker


@pytest.fixture
def broker_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """``caplog``, capturing the Redis brokers' warnings (the drop reports)."""
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    return caplog


@pytest.fixture
def trusting(broker: RedisBroker) -> RedisBroker:
    broker.register_event_classes(UserDeleted, BigOrderPlaced)
    return broker


def test_a_tag_that_is_not_the_channel_s_is_dropped(
    trusting: RedisBroker,
    client: redis.Redis,
    prefix: str,
    broker_log: pytest.LogCaptureFixture,
) -> None:
    direct, through_publication = Inbox(), Inbox()
    trusting.subscribe("ORDER_PLACED", direct.subscriber)
    trusting.subscribe_publication(ORDER_PLACED, through_publication.subscriber)

    client.publish(
        f"{prefix}ORDER_PLACED",
        forged("SOMETHING_ELSE", UserDeleted, {"user": "root"}),
    )
    client.publish(
        f"{prefix}ORDER_PLACED",
        forged("ORDER_PLACED", OrderPlaced, {"order_id": 1, "amount": 2.0}),
    )

    assert through_publication.wait_for(1) == [OrderPlaced(1, 2.0)]
    assert direct.wait_for(1) == [OrderPlaced(1, 2.0)]
    assert trusting.stats().dropped["tag_mismatch"] == 1
    assert "(tag_mismatch)" in broker_log.text


def test_a_class_that_is_not_the_publication_s_is_not_delivered_to_it(
    trusting: RedisBroker,
    client: redis.Redis,
    prefix: str,
    broker_log: pytest.LogCaptureFixture,
) -> None:
    direct, through_publication = Inbox(), Inbox()
    trusting.subscribe_publication(ORDER_PLACED, through_publication.subscriber)
    trusting.subscribe("ORDER_PLACED", direct.subscriber)

    client.publish(
        f"{prefix}ORDER_PLACED", forged("ORDER_PLACED", UserDeleted, {"user": "root"})
    )
    # The direct subscriber asked for the channel: it gets what came on it.
    assert direct.wait_for(1) == [UserDeleted("root")]
    wait_until(lambda: trusting.stats().dropped["class_mismatch"] == 1)
    assert through_publication.events == []
    assert "(class_mismatch)" in broker_log.text
    assert "UserDeleted" in broker_log.text


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_subclasses_of_the_publication_s_class_are_delivered(
    trusting: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    inbox = Inbox()
    trusting.subscribe_publication(ORDER_PLACED, inbox.subscriber)
    client.publish(
        f"{prefix}ORDER_PLACED",
        forged("ORDER_PLACED", BigOrderPlaced, {"order_id": 3, "amount": 1.0}),
    )
    assert inbox.wait_for(1) == [BigOrderPlaced(3, 1.0)]
    assert trusting.stats().dropped_total == 0


def test_an_int_tag_is_not_its_string(
    trusting: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    # Channel "5" carries the tags 5 and "5": only the publication's passes.
    inbox = Inbox()
    trusting.subscribe_publication(EventPublication(5, OrderPlaced), inbox.subscriber)
    client.publish(f"{prefix}5", forged("5", OrderPlaced, {"order_id": 1, "amount": 0}))
    client.publish(f"{prefix}5", forged(5, OrderPlaced, {"order_id": 2, "amount": 0}))
    assert inbox.wait_for(1) == [OrderPlaced(2, 0.0)]
    wait_until(lambda: trusting.stats().dropped["tag_mismatch"] == 1)
    assert inbox.events == [OrderPlaced(2, 0.0)]


def test_unsubscribe_publication_removes_only_that_publication(
    trusting: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    inbox = Inbox()
    big = EventPublication("order_placed", BigOrderPlaced)
    trusting.subscribe_publication(ORDER_PLACED, inbox.subscriber)
    trusting.subscribe_publication(big, inbox.subscriber)
    trusting.unsubscribe_publication(ORDER_PLACED, inbox.subscriber)

    client.publish(
        f"{prefix}ORDER_PLACED",
        forged("ORDER_PLACED", OrderPlaced, {"order_id": 1, "amount": 0}),
    )
    client.publish(
        f"{prefix}ORDER_PLACED",
        forged("ORDER_PLACED", BigOrderPlaced, {"order_id": 2, "amount": 0}),
    )
    assert inbox.wait_for(1) == [BigOrderPlaced(2, 0.0)]
    assert trusting.stats().dropped["class_mismatch"] == 1

    trusting.unsubscribe_publication(big, inbox.subscriber)
    wait_until(lambda: trusting.stats().subscribed == 0)


def test_a_publisher_s_subscriber_gets_only_its_publication(
    trusting: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    publisher = EventPublisher(ORDER_PLACED, broker=trusting)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)

    client.publish(
        f"{prefix}ORDER_PLACED", forged("ORDER_PLACED", UserDeleted, {"user": "root"})
    )
    publisher.publish(OrderPlaced(9, 9.0))
    assert inbox.wait_for(1) == [OrderPlaced(9, 9.0)]
    assert trusting.stats().dropped["class_mismatch"] == 1


def test_a_seed_page_broker_still_works_with_publishers() -> None:
    # A custom broker written against subscribe(channel, subscriber) only.
    class SeedBroker(MessageBroker):
        def __init__(self) -> None:
            self.subscribed: list[str] = []

        def publish(
            self, channel: str, event: Any, event_tag: Any, caller: Any
        ) -> None:
            pass

        def subscribe(self, channel: str, subscriber: Any) -> None:
            self.subscribed.append(channel)

        def unsubscribe(self, channel: str, subscriber: Any) -> None:
            pass

    broker = SeedBroker()
    publisher = EventPublisher(ORDER_PLACED, broker=broker)
    kept = Inbox()  # subscribers are held weakly: keep it alive
    publisher.add_subscriber(kept.subscriber)
    assert broker.subscribed == ["ORDER_PLACED"]


def test_the_unregistered_class_message_names_both_modules(
    trusting: RedisBroker,
    client: redis.Redis,
    prefix: str,
    broker_log: pytest.LogCaptureFixture,
) -> None:
    inbox = Inbox()
    trusting.subscribe("ORDER_PLACED", inbox.subscriber)
    message = json.loads(forged("ORDER_PLACED", OrderPlaced, {}))
    message["event_module"] = "elsewhere.events"
    client.publish(f"{prefix}ORDER_PLACED", json.dumps(message))
    wait_until(lambda: trusting.stats().dropped["unregistered_class"] == 1)
    assert "'elsewhere.events'" in broker_log.text
    assert repr(OrderPlaced.__module__) in broker_log.text
    assert "register_event_class()" not in broker_log.text
