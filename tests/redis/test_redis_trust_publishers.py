"""Issue 8, item 2 end to end: publishers on a RedisBroker, a hostile PUBLISH.

A subscriber that came through ``EventPublisher`` or ``MultiPublisher`` gets
only events of its publication's tag and class (subclasses included), however
it got onto the broker (added there, moved there by a broker swap) and
whatever anyone with PUBLISH rights sends on its channel. Each scenario sends
the forged messages with a raw PUBLISH first, then a genuine event through the
publisher: Redis delivers in the order it executed the PUBLISHes, so once the
genuine event has arrived every forged one has been judged.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from _redis_support import (
    ORDER_PLACED,
    BigOrderPlaced,
    Inbox,
    OrderCancelled,
    OrderPlaced,
    UserDeleted,
    forged,
)

from eventspype import EventPublication, EventPublisher, LocalBroker, MultiPublisher
from eventspype.broker.redis import RedisBroker

ORDER_CANCELLED = EventPublication("order_cancelled", OrderCancelled)


class Shop(MultiPublisher):
    PLACED = ORDER_PLACED
    CANCELLED = ORDER_CANCELLED


#: What a hostile client sends on the channel of ORDER_PLACED, and the reason
#: each one must be dropped for a subscriber of that publication. A tag that is
#: not the channel's drops the message for everyone (counted once); a class
#: that is not the publication's is refused to each such subscriber (counted
#: per subscriber).
HOSTILE_ON_ORDER_PLACED: list[tuple[bytes, str]] = [
    (forged("SOMETHING_ELSE", UserDeleted, {"user": "root"}), "tag_mismatch"),
    (forged("order_placed", OrderPlaced, {"order_id": 1, "amount": 0}), "tag_mismatch"),
    (forged("ORDER_CANCELLED", OrderCancelled, {"order_id": 1}), "tag_mismatch"),
    (forged("ORDER_PLACED", UserDeleted, {"user": "root"}), "class_mismatch"),
    (forged("ORDER_PLACED", OrderCancelled, {"order_id": 1}), "class_mismatch"),
]


@pytest.fixture
def trusting(broker: RedisBroker) -> RedisBroker:
    """Every forged class is registered: only the publication checks stop them."""
    broker.register_event_classes(UserDeleted, BigOrderPlaced)
    return broker


def send_hostile(client: redis.Redis, prefix: str) -> dict[str, int]:
    """PUBLISH every forged message; how many drops of each reason to expect."""
    expected: dict[str, int] = {}
    for message, reason in HOSTILE_ON_ORDER_PLACED:
        client.publish(f"{prefix}ORDER_PLACED", message)
        expected[reason] = expected.get(reason, 0) + 1
    return expected


def drops(broker: RedisBroker) -> dict[str, int]:
    return {reason: n for reason, n in broker.stats().dropped.items() if n}


def test_an_event_publisher_s_subscriber_gets_only_its_publication(
    trusting: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    publisher = EventPublisher(ORDER_PLACED, broker=trusting)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)

    expected = send_hostile(client, prefix)
    client.publish(
        f"{prefix}ORDER_PLACED",
        forged("ORDER_PLACED", BigOrderPlaced, {"order_id": 2, "amount": 1.0}),
    )
    publisher.publish(OrderPlaced(3, 1.0))
    assert inbox.wait_for(2) == [BigOrderPlaced(2, 1.0), OrderPlaced(3, 1.0)]
    assert [item[1] for item in inbox.items] == ["ORDER_PLACED"] * 2
    assert drops(trusting) == expected


def test_a_multipublisher_s_subscribers_get_only_their_publication(
    trusting: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    shop = Shop(broker=trusting)
    placed, cancelled = Inbox(), Inbox()
    shop.add_subscriber(Shop.PLACED, placed.subscriber)
    shop.add_subscriber(Shop.CANCELLED, cancelled.subscriber)

    expected = send_hostile(client, prefix)
    # And the other way round: an order_placed event on the cancelled channel.
    client.publish(
        f"{prefix}ORDER_CANCELLED",
        forged("ORDER_PLACED", OrderPlaced, {"order_id": 4, "amount": 0}),
    )
    client.publish(
        f"{prefix}ORDER_CANCELLED",
        forged("ORDER_CANCELLED", OrderPlaced, {"order_id": 4, "amount": 0}),
    )
    expected["tag_mismatch"] += 1
    expected["class_mismatch"] += 1
    shop.publish(Shop.PLACED, OrderPlaced(5, 0.0))
    shop.publish(Shop.CANCELLED, OrderCancelled(6))
    assert placed.wait_for(1) == [OrderPlaced(5, 0.0)]
    assert cancelled.wait_for(1) == [OrderCancelled(6)]
    assert drops(trusting) == expected
    assert placed.events == [OrderPlaced(5, 0.0)]


@pytest.mark.parametrize("start", ["direct", "local", "redis"])
def test_a_broker_swap_keeps_the_publication_s_filter(
    start: str,
    trusting: RedisBroker,
    broker_factory: Any,
    client: redis.Redis,
    prefix: str,
) -> None:
    # From no broker, a LocalBroker or another RedisBroker (another prefix)
    # to ``trusting``: the subscribers arrive with their publication.
    first: Any = {
        "direct": None,
        "local": LocalBroker(),
        "redis": broker_factory(channel_prefix=prefix + "first:"),
    }[start]
    publisher = EventPublisher(ORDER_PLACED, broker=first)
    shop = Shop(broker=first)
    inbox, shop_inbox = Inbox(), Inbox()
    publisher.add_subscriber(inbox.subscriber)
    shop.add_subscriber(Shop.PLACED, shop_inbox.subscriber)

    publisher.broker = trusting
    shop.broker = trusting
    sent = send_hostile(client, prefix)
    tags, classes = sent["tag_mismatch"], sent["class_mismatch"]
    publisher.publish(OrderPlaced(7, 0.0))
    assert inbox.wait_for(1) == [OrderPlaced(7, 0.0)]
    assert shop_inbox.wait_for(1) == [OrderPlaced(7, 0.0)]
    # Each forged class was refused to both subscribers.
    assert drops(trusting) == {"tag_mismatch": tags, "class_mismatch": 2 * classes}

    # And back: the swap does not leave a filterless subscription behind.
    publisher.broker = first
    shop.broker = first
    publisher.broker = trusting
    send_hostile(client, prefix)
    publisher.publish(OrderPlaced(8, 0.0))
    assert inbox.wait_for(2) == [OrderPlaced(7, 0.0), OrderPlaced(8, 0.0)]
    assert drops(trusting) == {
        "tag_mismatch": 2 * tags,
        "class_mismatch": 3 * classes,
    }
    assert shop_inbox.events == [OrderPlaced(7, 0.0)]
