"""AsyncRedisBroker: delivery, wire format, checks and lifecycle.

Every test that takes ``make_client`` runs on fakeredis's asyncio client and on
the real server (skipped without one, unless ``EVENTSPYPE_REQUIRE_REDIS=1``).
Scenarios run in ``asyncio.run`` with an overall timeout.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from _redis_support import (
    REDIS_URL,
    OrderCancelled,
    OrderPlaced,
    Point,
    eventually,
    publisher_for,
    require_real_redis,
    run_bounded,
    unique_prefix,
)

from eventspype import EventSubscriber, FunctionalEventSubscriber
from eventspype.broker.redis import AsyncRedisBroker, RedisBroker
from eventspype.broker.redis._wire.envelope import encode

ClientFactory = Callable[..., redis.asyncio.Redis]
SCENARIO_TIMEOUT = 30.0


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``scenario()`` in a new loop; fail instead of hanging."""
    return run_bounded(scenario, SCENARIO_TIMEOUT)


async def close_client(client: Any) -> None:
    """``aclose()``, or ``close()`` before redis-py 5.0.1 added it."""
    await (getattr(client, "aclose", None) or client.close)()


@pytest.fixture(params=["fake", "real"])
def make_client(request: pytest.FixtureRequest) -> ClientFactory:
    """Makes asyncio clients, all on one server (call inside the scenario)."""
    if request.param == "real":
        require_real_redis()
    server = fakeredis.FakeServer()

    def make(**options: Any) -> redis.asyncio.Redis:
        if request.param == "fake":
            return fakeredis.FakeAsyncRedis(server=server, **options)
        options.setdefault("socket_timeout", 5)
        options.setdefault("socket_connect_timeout", 2)
        return redis.asyncio.Redis.from_url(REDIS_URL, **options)

    make.server = server  # type: ignore[attr-defined]
    make.backend = request.param  # type: ignore[attr-defined]
    return make


@asynccontextmanager
async def open_broker(
    make_client: ClientFactory, prefix: str, **options: Any
) -> AsyncIterator[AsyncRedisBroker]:
    """A broker (test classes registered) on a new client; both closed after."""
    client = make_client()
    broker = AsyncRedisBroker(client, channel_prefix=prefix, **options)
    broker.register_event_classes(OrderPlaced, OrderCancelled, Point)
    try:
        yield broker
    finally:
        await broker.aclose()
        await close_client(client)


