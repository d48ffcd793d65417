"""AsyncRedisBroker against a private redis-server that is killed, restarted and paused.

Each test starts its own server on a free port (``private_redis``) and
controls it by pid; nothing here touches the shared server. No timing is
asserted: waits are bounded only so that a broken implementation fails
instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import redis
from _redis_support import eventually as eventually_within
from _redis_support import run_bounded
from redis_helpers import Ping, PrivateRedis

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import AsyncRedisBroker, PublishQueueFull

pytestmark = pytest.mark.slow

TAG = "ping"


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return run_bounded(scenario, 90)


async def eventually(condition: Callable[[], object]) -> None:
    await eventually_within(condition, 30.0, 0.01)


class Node:
    """An AsyncRedisBroker with one publisher and the ``n`` it has received."""

    def __init__(self, url: str, **options: Any) -> None:
        options.setdefault("reconnect_delay", (0.05, 0.5))
        self.broker = AsyncRedisBroker.from_url(
            url, channel_prefix="afaults:", **options
        )
        self.broker.register_event_class(Ping)
        self.publisher = EventPublisher(EventPublication(TAG, Ping), broker=self.broker)
        self.received: list[int] = []
        self.subscriber = FunctionalEventSubscriber(
            lambda event: self.received.append(event.n), with_event_info=False
        )

    def listen(self) -> None:
        self.publisher.add_subscriber(self.subscriber)

    async def publish_async(self, n: int) -> None:
        await self.broker.publish_async(self.publisher.channel, Ping(n), "PING", None)

    async def wait_for(self, *numbers: int) -> None:
        await eventually(lambda: self.received[-len(numbers) :] == list(numbers))


def test_restart_reconnects_resubscribes_and_publishing_recovers(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")

    async def scenario() -> None:
        receiver, sender = Node(server.url), Node(server.url)
        receiver.listen()
        await receiver.broker.wait_until_subscribed()
        for n in range(5):
            sender.publisher.publish(Ping(n))
        await receiver.wait_for(0, 1, 2, 3, 4)

        server.kill()
        # An outage: publish_async raises, publish() is logged and counted.
        with pytest.raises(redis.ConnectionError):
            await sender.publish_async(99)
        sender.publisher.publish(Ping(98))
        await sender.broker.flush()
        assert sender.broker.stats().publish_errors == 2
        await eventually(lambda: "connection lost" in caplog.text)

        await asyncio.to_thread(server.start)
        await eventually(lambda: receiver.broker.stats().reconnects == 1)
        # No new subscription: the listener restored the channel by itself,
        # and the writer opened a new connection by itself.
        await receiver.broker.wait_until_subscribed()
        for n in range(100, 150):
            sender.publisher.publish(Ping(n))
        await sender.publish_async(150)
        await receiver.wait_for(*range(100, 151))
        assert receiver.received == [*range(5), *range(100, 151)]
        assert "re-subscribed 1 channel(s)" in caplog.text
        assert "not sent to Redis (ConnectionError" in caplog.text
        await sender.broker.aclose()
        await receiver.broker.aclose()

    run(scenario)


def test_a_killed_pubsub_connection_is_restored(server: PrivateRedis) -> None:
    async def scenario() -> None:
        node = Node(server.url)
        node.listen()
        await node.broker.wait_until_subscribed()
        await node.publish_async(1)
        await node.wait_for(1)
        admin = server.client()
        try:
            assert admin.client_kill_filter(_type="pubsub") == 1
        finally:
            admin.close()
        await eventually(lambda: node.broker.stats().reconnects == 1)
        await node.broker.wait_until_subscribed()
        await node.publish_async(2)
        await node.wait_for(2)
        await node.broker.aclose()

    run(scenario)


def test_a_broker_started_while_redis_is_down_catches_up(
    server: PrivateRedis,
) -> None:
    server.kill()

    async def scenario() -> None:
        node = Node(server.url)
        node.listen()
        with pytest.raises(TimeoutError, match="last connection error"):
            await node.broker.wait_until_subscribed(0.5)
        await asyncio.to_thread(server.start)
        await eventually(lambda: node.broker.stats().connected)
        await node.broker.wait_until_subscribed()
        await node.publish_async(1)
        await node.wait_for(1)
        await node.broker.aclose()

    run(scenario)


def test_a_stalled_server_times_out_and_cancellation_leaves_the_connection_usable(
    server: PrivateRedis,
) -> None:
    async def scenario() -> None:
        node = Node(server.url, publish_timeout=1.0)
        node.listen()
        await node.broker.wait_until_subscribed()
        await node.publish_async(1)

        server.pause()
        with pytest.raises(redis.TimeoutError):
            await node.publish_async(2)
        # Cancel a publish_async that is on the wire, waiting for the reply.
        task = asyncio.ensure_future(node.publish_async(3))
        await eventually(lambda: node.broker.queued == 0)
        assert not task.done()  # the server is paused: no reply can come
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.resume()

        await node.publish_async(4)
        await node.wait_for(4)
        assert 1 in node.received
        assert node.broker.stats().publish_errors >= 1
        await node.broker.aclose()

    run(scenario)


def test_the_writer_queue_is_bounded_while_redis_does_not_answer(
    server: PrivateRedis,
) -> None:
    async def scenario() -> None:
        node = Node(server.url, max_queued=10, publish_timeout=30.0)
        node.listen()
        await node.broker.wait_until_subscribed()
        server.pause()
        node.publisher.publish(Ping(0))
        await eventually(lambda: node.broker.queued == 0)  # on the wire
        # max_queued counts the event on its way too (it did not: issue 16).
        for n in range(1, 10):
            node.publisher.publish(Ping(n))
        with pytest.raises(PublishQueueFull):
            node.publisher.publish(Ping(10))
        assert node.broker.queued == 9
        # publish_async waits for room instead of failing.
        waiting = asyncio.ensure_future(node.publish_async(12))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        server.resume()
        await waiting
        await node.wait_for(*range(10), 12)
        assert node.received == [*range(10), 12]
        assert node.broker.stats().publish_errors == 1
        await node.broker.aclose()

    run(scenario)


def test_a_silent_connection_is_found_by_the_health_check(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")

    async def scenario() -> None:
        node = Node(
            server.url,
            health_check_interval=0.3,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )
        node.listen()
        await node.broker.wait_until_subscribed()
        server.pause()
        await eventually(lambda: "no reply to PING" in caplog.text)
        server.resume()
        await eventually(lambda: node.broker.stats().reconnects >= 1)
        await node.broker.wait_until_subscribed()
        await node.publish_async(1)
        await node.wait_for(1)
        await node.broker.aclose()

    run(scenario)


def test_aclose_while_the_server_is_down(server: PrivateRedis) -> None:
    async def scenario() -> None:
        node = Node(server.url)
        node.listen()
        await node.broker.wait_until_subscribed()
        server.kill()
        node.publisher.publish(Ping(1))
        await node.broker.aclose()  # flushes (the batch fails), returns
        assert node.broker.stats().publish_errors == 1
        remaining = [
            t
            for t in asyncio.all_tasks()
            if t.get_name().startswith("eventspype-redis")
        ]
        assert remaining == []

    run(scenario)


def test_batches_do_not_wait_for_earlier_replies_up_to_a_bound(
    server: PrivateRedis,
) -> None:
    from eventspype.broker.redis.pubsub.aio_writer import _MAX_IN_FLIGHT

    async def scenario() -> None:
        node = Node(server.url, publish_timeout=30.0)
        node.listen()
        await node.broker.wait_until_subscribed()
        await node.publish_async(0)  # connected
        server.pause()
        # One batch per loop turn; none can be answered while paused, yet
        # each is written without waiting for the replies of the others...
        for n in range(1, _MAX_IN_FLIGHT + 1):
            node.publisher.publish(Ping(n))
            await eventually(lambda: node.broker.queued == 0)
        # ...up to the bound: then the writer waits and events stay queued.
        node.publisher.publish(Ping(_MAX_IN_FLIGHT + 1))
        await asyncio.sleep(0.1)
        assert node.broker.queued == 1
        server.resume()
        await node.broker.flush()
        await node.wait_for(*range(_MAX_IN_FLIGHT + 2))
        assert node.received == list(range(_MAX_IN_FLIGHT + 2))
        assert node.broker.stats().published == _MAX_IN_FLIGHT + 2
        await node.broker.aclose()

    run(scenario)


def test_a_kill_fails_every_batch_awaiting_replies_then_publishing_recovers(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")

    async def scenario() -> None:
        receiver, sender = Node(server.url), Node(server.url, publish_timeout=30.0)
        receiver.listen()
        await receiver.broker.wait_until_subscribed()
        await sender.publish_async(0)
        server.pause()
        waiting = [asyncio.ensure_future(sender.publish_async(n)) for n in (1, 2)]
        await eventually(lambda: sender.broker.queued == 0)
        sender.publisher.publish(Ping(3))
        await eventually(lambda: sender.broker.queued == 0)
        server.kill()  # SIGKILL reaches a stopped process: nothing was answered
        for task in waiting:
            with pytest.raises(redis.ConnectionError):
                await task
        await sender.broker.flush()
        await asyncio.to_thread(server.start)
        await eventually(lambda: receiver.broker.stats().reconnects == 1)
        await receiver.broker.wait_until_subscribed()
        await sender.publish_async(4)
        await receiver.wait_for(4)
        assert 0 in receiver.received
        assert not {1, 2, 3} & set(receiver.received)
        stats = sender.broker.stats()
        assert (stats.published, stats.publish_errors) == (2, 3)
        await sender.broker.aclose()
        await receiver.broker.aclose()

    run(scenario)


def test_a_refused_channel_concerns_that_channel_only(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACL user that may use only ``afaults:OK*``: the refused channel is
    reported, the allowed one delivers, the connection is never dropped."""
    from eventspype.broker.redis import SubscriptionRefused

    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    admin = server.client()
    admin.execute_command(
        "ACL", "SETUSER", "u", "on", ">pw", "resetchannels", "&afaults:OK*",
        "~*", "+@all",
    )  # fmt: skip
    admin.close()

    async def scenario() -> None:
        node = Node(f"redis://u:pw@127.0.0.1:{server.port}/0")
        allowed = EventPublisher(EventPublication("ok", Ping), broker=node.broker)
        forbidden = EventPublisher(EventPublication("no", Ping), broker=node.broker)
        got: list[int] = []
        subscriber = FunctionalEventSubscriber(
            lambda event: got.append(event.n), with_event_info=False
        )
        allowed.add_subscriber(subscriber)
        forbidden.add_subscriber(subscriber)
        with pytest.raises(SubscriptionRefused, match="afaults:NO"):
            await node.broker.wait_until_subscribed()
        stats = node.broker.stats()
        assert stats.subscribe_refusals == 1
        assert list(stats.refused_channels) == ["afaults:NO"]
        await node.broker.publish_async(allowed.channel, Ping(1), "OK", None)
        await eventually(lambda: got == [1])
        assert node.broker.stats().reconnects == 0
        assert "connection lost" not in caplog.text
        await node.broker.aclose()

    run(scenario)


def test_an_idle_writer_connection_closed_by_the_server_is_not_written_into(
    server: PrivateRedis,
) -> None:
    # The idle writer writes publish() at once to its connection; one the
    # server closed must be replaced first, not fail the event.
    async def scenario() -> None:
        receiver, sender = Node(server.url), Node(server.url)
        receiver.listen()
        await receiver.broker.wait_until_subscribed()
        await sender.publish_async(0)
        admin = server.client()
        try:
            assert admin.client_kill_filter(_type="normal") >= 1  # the writer's
        finally:
            admin.close()
        connection: Any = sender.broker._writer._sender._connection
        await eventually(lambda: connection._reader.at_eof())  # the loop saw it
        sender.publisher.publish(Ping(1))
        await sender.publish_async(2)
        await receiver.wait_for(0, 1, 2)
        stats = sender.broker.stats()
        assert (stats.published, stats.publish_errors) == (3, 0)
        await sender.broker.aclose()
        await receiver.broker.aclose()

    run(scenario)
