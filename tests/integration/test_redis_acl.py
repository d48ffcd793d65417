"""One refused channel concerns that channel only (issue 8, item 3).

Before: with a Redis ACL user that may use only some channels, subscribing to
a forbidden one made the listener treat the error reply as a lost connection,
re-subscribe everything, fail again and loop forever; every other channel
stopped delivering and the log said "connection lost".

Each test starts its own ``redis-server`` (never the shared one) with a user
``u`` that may only use the channels ``acl:OK*``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from redis_helpers import PrivateRedis, private_redis, wait_until

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker, SubscriptionRefused

pytestmark = pytest.mark.slow


@dataclass
class Ping:
    n: int


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
    with pytest.raises(SubscriptionRefused):
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