class Inbox:
    """A synchronous subscriber that records what it gets and on which thread."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, Any, Any]] = []
        self.threads: set[int] = set()
        self.subscriber = FunctionalEventSubscriber(self._record)

    def _record(self, event: Any, tag: Any, caller: Any) -> None:
        self.threads.add(threading.get_ident())
        self.items.append((event, tag, caller))

    @property
    def events(self) -> list[Any]:
        return [item[0] for item in self.items]

    async def wait_for(self, count: int) -> list[Any]:
        await eventually(lambda: len(self.items) >= count)
        return self.events


class CoroutineSubscriber(EventSubscriber):
    """The least a coroutine subscriber does: ``call()`` schedules the handler."""

    def __init__(self, handler: Callable[[Any], Awaitable[None]]) -> None:
        self._loop = asyncio.get_running_loop()
        self._handler = handler
        self.tasks: list[asyncio.Task[None]] = []

    def call(self, event: Any, event_tag: Any, caller: Any) -> None:
        self.tasks.append(self._loop.create_task(self._handler(event)))  # type: ignore[arg-type]


# -- delivery ------------


def test_publish_and_publish_async_reach_sync_subscribers_on_the_loop(
    make_client: ClientFactory,
) -> None:
    async def scenario() -> None:
        prefix = unique_prefix()
        async with (
            open_broker(make_client, prefix) as sender,
            open_broker(make_client, prefix) as receiver,
        ):
            inbox = Inbox()
            publisher_for(receiver, "orders", OrderPlaced).add_subscriber(
                inbox.subscriber
            )
            await receiver.wait_until_subscribed()
            outgoing = publisher_for(sender, "orders", OrderPlaced)
            outgoing.publish(OrderPlaced(1, 1.5))
            await sender.publish_async("ORDERS", OrderPlaced(2, 2.5), "ORDERS", None)
            assert await inbox.wait_for(2) == [OrderPlaced(1, 1.5), OrderPlaced(2, 2.5)]
            assert {tag for _, tag, _ in inbox.items} == {"ORDERS"}
            assert all(caller is receiver for _, _, caller in inbox.items)
            assert inbox.threads == {threading.get_ident()}
            assert sender.stats().published == 2
            assert receiver.stats().delivered == 2

    run(scenario)


def test_coroutine_subscriber_is_scheduled_not_awaited(
    make_client: ClientFactory,
) -> None:
    async def scenario() -> None:
        async with open_broker(make_client, unique_prefix()) as broker:
            handled: list[Any] = []
            release = asyncio.Event()

            async def handler(event: Any) -> None:
                await release.wait()  # the listener must not wait for this
                handled.append(event)

            subscriber = CoroutineSubscriber(handler)
            inbox = Inbox()
            publisher = publisher_for(broker, "points", Point)
            publisher.add_subscriber(subscriber)
            publisher.add_subscriber(inbox.subscriber)
            await broker.wait_until_subscribed()
            publisher.publish(Point(1, 2))
            publisher.publish(Point(3, 4))
            # Both reached the sync subscriber while the coroutines still wait.
            assert await inbox.wait_for(2) == [Point(1, 2), Point(3, 4)]
            assert handled == []
            release.set()
            await asyncio.gather(*subscriber.tasks)
            assert handled == [Point(1, 2), Point(3, 4)]

    run(scenario)


def test_a_raising_subscriber_is_isolated_and_counted(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(event: Any) -> None:
        raise RuntimeError("boom")

    async def scenario() -> None:
        async with open_broker(make_client, unique_prefix()) as broker:
            bad = FunctionalEventSubscriber(explode, with_event_info=False)
            inbox = Inbox()
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(bad)
            publisher.add_subscriber(inbox.subscriber)
            await broker.wait_until_subscribed()
            publisher.publish(OrderPlaced(1, 1.0))
            publisher.publish(OrderPlaced(2, 2.0))
            assert await inbox.wait_for(2) == [OrderPlaced(1, 1.0), OrderPlaced(2, 2.0)]
            assert broker.stats().subscriber_errors == 2

    with caplog.at_level(logging.ERROR):
        run(scenario)
    assert "boom" in caplog.text


def test_publish_from_another_thread(make_client: ClientFactory) -> None:
    async def scenario() -> None:
        async with open_broker(make_client, unique_prefix()) as broker:
            inbox = Inbox()
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(inbox.subscriber)
            await broker.wait_until_subscribed()
            await asyncio.to_thread(publisher.publish, OrderPlaced(7, 7.0))
            assert await inbox.wait_for(1) == [OrderPlaced(7, 7.0)]
            # Delivered on the loop, not on the publishing thread.
            assert inbox.threads == {threading.get_ident()}

    run(scenario)


# -- wire format ------------


def test_wire_format_is_the_sync_brokers(make_client: ClientFactory) -> None:
    async def scenario() -> None:
        prefix = unique_prefix()
        raw = make_client()
        pubsub = raw.pubsub()
        await pubsub.subscribe(f"{prefix}ORDERS")
        async with open_broker(make_client, prefix) as broker:
            await broker.publish_async("ORDERS", OrderPlaced(5, 9.25), "ORDERS", None)
            message = None
            while message is None:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
        await close_client(pubsub)
        await close_client(raw)
        assert message["data"] == encode(
            "ORDERS", OrderPlaced, b'{"order_id":5,"amount":9.25}'
        )

    run(scenario)


def test_sync_and_async_brokers_talk_both_ways() -> None:
    """RedisBroker and AsyncRedisBroker on one fakeredis server, both directions
    (the real-server and cross-process versions are integration tests)."""
    server = fakeredis.FakeServer()
    prefix = unique_prefix()
    sync_broker = RedisBroker(fakeredis.FakeRedis(server=server), channel_prefix=prefix)
    sync_broker.register_event_class(OrderPlaced)
    sync_inbox: list[Any] = []
    sync_done = threading.Event()

    def on_sync(event: Any) -> None:
        sync_inbox.append(event)
        sync_done.set()

    sync_subscriber = FunctionalEventSubscriber(on_sync, with_event_info=False)
    publisher_for(sync_broker, "to_sync", OrderPlaced).add_subscriber(sync_subscriber)

    async def scenario() -> None:
        client = fakeredis.FakeAsyncRedis(server=server)
        async with AsyncRedisBroker(client, channel_prefix=prefix) as broker:
            broker.register_event_class(OrderPlaced)
            inbox = Inbox()
            publisher_for(broker, "to_async", OrderPlaced).add_subscriber(
                inbox.subscriber
            )
            await broker.wait_until_subscribed()
            await asyncio.to_thread(
                publisher_for(sync_broker, "to_async", OrderPlaced).publish,
                OrderPlaced(1, 1.0),
            )
            assert await inbox.wait_for(1) == [OrderPlaced(1, 1.0)]
            await publisher_for(broker, "to_sync", OrderPlaced).broker.publish_async(  # type: ignore[union-attr]
                "TO_SYNC", OrderPlaced(2, 2.0), "TO_SYNC", None
            )
            assert await asyncio.to_thread(sync_done.wait, 10)
        await close_client(client)

    try:
        run(scenario)
    finally:
        sync_broker.close()
    assert sync_inbox == [OrderPlaced(2, 2.0)]


# -- the checks of received messages ------------


def test_bad_messages_are_dropped_by_reason_and_the_listener_goes_on(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    class Unregistered:
        pass

    async def scenario() -> None:
        prefix = unique_prefix()
        raw = make_client()
        async with open_broker(make_client, prefix, max_message_bytes=500) as broker:
            inbox = Inbox()
            publisher_for(broker, "orders", OrderPlaced).add_subscriber(
                inbox.subscriber
            )
            await broker.wait_until_subscribed()
            channel = f"{prefix}ORDERS"
            await raw.publish(channel, b"not json")
            await raw.publish(channel, b'{"event_tag": "ORDERS"}')
            await raw.publish(channel, b"x" * 501)
            await raw.publish(channel, encode("ORDERS", Unregistered, b"{}"))
            await raw.publish(channel, encode("ORDERS", OrderPlaced, b'{"x": 1}'))
            await raw.publish(
                channel, encode("ORDERS", OrderPlaced, b'{"order_id":1,"amount":2.0}')
            )
            assert await inbox.wait_for(1) == [OrderPlaced(1, 2.0)]
            stats = broker.stats()
            assert stats.delivered == 1
            assert stats.dropped_total == 5
            for reason in (
                "invalid_json",
                "invalid_envelope",
                "oversized",
                "unregistered_class",
                "invalid_payload",
            ):
                assert stats.dropped[reason] == 1, reason
        await close_client(raw)

    with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
        run(scenario)
    assert "Dropped a message" in caplog.text


# -- subscriptions ------------


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_unsubscribe_and_collection_end_the_redis_subscription(
    make_client: ClientFactory,
) -> None:
    async def numsub(client: redis.asyncio.Redis, channel: str) -> int:
        return int(dict(await client.pubsub_numsub(channel)).get(channel.encode(), 0))

    async def scenario() -> None:
        prefix = unique_prefix()
        admin = make_client()
        async with open_broker(make_client, prefix) as broker:
            inbox = Inbox()
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(inbox.subscriber)
            await broker.wait_until_subscribed()
            assert await numsub(admin, f"{prefix}ORDERS") == 1
            publisher.remove_subscriber(inbox.subscriber)
            for _ in range(200):
                if await numsub(admin, f"{prefix}ORDERS") == 0:
                    break
                await asyncio.sleep(0.01)
            assert await numsub(admin, f"{prefix}ORDERS") == 0

            # A collected subscriber ends its channel's subscription too.
            temporary = Inbox()
            publisher_for(broker, "gone", OrderPlaced).add_subscriber(
                temporary.subscriber
            )
            await broker.wait_until_subscribed()
            assert await numsub(admin, f"{prefix}GONE") == 1
            del temporary
            gc.collect()
            for _ in range(200):
                if await numsub(admin, f"{prefix}GONE") == 0:
                    break
                await asyncio.sleep(0.01)
            assert await numsub(admin, f"{prefix}GONE") == 0
        await close_client(admin)

    run(scenario)


def test_publication_checks_per_subscriber_as_in_redis_broker(
    make_client: ClientFactory,
) -> None:
    """Through a publisher: only the publication's class; directly: the channel."""
    from eventspype import EventPublication

    async def scenario() -> None:
        prefix = unique_prefix()
        raw = make_client()
        async with open_broker(make_client, prefix) as broker:
            through_publisher, direct = Inbox(), Inbox()
            publication = EventPublication("orders", OrderPlaced)
            broker.subscribe_publication(publication, through_publisher.subscriber)
            broker.subscribe("ORDERS", direct.subscriber)
            await broker.wait_until_subscribed()
            channel = f"{prefix}ORDERS"
            placed = b'{"order_id":1,"amount":2.0}'
            await raw.publish(
                channel, encode("ORDERS", OrderCancelled, b'{"order_id":9}')
            )
            await raw.publish(channel, encode("OTHER", OrderPlaced, placed))
            await raw.publish(channel, encode("ORDERS", OrderPlaced, placed))
            assert await direct.wait_for(2) == [OrderCancelled(9), OrderPlaced(1, 2.0)]
            assert await through_publisher.wait_for(1) == [OrderPlaced(1, 2.0)]
            stats = broker.stats()
            assert stats.dropped["class_mismatch"] == 1  # for one subscriber
            assert stats.dropped["tag_mismatch"] == 1  # the whole message
            assert stats.delivered == 2

            broker.unsubscribe_publication(publication, through_publisher.subscriber)
            await broker.publish_async("ORDERS", OrderPlaced(3, 3.0), "ORDERS", None)
            assert (await direct.wait_for(3))[-1] == OrderPlaced(3, 3.0)
            assert through_publisher.events == [OrderPlaced(1, 2.0)]
        await close_client(raw)

    run(scenario)


