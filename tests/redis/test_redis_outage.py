"""Outages simulated with fakeredis or injected failures (the real server is
killed in tests/integration)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
from _redis_support import (
    Inbox,
    OrderPlaced,
    numsub,
    publish_in_batch,
    publisher_for,
    unique_prefix,
    wait_until,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventspype.broker.redis import RedisBroker


@pytest.fixture
def outage() -> Iterator[tuple[fakeredis.FakeServer, RedisBroker, redis.Redis]]:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    broker = RedisBroker(
        client, channel_prefix=unique_prefix(), reconnect_delay=(0.01, 0.1)
    )
    broker.register_event_class(OrderPlaced)
    yield server, broker, client
    server.connected = True
    broker.close()


def test_listener_reconnects_and_resubscribes_by_itself(
    outage: tuple[fakeredis.FakeServer, RedisBroker, redis.Redis],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, broker, _ = outage
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    publishers = [publisher_for(broker, tag, OrderPlaced) for tag in ("a", "b")]
    inboxes = [Inbox(), Inbox()]
    for publisher, inbox in zip(publishers, inboxes, strict=True):
        publisher.add_subscriber(inbox.subscriber)

    server.connected = False
    wait_until(lambda: "connection lost" in caplog.text)
    server.connected = True
    wait_until(lambda: broker.stats().reconnects == 1)

    for i in range(10):
        for publisher in publishers:
            publisher.publish(OrderPlaced(i, 0.0))
    for inbox in inboxes:
        assert [e.order_id for e in inbox.wait_for(10)] == list(range(10))
    assert "back after" in caplog.text
    assert "re-subscribed 2 channel(s)" in caplog.text


def test_publish_during_an_outage_raises_and_is_counted(
    outage: tuple[fakeredis.FakeServer, RedisBroker, redis.Redis],
) -> None:
    server, broker, _ = outage
    publisher = publisher_for(broker, "orders", OrderPlaced)
    publisher.publish(OrderPlaced(0, 0.0))
    server.connected = False
    with pytest.raises(redis.ConnectionError):
        publisher.publish(OrderPlaced(1, 0.0))
    with pytest.raises(redis.ConnectionError):
        publish_in_batch(broker, publisher, [OrderPlaced(2, 0.0)])
    stats = broker.stats()
    assert (stats.published, stats.publish_errors) == (1, 2)
    server.connected = True
    publisher.publish(OrderPlaced(3, 0.0))
    assert broker.stats().published == 2


def test_repeated_outages_are_each_counted(
    outage: tuple[fakeredis.FakeServer, RedisBroker, redis.Redis],
) -> None:
    server, broker, _ = outage
    publisher = publisher_for(broker, "orders", OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)

    def reconnected(times: int) -> Callable[[], bool]:
        return lambda: broker.stats().reconnects == times

    for round_ in range(1, 4):
        server.connected = False
        wait_until(lambda: broker._listener._link is None)
        server.connected = True
        wait_until(reconnected(round_))
        publisher.publish(OrderPlaced(round_, 0.0))
        inbox.wait_for(round_)
    assert [e.order_id for e in inbox.events] == [1, 2, 3]


def test_close_during_an_outage_is_prompt(
    outage: tuple[fakeredis.FakeServer, RedisBroker, redis.Redis],
) -> None:
    server, broker, _ = outage
    kept = Inbox()  # subscribers are held weakly: keep it alive
    broker.subscribe("ORDERS", kept.subscriber)
    server.connected = False
    wait_until(lambda: broker._listener._link is None)
    thread = broker._listener._thread
    assert thread is not None
    broker.close()
    assert not thread.is_alive()


def test_a_subscribe_whose_send_fails_is_not_lost(
    client_factory: Callable[..., redis.Redis],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SUBSCRIBE of a new channel fails to go out (the connection broke
    # just then). It used to be swallowed while redis-py re-opened the
    # connection underneath with the *other* channels: this one was lost.
    client = client_factory(retry=Retry(NoBackoff(), 0))
    wire = f"{prefix}LATE".encode()
    original = redis.connection.Connection.send_packed_command
    injected: list[bool] = []

    def flaky(
        self: redis.connection.Connection, command: Any, check_health: bool = True
    ) -> None:
        chunks = [command] if isinstance(command, (bytes, str)) else command
        packed = b"".join(c if isinstance(c, bytes) else bytes(c) for c in chunks)
        if not injected and b"SUBSCRIBE" in packed and wire in packed:
            injected.append(True)
            self.disconnect()
            raise redis.ConnectionError("injected: connection broke while sending")
        original(self, command, check_health=check_health)

    with RedisBroker(
        client, channel_prefix=prefix, reconnect_delay=(0.01, 0.1)
    ) as broker:
        broker.register_event_class(OrderPlaced)
        early, late = Inbox(), Inbox()
        publisher_for(broker, "early", OrderPlaced).add_subscriber(early.subscriber)
        monkeypatch.setattr(redis.connection.Connection, "send_packed_command", flaky)
        late_publisher = publisher_for(broker, "late", OrderPlaced)
        late_publisher.add_subscriber(late.subscriber)
        assert injected
        wait_until(lambda: numsub(client, wire.decode()) == 1)
        late_publisher.publish(OrderPlaced(1, 1.0))
        assert late.wait_for(1) == [OrderPlaced(1, 1.0)]
