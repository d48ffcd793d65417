"""Fault injection on a private redis-server: restarts, killed connections, stalls.

Never the shared server: each test starts its own on a free loopback port and
kills, pauses or restarts it by pid.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis_helpers import Ping, PrivateRedis, numsub, wait_until

from eventspype import (
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.broker.redis import RedisBroker

pytestmark = pytest.mark.slow


@pytest.fixture
def broker(server: PrivateRedis) -> Iterator[RedisBroker]:
    made = RedisBroker.from_url(
        server.url, channel_prefix="faults:", reconnect_delay=(0.05, 0.5)
    )
    made.register_event_class(Ping)
    yield made
    made.close()


class Receiver:
    """Subscribes to ``tags`` on ``broker`` and records the ``n`` it receives."""

    def __init__(self, broker: RedisBroker, tags: list[str]) -> None:
        self.received: dict[str, list[int]] = {tag.upper(): [] for tag in tags}
        self.subscriber = FunctionalEventSubscriber(self._record)
        self.publishers = {
            tag: EventPublisher(EventPublication(tag, Ping), broker=broker)
            for tag in tags
        }
        for publisher in self.publishers.values():
            publisher.add_subscriber(self.subscriber)

    def _record(self, event: Ping, tag: Any, caller: Any) -> None:
        self.received[tag].append(event.n)

    def publish_all(self, numbers: range) -> None:
        for n in numbers:
            for publisher in self.publishers.values():
                publisher.publish(Ping(n))

    def wait_for(self, numbers: range) -> None:
        expected = list(numbers)
        wait_until(
            lambda: all(
                got[-len(expected) :] == expected for got in self.received.values()
            )
        )


def test_server_restart_reconnects_resubscribes_and_delivers_everything(
    server: PrivateRedis,
    broker: RedisBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    receiver = Receiver(broker, ["alpha", "beta", "gamma"])
    receiver.publish_all(range(5))
    receiver.wait_for(range(5))

    server.kill()
    # Publishing while the server is down raises at once, never hangs.
    with pytest.raises(redis.ConnectionError):
        receiver.publish_all(range(1))
    assert broker.stats().publish_errors == 1
    wait_until(lambda: "connection lost" in caplog.text)

    server.start()
    wait_until(lambda: broker.stats().reconnects == 1)
    # No new subscribe() call: the listener restored all three channels.
    receiver.publish_all(range(100, 200))
    receiver.wait_for(range(100, 200))
    for got in receiver.received.values():
        assert got == [*range(5), *range(100, 200)]
    assert "back after" in caplog.text
    assert "re-subscribed 3 channel(s)" in caplog.text
    assert broker.stats().delivered == 3 * 105


def test_a_killed_pubsub_connection_is_restored(
    server: PrivateRedis, broker: RedisBroker
) -> None:
    receiver = Receiver(broker, ["alpha", "beta"])
    receiver.publish_all(range(3))
    receiver.wait_for(range(3))

    admin = server.client()
    try:
        assert admin.client_kill_filter(_type="pubsub") == 1
    finally:
        admin.close()
    wait_until(lambda: broker.stats().reconnects == 1)
    receiver.publish_all(range(10, 60))
    receiver.wait_for(range(10, 60))


def test_a_stalled_server_makes_publish_time_out(server: PrivateRedis) -> None:
    broker = RedisBroker.from_url(
        server.url, channel_prefix="stall:", socket_timeout=0.5
    )
    publisher = EventPublisher(EventPublication("stall", Ping), broker=broker)
    try:
        publisher.publish(Ping(1))
        server.pause()
        try:
            with pytest.raises(redis.TimeoutError):
                publisher.publish(Ping(2))
        finally:
            server.resume()
        publisher.publish(Ping(3))  # and it recovers
        assert broker.stats().published == 2
        assert broker.stats().publish_errors == 1
    finally:
        broker.close()


def test_a_broker_started_while_redis_is_down_catches_up(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    server.kill()
    broker = RedisBroker.from_url(
        server.url, channel_prefix="late:", reconnect_delay=(0.05, 0.5)
    )
    broker.register_event_class(Ping)
    try:
        receiver = Receiver(broker, ["alpha"])  # subscribe() does not block
        assert "Cannot reach Redis" in caplog.text
        server.start()
        wait_until(lambda: "Redis reachable after" in caplog.text)
        receiver.publish_all(range(20))
        receiver.wait_for(range(20))
        assert broker.stats().reconnects == 0
    finally:
        broker.close()


def test_a_silent_connection_is_found_by_the_health_check(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # SIGSTOP: the socket stays open and nothing answers, as with a half-open
    # TCP connection. Only the PING that gets no PONG can tell.
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    broker = RedisBroker.from_url(
        server.url,
        channel_prefix="silent:",
        socket_timeout=1.0,
        health_check_interval=0.5,
        reconnect_delay=(0.05, 0.2),
    )
    broker.register_event_class(Ping)
    try:
        receiver = Receiver(broker, ["alpha"])
        server.pause()
        try:
            wait_until(lambda: "no reply to PING" in caplog.text)
        finally:
            server.resume()
        wait_until(lambda: broker.stats().reconnects == 1)
        receiver.publish_all(range(10))
        receiver.wait_for(range(10))
    finally:
        broker.close()


def test_close_while_the_server_is_down(
    server: PrivateRedis, broker: RedisBroker
) -> None:
    Receiver(broker, ["alpha"])
    thread = broker._listener._thread
    assert thread is not None
    server.kill()
    broker.close()
    assert not thread.is_alive()


def _finishes(work: Callable[[], object], within: float = 10.0) -> bool:
    """Run ``work`` on a thread; whether it returned within ``within`` s."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(within)
    return not thread.is_alive()