def test_stats_report_the_connection(make_client: ClientFactory) -> None:
    async def scenario() -> None:
        async with open_broker(make_client, unique_prefix()) as broker:
            assert not broker.stats().connected
            inbox = Inbox()
            publisher_for(broker, "orders", OrderPlaced).add_subscriber(
                inbox.subscriber
            )
            await broker.wait_until_subscribed()
            stats = broker.stats()
            assert stats.connected
            assert stats.subscribed == 1
            assert stats.connected_since is not None
            assert stats.last_connection_error is None

    run(scenario)


# -- lifecycle ------------


def test_aclose_flushes_stops_tasks_and_refuses_more(
    make_client: ClientFactory,
) -> None:
    async def scenario() -> None:
        prefix = unique_prefix()
        async with open_broker(make_client, prefix) as receiver:
            inbox = Inbox()
            publisher_for(receiver, "orders", OrderPlaced).add_subscriber(
                inbox.subscriber
            )
            await receiver.wait_until_subscribed()
            client = make_client()
            sender = AsyncRedisBroker(client, channel_prefix=prefix)
            outgoing = publisher_for(sender, "orders", OrderPlaced)
            for index in range(100):
                outgoing.publish(OrderPlaced(index, 0.5))
            assert sender.queued == 100  # the loop has not turned yet
            await sender.aclose()
            assert sender.queued == 0
            assert sender.stats().published == 100
            assert await inbox.wait_for(100) == [
                OrderPlaced(i, 0.5) for i in range(100)
            ]
            with pytest.raises(RuntimeError, match="closed"):
                outgoing.publish(OrderPlaced(0, 0.0))
            with pytest.raises(RuntimeError, match="closed"):
                await sender.publish_async("ORDERS", OrderPlaced(0, 0.0), "ORDERS", 0)
            with pytest.raises(RuntimeError, match="closed"):
                sender.subscribe("ORDERS", inbox.subscriber)
            await sender.aclose()  # idempotent
            assert sender.closed
            await close_client(client)
        mine = [
            t
            for t in asyncio.all_tasks()
            if t.get_name().startswith("eventspype-redis")
        ]
        assert mine == []
        assert not [t for t in threading.enumerate() if "eventspype" in t.name]

    run(scenario)


