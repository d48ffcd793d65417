"""One refused channel concerns that channel only (issue 8, item 3).

Before: with a Redis ACL user that may use only some channels, subscribing to
a forbidden one made the listener treat the error reply as a lost connection,
re-subscribe everything, fail again and loop forever; every other channel
stopped delivering and the log said "connection lost". And a publisher whose
subscriber Redis refused kept it in its own list (a retry was a no-op), and a
refused broker swap left it half on each broker.

Each test starts its own ``redis-server`` (never the shared one) with a user
``u`` that may only use the channels ``acl:OK*``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis_helpers import Ping, PrivateRedis, private_redis, wait_until

from eventspype import (
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
    LocalBroker,
    MultiPublisher,
)
from eventspype.broker.redis import RedisBroker, SubscriptionRefused

pytestmark = pytest.mark.slow


class Inbox:
    def __init__(self) -> None:
        self.got: list[int] = []
        self.subscriber = FunctionalEventSubscriber(self._record)

    def _record(self, event: Ping, tag: Any, caller: Any) -> None:
        self.got.append(event.n)


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    with private_redis() as started:
        admin = started.client()
        admin.execute_command(
            "ACL", "SETUSER", "u", "on", ">pw", "resetchannels", "&acl:OK*",
            "~*", "+@all",
        )  # fmt: skip
        admin.close()
        yield started


@pytest.fixture
def broker(server: PrivateRedis) -> Iterator[RedisBroker]:
    made = RedisBroker.from_url(
        f"redis://u:pw@127.0.0.1:{server.port}/0",
        channel_prefix="acl:",
        reconnect_delay=(0.05, 0.5),
    )
    made.register_event_class(Ping)
    yield made
    made.close()


def publish(server: PrivateRedis, broker: RedisBroker, tag: str, n: int) -> None:
    admin = RedisBroker(server.client(), channel_prefix="acl:")
    try:
        EventPublisher(EventPublication(tag, Ping), broker=admin).publish(Ping(n))
    finally:
        admin.close()


def test_subscribe_to_a_forbidden_channel_raises_and_others_deliver(
    server: PrivateRedis, broker: RedisBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventspype.broker.redis")
    allowed, refused = Inbox(), Inbox()
    broker.subscribe("OK_A", allowed.subscriber)

    with pytest.raises(SubscriptionRefused) as caught:
        broker.subscribe("FORBIDDEN", refused.subscriber)
    assert caught.value.channel == "acl:FORBIDDEN"
    assert "NoPermissionError" in caught.value.reason
    assert "acl:FORBIDDEN" in str(caught.value)
    assert isinstance(caught.value, redis.ResponseError)

    # A channel subscribed after the refusal works as well.
    later = Inbox()
    broker.subscribe("OK_B", later.subscriber)
    for n in range(3):
        publish(server, broker, "ok_a", n)
        publish(server, broker, "ok_b", n)
    wait_until(lambda: allowed.got == [0, 1, 2] and later.got == [0, 1, 2])
    stats = broker.stats()
    assert stats.reconnects == 0
    assert stats.subscribe_refusals == 1
    assert stats.connected is True
    assert stats.subscribed == 2
    assert dict(stats.refused_channels).keys() == {"acl:FORBIDDEN"}
    assert "connection lost" not in caplog.text
    assert "refused to subscribe to 'acl:FORBIDDEN'" in caplog.text
    # subscribe() raised the refusal and gave the channel up: handled, so it
    # no longer fails every later check (it did: issue 16).
    broker.wait_until_subscribed(timeout=1)


def test_a_channel_refused_on_reconnection_is_reported_not_retried_forever(
    server: PrivateRedis, broker: RedisBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    kept, revoked = Inbox(), Inbox()
    broker.subscribe("OK_KEPT", kept.subscriber)
    broker.subscribe("OK_REVOKED", revoked.subscriber)
    broker.wait_until_subscribed(timeout=10)

    # Narrowing a user's channels disconnects its subscribed clients (Redis 7):
    # the listener reconnects, and one of its channels is now refused.
    admin = server.client()
    try:
        admin.execute_command(
            "ACL", "SETUSER", "u", "resetchannels", "&acl:OK_KEPT*"
        )  # fmt: skip
    finally:
        admin.close()
    wait_until(lambda: broker.stats().subscribe_refusals == 1)
    publish(server, broker, "ok_kept", 1)
    wait_until(lambda: kept.got == [1])

    time.sleep(1.0)  # long enough for a reconnect loop to show in the counters
    stats = broker.stats()
    assert stats.subscribe_refusals == 1
    assert stats.reconnects <= 1
    assert stats.connected is True
    assert dict(stats.refused_channels).keys() == {"acl:OK_REVOKED"}
    assert "refused to subscribe to 'acl:OK_REVOKED'" in caplog.text
    # Nobody handled this refusal yet: checks fail until the subscriber gives
    # the channel up, and then no longer (issue 16: they failed forever).
    with pytest.raises(SubscriptionRefused):
        broker.wait_until_subscribed(timeout=1)
    broker.unsubscribe("OK_REVOKED", revoked.subscriber)
    broker.wait_until_subscribed(timeout=1)


# -- publishers roll back what the broker refused -----------------------------


def allow(server: PrivateRedis, pattern: str) -> None:
    """Let ``u`` use the channels ``pattern`` too (widening does not disconnect)."""
    admin = server.client()
    try:
        admin.execute_command("ACL", "SETUSER", "u", pattern)
    finally:
        admin.close()


def test_a_refused_publisher_subscriber_is_not_kept_and_a_retry_delivers(
    server: PrivateRedis, broker: RedisBroker
) -> None:
    publisher = EventPublisher(EventPublication("late", Ping), broker=broker)
    inbox = Inbox()
    with pytest.raises(SubscriptionRefused) as caught:
        publisher.add_subscriber(inbox.subscriber)
    assert caught.value.channel == "acl:LATE"
    assert publisher.get_subscribers() == []

    # Once the ACL allows the channel, adding again subscribes. Before, the
    # publisher still listed the subscriber, so this was a no-op and nothing
    # ever arrived.
    allow(server, "&acl:LATE")
    publisher.add_subscriber(inbox.subscriber)
    publish(server, broker, "late", 7)
    wait_until(lambda: inbox.got == [7])


def test_multipublisher_keeps_nothing_the_broker_refused(
    server: PrivateRedis, broker: RedisBroker
) -> None:
    class Shop(MultiPublisher):
        ALLOWED = EventPublication("ok_shop", Ping)
        FORBIDDEN = EventPublication("shop", Ping)

    shop = Shop(broker=broker)
    allowed, refused = Inbox(), Inbox()
    shop.add_subscriber(Shop.ALLOWED, allowed.subscriber)
    with pytest.raises(SubscriptionRefused):
        shop.add_subscriber(Shop.FORBIDDEN, refused.subscriber)
    assert shop.get_subscribers(Shop.FORBIDDEN) == []

    got: list[Ping] = []
    with pytest.raises(SubscriptionRefused):
        shop.add_subscriber_with_callback(Shop.FORBIDDEN, got.append, False)
    allow(server, "&acl:SHOP")
    shop.add_subscriber_with_callback(Shop.FORBIDDEN, got.append, False)
    shop.publish(Shop.FORBIDDEN, Ping(1))
    shop.publish(Shop.ALLOWED, Ping(2))
    wait_until(lambda: got == [Ping(1)] and allowed.got == [2])


def test_a_refused_broker_swap_leaves_every_publisher_where_it_was(
    server: PrivateRedis, broker: RedisBroker
) -> None:
    class Shop(MultiPublisher):
        ALLOWED = EventPublication("ok_swap", Ping)
        FORBIDDEN = EventPublication("swap", Ping)

    local = LocalBroker()
    shop = Shop(broker=local)
    allowed, forbidden = Inbox(), Inbox()
    shop.add_subscriber(Shop.ALLOWED, allowed.subscriber)
    shop.add_subscriber(Shop.FORBIDDEN, forbidden.subscriber)

    with pytest.raises(SubscriptionRefused) as caught:
        shop.broker = broker
    assert caught.value.channel == "acl:SWAP"
    assert shop.broker is local
    # The channel Redis had accepted during the swap is given up again.
    wait_until(lambda: broker.stats().subscribed == 0)
    shop.publish(Shop.ALLOWED, Ping(1))
    shop.publish(Shop.FORBIDDEN, Ping(2))
    assert (allowed.got, forbidden.got) == ([1], [2])  # delivered locally
    assert broker.stats().published == 0

    # A single publisher's swap is undone the same way.
    publisher = EventPublisher(Shop.FORBIDDEN, broker=local)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    with pytest.raises(SubscriptionRefused):
        publisher.broker = broker
    assert publisher.broker is local
    publisher.publish(Ping(3))
    assert inbox.got == [3]


def test_the_acl_of_the_security_page_is_enough(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # docs/security.md's rule, as written there. It used to omit +unsubscribe:
    # the listener's UNSUBSCRIBE was refused (logged as an error) and the
    # server kept sending the channel's events to a process that had left it.
    admin = server.client()
    admin.execute_command(
        "ACL", "SETUSER", "shipping", "on", ">secret", "resetchannels",
        "&acl:ORDER_*", "+subscribe", "+unsubscribe", "+ping", "+publish",
    )  # fmt: skip
    caplog.set_level(logging.INFO, logger="eventspype.broker.redis")
    broker = RedisBroker.from_url(
        f"redis://shipping:secret@127.0.0.1:{server.port}/0", channel_prefix="acl:"
    )
    try:
        broker.register_event_class(Ping)
        placed = EventPublication("order_placed", Ping)
        publisher = EventPublisher(placed, broker=broker)
        inbox = Inbox()
        publisher.add_subscriber(inbox.subscriber)
        broker.wait_until_subscribed(timeout=10)
        publisher.publish(Ping(1))
        wait_until(lambda: inbox.got == [1])
        publisher.remove_subscriber(inbox.subscriber)
        wait_until(lambda: admin.pubsub_numsub("acl:ORDER_PLACED")[0][1] == 0)
        assert "refused" not in caplog.text
    finally:
        broker.close()
        admin.close()
