"""Start, close, garbage collection, from_url, clients that decode responses."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import fakeredis
import pytest
import redis
from _redis_support import (
    REDIS_URL,
    Inbox,
    OrderPlaced,
    collect,
    listener_threads,
    numsub,
    publisher_for,
    require_real_redis,
    unique_prefix,
    wait_until,
)

from eventspype import FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker


def test_no_thread_until_the_first_subscribe(broker: RedisBroker) -> None:
    before = len(listener_threads())
    publisher_for(broker, "orders", OrderPlaced).publish(OrderPlaced(1, 1.0))
    assert len(listener_threads()) == before
    kept = Inbox()  # subscribers are held weakly: keep it alive
    broker.subscribe("ORDERS", kept.subscriber)
    assert len(listener_threads()) == before + 1


def test_close_stops_and_joins_the_listener(broker: RedisBroker) -> None:
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    [thread] = [t for t in listener_threads() if t.is_alive()][-1:]
    broker.close()
    assert not thread.is_alive()
    assert broker.closed


def test_close_is_idempotent_and_final(broker: RedisBroker) -> None:
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    broker.close()
    broker.close()
    publisher = publisher_for(broker, "orders", OrderPlaced)
    with pytest.raises(RuntimeError, match="closed"):
        publisher.publish(OrderPlaced(1, 1.0))
    with pytest.raises(RuntimeError, match="closed"):
        broker.subscribe("ORDERS", inbox.subscriber)
    broker.unsubscribe("ORDERS", inbox.subscriber)  # harmless


def test_context_manager_closes(client: redis.Redis, prefix: str) -> None:
    with RedisBroker(client, channel_prefix=prefix) as broker:
        kept = Inbox()  # subscribers are held weakly: keep it alive
        broker.subscribe("ORDERS", kept.subscriber)
        [thread] = [t for t in listener_threads() if t.is_alive()][-1:]
    assert broker.closed
    assert not thread.is_alive()


def test_close_without_subscriptions(client: redis.Redis) -> None:
    RedisBroker(client).close()


def test_a_subscriber_may_close_the_broker(broker: RedisBroker) -> None:
    publisher = publisher_for(broker, "orders", OrderPlaced)
    closed = threading.Event()

    def close_it(event: Any) -> None:
        broker.close()  # on the listener thread: must not join itself
        closed.set()

    subscriber = FunctionalEventSubscriber(close_it, with_event_info=False)
    publisher.add_subscriber(subscriber)
    [thread] = [t for t in listener_threads() if t.is_alive()][-1:]
    publisher.publish(OrderPlaced(1, 1.0))
    assert closed.wait(10)
    thread.join(10)
    assert not thread.is_alive()


def test_a_forgotten_broker_stops_its_thread(client: redis.Redis) -> None:
    broker = RedisBroker(client, channel_prefix=unique_prefix())
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    [thread] = [t for t in listener_threads() if t.is_alive()][-1:]
    gone = weakref.ref(broker)
    del broker
    collect(gone)
    thread.join(10)
    assert not thread.is_alive()


def test_unsubscribing_everything_closes_the_pubsub_connection(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    inbox = Inbox()
    broker.subscribe("A", inbox.subscriber)
    broker.unsubscribe("A", inbox.subscriber)
    wait_until(lambda: numsub(client, f"{prefix}A") == 0)
    # And subscribing again opens a fresh one that works.
    publisher = publisher_for(broker, "a", OrderPlaced)
    publisher.add_subscriber(inbox.subscriber)
    publisher.publish(OrderPlaced(1, 1.0))
    assert inbox.wait_for(1) == [OrderPlaced(1, 1.0)]


def test_clients_that_decode_responses_still_see_bytes(
    client_factory: Any, prefix: str
) -> None:
    client = client_factory(decode_responses=True)
    with RedisBroker(client, channel_prefix=prefix) as broker:
        broker.register_event_class(OrderPlaced)
        publisher = publisher_for(broker, "orders", OrderPlaced)
        inbox = Inbox()
        publisher.add_subscriber(inbox.subscriber)
        client.publish(f"{prefix}ORDERS", b"\xff\xfe not utf-8")
        publisher.publish(OrderPlaced(1, 1.0))
        assert inbox.wait_for(1) == [OrderPlaced(1, 1.0)]
        assert broker.stats().dropped["invalid_json"] == 1
        assert broker.stats().reconnects == 0


def test_from_url_builds_a_client_with_timeouts_and_owns_it() -> None:
    require_real_redis()
    broker = RedisBroker.from_url(REDIS_URL, channel_prefix=unique_prefix())
    try:
        kwargs = broker._redis.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 5.0
        assert kwargs["socket_connect_timeout"] == 2.0
        broker.register_event_class(OrderPlaced)
        publisher = publisher_for(broker, "orders", OrderPlaced)
        inbox = Inbox()
        publisher.add_subscriber(inbox.subscriber)
        publisher.publish(OrderPlaced(1, 1.0))
        assert inbox.wait_for(1) == [OrderPlaced(1, 1.0)]
    finally:
        broker.close()


def test_subscribe_while_redis_is_down_subscribes_when_it_is_back(
    fake_server: fakeredis.FakeServer, prefix: str
) -> None:
    fake_server.connected = False
    client = fakeredis.FakeRedis(server=fake_server)
    with RedisBroker(
        client, channel_prefix=prefix, reconnect_delay=(0.01, 0.05)
    ) as broker:
        broker.register_event_class(OrderPlaced)
        publisher = publisher_for(broker, "orders", OrderPlaced)
        inbox = Inbox()
        publisher.add_subscriber(inbox.subscriber)  # returns: Redis is down
        fake_server.connected = True
        wait_until(lambda: numsub(client, f"{prefix}ORDERS") == 1)
        publisher.publish(OrderPlaced(1, 1.0))
        assert inbox.wait_for(1) == [OrderPlaced(1, 1.0)]
        assert broker.stats().reconnects == 0  # a first connection, not a re-


def test_repr(broker: RedisBroker, prefix: str) -> None:
    assert prefix in repr(broker)
    broker.close()
    assert "closed" in repr(broker)


@pytest.mark.parametrize(
    "options",
    [
        {"max_message_bytes": 0},
        {"reconnect_delay": (0.0, 1.0)},
        {"reconnect_delay": (2.0, 1.0)},
        {"health_check_interval": 0},
        {"publish_timeout": 0},
    ],
)
def test_options_out_of_range_are_refused(
    client: redis.Redis, options: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="must be"):
        RedisBroker(client, **options)