def test_from_url_closes_every_connection_on_aclose() -> None:
    require_real_redis()
    name = unique_prefix().replace(":", "-").rstrip("-")

    async def connections(admin: redis.asyncio.Redis) -> int:
        return len([c for c in await admin.client_list() if c["name"] == name])

    async def scenario() -> None:
        admin = redis.asyncio.Redis.from_url(REDIS_URL)
        broker = AsyncRedisBroker.from_url(
            REDIS_URL,
            channel_prefix=unique_prefix(),
            client_options={"client_name": name},
        )
        broker.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher = publisher_for(broker, "orders", OrderPlaced)
        publisher.add_subscriber(inbox.subscriber)
        await broker.wait_until_subscribed()
        await broker.publish_async("ORDERS", OrderPlaced(1, 1.0), "ORDERS", None)
        await broker._redis.ping()  # the client's own pool is used too
        assert await inbox.wait_for(1) == [OrderPlaced(1, 1.0)]
        assert await connections(admin) == 3  # listener, writer, client
        await broker.aclose()
        for _ in range(100):
            if await connections(admin) == 0:
                break
            await asyncio.sleep(0.02)
        assert await connections(admin) == 0
        await close_client(admin)

    run(scenario)


def test_needs_a_loop_or_a_running_one() -> None:
    client = fakeredis.FakeAsyncRedis()
    with pytest.raises(RuntimeError):
        AsyncRedisBroker(client)
    loop = asyncio.new_event_loop()
    try:
        broker = AsyncRedisBroker(client, loop=loop)
        assert broker.loop is loop
        loop.run_until_complete(broker.aclose())
    finally:
        loop.close()