def test_the_clients_retry_policy_never_blocks_the_listener(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py 6+ retries with seconds of backoff by default. The listener used
    # to run those retries (reconnecting, under its lock) during an outage:
    # subscribe(), unsubscribe() and close() each took about 14 s, and close()
    # could return with the thread still running.
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    client = redis.Redis(
        host="127.0.0.1",
        port=server.port,
        socket_timeout=5,
        retry=Retry(ExponentialBackoff(cap=10, base=1), 3),
    )
    broker = RedisBroker(client, channel_prefix="retry:", reconnect_delay=(0.05, 0.5))
    broker.register_event_class(Ping)
    try:
        receiver = Receiver(broker, ["alpha", "beta"])
        server.kill()  # and change the subscriptions at once, during the outage
        late = FunctionalEventSubscriber(print)
        assert _finishes(lambda: broker.subscribe("GAMMA", late))
        beta = receiver.publishers["beta"]
        assert _finishes(lambda: beta.remove_subscriber(receiver.subscriber))
        wait_until(lambda: "connection lost" in caplog.text, timeout=10)

        server.start()
        wait_until(lambda: broker.stats().reconnects == 1)
        receiver.publishers["alpha"].publish(Ping(1))
        wait_until(lambda: receiver.received["ALPHA"] == [1])
        admin = server.client()
        try:
            assert numsub(admin, "retry:GAMMA") == 1
            assert numsub(admin, "retry:BETA") == 0
        finally:
            admin.close()
        # Done with it: unsubscribed, it is not reported as lost when collected.
        assert _finishes(lambda: broker.unsubscribe("GAMMA", late))

        server.kill()  # and close while it reconnects
        wait_until(lambda: broker._listener._link is None)
        thread = broker._listener._thread
        assert thread is not None
        assert _finishes(broker.close)
        assert not thread.is_alive()
    finally:
        broker.close()
        client.close()


def test_publish_times_out_on_a_stalled_server_without_socket_timeout(
    server: PrivateRedis,
) -> None:
    # redis-py 5's clients have no socket_timeout by default: publish() used
    # to wait forever for a server that stopped answering.
    client = redis.Redis(
        host="127.0.0.1", port=server.port, socket_timeout=None, retry=None
    )
    broker = RedisBroker(client, channel_prefix="stall2:", publish_timeout=0.5)
    publisher = EventPublisher(EventPublication("stall", Ping), broker=broker)
    outcome: list[object] = []

    def attempt() -> None:
        try:
            publisher.publish(Ping(2))
            outcome.append("returned")
        except Exception as error:
            outcome.append(error)

    try:
        publisher.publish(Ping(1))
        server.pause()
        try:
            finished = _finishes(attempt)
        finally:
            server.resume()
        assert finished
        [error] = outcome
        assert isinstance(error, redis.TimeoutError)
        publisher.publish(Ping(3))  # and it recovers
        assert (broker.stats().published, broker.stats().publish_errors) == (2, 1)
    finally:
        broker.close()
        client.close()
