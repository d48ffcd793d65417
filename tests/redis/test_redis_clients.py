"""Clients other than a plain ``redis.Redis``: subclasses, pools, encodings, RESP3."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
import redis
from _redis_support import (
    REDIS_URL,
    Inbox,
    OrderPlaced,
    publisher_for,
    require_real_redis,
)

from eventspype.broker.redis import RedisBroker


def _publishes_and_receives(broker: RedisBroker, count: int = 3) -> None:
    broker.register_event_class(OrderPlaced)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    for i in range(count):
        publisher.publish(OrderPlaced(i, 1.0))
    assert inbox.wait_for(count) == [OrderPlaced(i, 1.0) for i in range(count)]


def test_a_client_subclass_publishes_through_its_own_methods(
    backend: str, fake_server: fakeredis.FakeServer, prefix: str
) -> None:
    # A subclass may instrument or route commands: the broker must not
    # bypass it with its own connection.
    base: Any = fakeredis.FakeRedis if backend == "fake" else redis.Redis

    class Instrumented(base):  # type: ignore[misc]
        commands: list[Any]

        def execute_command(self, *args: Any, **options: Any) -> Any:
            self.commands.append(args[0])
            return super().execute_command(*args, **options)

    if backend == "fake":
        client = Instrumented(server=fake_server, socket_timeout=5)
    else:
        client = Instrumented.from_url(REDIS_URL, socket_timeout=5)
    client.commands = []
    try:
        with RedisBroker(client, channel_prefix=prefix) as broker:
            _publishes_and_receives(broker)
        assert client.commands.count("PUBLISH") == 3
    finally:
        client.close()


def test_fast_publish_false_goes_through_client_publish(
    client_factory: Callable[..., redis.Redis],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_factory(socket_timeout=5)
    sent: list[bytes] = []
    original = client.publish

    def publish(channel: Any, message: Any) -> Any:
        sent.append(channel)
        return original(channel, message)

    monkeypatch.setattr(client, "publish", publish)
    with RedisBroker(client, channel_prefix=prefix, fast_publish=False) as broker:
        _publishes_and_receives(broker)
        publisher = publisher_for(broker, "orders", OrderPlaced)
        with broker.batch():  # pipelined through the client too
            publisher.publish(OrderPlaced(9, 9.0))
        assert broker.stats().published == 4
    assert sent == [f"{prefix}ORDERS".encode()] * 3


def test_a_blocking_pool_keeps_serving_the_users_commands(prefix: str) -> None:
    # Before: the broker held both slots of this pool (its publish connection
    # and its Pub/Sub connection) and every command of the user's timed out.
    require_real_redis()
    pool = redis.BlockingConnectionPool.from_url(
        REDIS_URL, max_connections=2, timeout=1, socket_timeout=5
    )
    client = redis.Redis(connection_pool=pool)
    try:
        with RedisBroker(client, channel_prefix=prefix) as broker:
            _publishes_and_receives(broker)
            held = [_checkout(pool) for _ in range(2)]  # both slots are free
            for connection in held:
                pool.release(connection)
            assert client.ping()
    finally:
        client.close()


def _checkout(pool: redis.ConnectionPool) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py < 5.3 requires a command name
        return pool.get_connection("PING")


def test_a_custom_pool_that_decodes_still_gets_bytes(prefix: str) -> None:
    # Any pool subclass (SentinelConnectionPool, an instrumented pool): one
    # message that is not UTF-8 must be dropped, not cost the following ones.
    require_real_redis()

    class InstrumentedPool(redis.ConnectionPool):
        pass

    client = redis.Redis(
        connection_pool=InstrumentedPool.from_url(
            REDIS_URL, decode_responses=True, socket_timeout=5
        )
    )
    try:
        with RedisBroker(client, channel_prefix=prefix) as broker:
            broker.register_event_class(OrderPlaced)
            publisher = publisher_for(broker, "orders", OrderPlaced)
            inbox = Inbox()
            publisher.add_subscriber(inbox.subscriber)
            client.publish(f"{prefix}ORDERS", b"\xff\xfe not utf-8")
            for i in range(3):
                publisher.publish(OrderPlaced(i, 1.0))
            assert [e.order_id for e in inbox.wait_for(3)] == [0, 1, 2]
            stats = broker.stats()
            assert (stats.dropped["invalid_json"], stats.reconnects) == (1, 0)
    finally:
        client.close()


def test_channel_names_in_the_clients_encoding_are_confirmed(
    client_factory: Callable[..., redis.Redis],
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    client = client_factory(encoding="latin-1")
    with RedisBroker(client, channel_prefix=prefix, subscribe_timeout=2) as broker:
        broker.register_event_class(OrderPlaced)
        publisher = publisher_for(broker, "café", OrderPlaced)
        inbox = Inbox()
        publisher.add_subscriber(inbox.subscriber)
        assert "has not confirmed" not in caplog.text
        publisher.publish(OrderPlaced(1, 1.0))
        assert inbox.wait_for(1) == [OrderPlaced(1, 1.0)]


def test_resp3_messages_are_not_formatted_for_the_push_logger(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py hands every RESP3 push to a handler that logs it (at INFO in
    # redis-py 5, with a stream handler of its own: payloads on stderr).
    require_real_redis()
    caplog.set_level(logging.DEBUG, logger="push_response")
    client = redis.Redis.from_url(REDIS_URL, protocol=3, socket_timeout=5)
    try:
        with RedisBroker(client, channel_prefix=prefix) as broker:
            _publishes_and_receives(broker)
    finally:
        client.close()
    assert [r.getMessage() for r in caplog.records if r.name == "push_response"] == []


def test_publishing_through_a_client_without_timeout_is_warned_about() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_timeout=None)
    with pytest.warns(RuntimeWarning, match="socket_timeout"):
        RedisBroker(client, fast_publish=False).close()
    with warnings.catch_warnings():
        # The fast path has a timeout of its own (publish_timeout).
        warnings.simplefilter("error")
        RedisBroker(client).close()


def test_a_publish_racing_close_opens_no_connection(broker: RedisBroker) -> None:
    # A publish that passed the broker's check before close() reaches the
    # transport after it: it must fail, not open a connection nobody closes.
    transport = broker._transport
    publisher_for(broker, "orders", OrderPlaced).publish(OrderPlaced(1, 1.0))
    broker.close()
    with pytest.raises(RuntimeError, match="closed"):
        transport.publish(b"eventspype-test:race", b"{}")
    assert transport._connection is None  # type: ignore[attr-defined]