def test_options_are_checked() -> None:
    async def scenario() -> None:
        client = fakeredis.FakeAsyncRedis()
        for bad in (
            {"max_queued": 0},
            {"publish_timeout": 0},
            {"health_check_interval": 0},
            {"reconnect_delay": (0, 1)},
            {"max_message_bytes": 0},
        ):
            with pytest.raises(ValueError, match=next(iter(bad))):
                AsyncRedisBroker(client, **bad)

    run(scenario)


def test_wait_until_subscribed_raises_while_redis_is_down_then_catches_up() -> None:
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        server.connected = False
        client = fakeredis.FakeAsyncRedis(server=server)
        broker = AsyncRedisBroker(
            client, channel_prefix=unique_prefix(), reconnect_delay=(0.01, 0.05)
        )
        broker.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher = publisher_for(broker, "orders", OrderPlaced)
        publisher.add_subscriber(inbox.subscriber)
        with pytest.raises(TimeoutError, match=r"ORDERS.*last connection error"):
            await broker.wait_until_subscribed(0.2)
        server.connected = True
        await broker.wait_until_subscribed()
        publisher.publish(OrderPlaced(1, 1.0))
        assert await inbox.wait_for(1) == [OrderPlaced(1, 1.0)]
        await broker.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await broker.wait_until_subscribed()

    run(scenario)


def test_core_coroutine_subscriber_and_publisher_publish_async(
    make_client: ClientFactory,
) -> None:
    """Core's AsyncFunctionalEventSubscriber behind the broker, and
    ``await publisher.publish_async()`` awaiting the broker's publish_async."""
    from eventspype import AsyncFunctionalEventSubscriber

    async def scenario() -> None:
        prefix = unique_prefix()
        async with (
            open_broker(make_client, prefix) as sender,
            open_broker(make_client, prefix) as receiver,
        ):
            handled: list[tuple[Any, Any, Any]] = []
            started = asyncio.Event()
            release = asyncio.Event()

            async def handle(event: Any, tag: Any, caller: Any) -> None:
                started.set()
                await release.wait()
                handled.append((event, tag, caller))

            subscriber = AsyncFunctionalEventSubscriber(handle)
            inbox = Inbox()
            incoming = publisher_for(receiver, "orders", OrderPlaced)
            incoming.add_subscriber(subscriber)
            incoming.add_subscriber(inbox.subscriber)
            await receiver.wait_until_subscribed()

            outgoing = publisher_for(sender, "orders", OrderPlaced)
            await outgoing.publish_async(OrderPlaced(1, 1.0))
            assert sender.stats().published == 1  # Redis had it on return
            await outgoing.publish_async(OrderPlaced(2, 2.0))
            # The listener went on while the first handler is still waiting.
            assert await inbox.wait_for(2) == [OrderPlaced(1, 1.0), OrderPlaced(2, 2.0)]
            await started.wait()
            assert handled == []
            release.set()
            await subscriber.drain()
            assert [event for event, _, _ in handled] == [
                OrderPlaced(1, 1.0),
                OrderPlaced(2, 2.0),
            ]
            assert all(caller is receiver for _, _, caller in handled)
            assert {tag for _, tag, _ in handled} == {"ORDERS"}

    run(scenario)


def test_publisher_publish_async_raises_on_an_outage() -> None:
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        client = fakeredis.FakeAsyncRedis(server=server)
        async with AsyncRedisBroker(client, channel_prefix=unique_prefix()) as broker:
            publisher = publisher_for(broker, "orders", OrderPlaced)
            server.connected = False
            with pytest.raises(redis.ConnectionError):
                await publisher.publish_async(OrderPlaced(1, 1.0))
            server.connected = True
            await publisher.publish_async(OrderPlaced(2, 1.0))
            assert broker.stats().published == 1
            assert broker.stats().publish_errors == 1

    run(scenario)
