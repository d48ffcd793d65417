"""AsyncRedisStreamBroker: the asyncio driver of the Streams protocol core.

On the real server only (fakeredis accepts Streams commands Redis 7.0 refuses;
skipped without a server unless ``EVENTSPYPE_REQUIRE_REDIS=1``), each test
with a prefix of its own, deleted afterwards. Scenarios run in ``asyncio.run``
with an overall timeout. The waits are generous and nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
import redis.asyncio
from _redis_support import (
    REDIS_URL,
    OrderCancelled,
    OrderPlaced,
    eventually,
    forged,
    publisher_for,
    require_real_redis,
    run_bounded,
)

from eventspype import (
    AsyncFunctionalEventSubscriber,
    Delivery,
    FunctionalEventSubscriber,
    current_delivery,
)
from eventspype.broker.redis import AsyncRedisStreamBroker, RedisStreamBroker

SCENARIO_TIMEOUT = 60.0


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return run_bounded(scenario, SCENARIO_TIMEOUT)


@pytest.fixture
def prefix(real: tuple[redis.Redis, str]) -> str:
    """A unique key prefix on the real server (its keys deleted after)."""
    return real[1]


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    """A synchronous client to look at the server with (never from the loop
    while the broker must make progress: it blocks)."""
    require_real_redis()
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    yield client
    client.close()


@asynccontextmanager
async def open_broker(
    prefix: str, **options: Any
) -> AsyncIterator[AsyncRedisStreamBroker]:
    options.setdefault("claim_idle", 1.0)
    options.setdefault("group", "g")
    async with AsyncRedisStreamBroker.from_url(
        REDIS_URL, channel_prefix=prefix, **options
    ) as broker:
        broker.register_event_classes(OrderPlaced, OrderCancelled)
        yield broker


async def pending(prefix: str, channel: str = "ORDERS", group: str = "g") -> int:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        return int((await client.xpending(f"{prefix}{{{channel}}}", group))["pending"])
    finally:
        await (getattr(client, "aclose", None) or client.close)()


def test_the_options_are_those_of_the_threaded_broker() -> None:
    ours = inspect.signature(AsyncRedisStreamBroker.__init__).parameters
    theirs = inspect.signature(RedisStreamBroker.__init__).parameters
    for name, parameter in theirs.items():
        if name in ("self", "redis_client"):
            continue
        assert name in ours, name
        assert ours[name].default == parameter.default, name
        assert ours[name].kind == parameter.kind, name


def test_publish_async_adds_the_same_entry_as_the_threaded_broker(
    prefix: str, admin: redis.Redis
) -> None:
    async def scenario() -> None:
        async with open_broker(prefix) as broker:
            await publisher_for(broker, "orders", OrderPlaced).publish_async(
                OrderPlaced(1, 9.5)
            )
            publisher_for(broker, "orders", OrderPlaced).publish(OrderPlaced(2, 1.0))
            await broker.flush()

    run(scenario)
    with RedisStreamBroker.from_url(REDIS_URL, channel_prefix=prefix) as threaded:
        publisher_for(threaded, "orders", OrderPlaced).publish(OrderPlaced(1, 9.5))
    entries = admin.xrange(f"{prefix}{{ORDERS}}")
    assert [list(fields) for _, fields in entries] == [[b"event"]] * 3
    first, second, third = (fields[b"event"] for _, fields in entries)
    assert first == third  # byte for byte what the threaded broker writes
    assert first != second


def test_a_coroutine_subscriber_is_awaited_before_the_acknowledgement(
    prefix: str,
) -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        started: list[Delivery | None] = []

        async def handle(event: OrderPlaced) -> None:
            started.append(current_delivery())
            await release.wait()

        async with open_broker(prefix) as broker:
            subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(subscriber)
            await broker.wait_until_subscribed()
            await publisher.publish_async(OrderPlaced(7, 0.0))
            await eventually(lambda: started)
            assert await pending(prefix) == 1  # running: held, not acknowledged
            release.set()
            await eventually(lambda: broker.stats().acknowledged == 1)
            assert await pending(prefix) == 0
        [delivery] = started
        assert delivery is not None
        assert delivery.channel == "ORDERS"
        assert delivery.system == "redis"
        assert delivery.message_id is not None
        assert delivery.delivery_count == 1
        assert (delivery.group, delivery.consumer) == ("g", broker.consumer)

    run(scenario)


def test_coroutines_run_up_to_their_max_concurrency_and_no_further(
    prefix: str,
) -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        running: list[int] = []
        peak = 0

        async def handle(event: OrderPlaced) -> None:
            nonlocal peak
            running.append(event.order_id)
            peak = max(peak, len(running))
            await release.wait()
            running.remove(event.order_id)

        async with open_broker(prefix, prefetch=20) as broker:
            subscriber = AsyncFunctionalEventSubscriber(
                handle, with_event_info=False, max_concurrency=3
            )
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(subscriber)
            await broker.wait_until_subscribed()
            for index in range(10):
                publisher.publish(OrderPlaced(index, 0.0))
            await eventually(lambda: len(running) == 3)
            await asyncio.sleep(0.2)  # room for a fourth, if it were allowed
            assert len(running) == 3
            assert running == [0, 1, 2]  # started in stream order
            release.set()
            await eventually(lambda: broker.stats().acknowledged == 10)
        assert peak == 3

    run(scenario)


def test_a_failing_coroutine_is_retried_with_a_growing_delivery_count(
    prefix: str,
) -> None:
    async def scenario() -> None:
        counts: list[int] = []
        others: list[int] = []

        async def flaky(event: OrderPlaced) -> None:
            delivery = current_delivery()
            assert delivery is not None
            counts.append(delivery.delivery_count)
            if len(counts) < 3:
                raise RuntimeError("not yet")

        async with open_broker(
            prefix, max_deliveries=5, retry_delay=(0.05, 0.1)
        ) as broker:
            failing = AsyncFunctionalEventSubscriber(flaky, with_event_info=False)
            steady = FunctionalEventSubscriber(
                lambda event: others.append(event.order_id), with_event_info=False
            )
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(failing)
            publisher.add_subscriber(steady)
            await broker.wait_until_subscribed()
            await publisher.publish_async(OrderPlaced(1, 0.0))
            await eventually(lambda: broker.stats().acknowledged == 1)
            stats = broker.stats()
        assert counts == [1, 2, 3]
        assert others == [1]  # a retry calls only who has not succeeded yet
        assert stats.dead_lettered == 0

    run(scenario)


def test_an_always_failing_coroutine_is_dead_lettered(prefix: str) -> None:
    async def scenario() -> None:
        async def broken(event: OrderPlaced) -> None:
            raise ValueError(f"cannot handle order {event.order_id}")

        async with open_broker(
            prefix, max_deliveries=2, retry_delay=(0.05, 0.1)
        ) as broker:
            subscriber = AsyncFunctionalEventSubscriber(broken, with_event_info=False)
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(subscriber)
            await broker.wait_until_subscribed()
            await publisher.publish_async(OrderPlaced(42, 0.0))
            await eventually(lambda: broker.stats().dead_lettered == 1)
            [letter] = await broker.dead_letters("ORDERS")
            assert letter.deliveries == 2
            assert "cannot handle order 42" in letter.error
            await eventually(lambda: broker.stats().acknowledged >= 1)
            assert await pending(prefix) == 0

    run(scenario)


def test_an_entry_the_checks_refuse_is_dead_lettered_not_delivered(
    prefix: str, admin: redis.Redis
) -> None:
    async def scenario() -> None:
        received: list[Any] = []

        async def handle(event: Any) -> None:
            received.append(event)

        async with open_broker(prefix) as broker:
            subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
            broker.subscribe("ORDERS", subscriber)
            await broker.wait_until_subscribed()
            await asyncio.to_thread(
                admin.xadd,
                f"{prefix}{{ORDERS}}",
                {"event": forged("ORDERS", threading.Thread, {})},
            )
            await eventually(lambda: broker.stats().dead_lettered == 1)
            assert received == []
            assert broker.stats().dropped["unregistered_class"] == 1

    run(scenario)


def test_two_groups_each_receive_every_event(prefix: str) -> None:
    async def scenario() -> None:
        seen: dict[str, list[int]] = {"a": [], "b": []}
        async with (
            open_broker(prefix, group="a") as first,
            open_broker(prefix, group="b") as second,
        ):
            keep = []
            for broker, group in ((first, "a"), (second, "b")):

                async def handle(event: OrderPlaced, group: str = group) -> None:
                    seen[group].append(event.order_id)

                subscriber = AsyncFunctionalEventSubscriber(
                    handle, with_event_info=False
                )
                keep.append(subscriber)
                broker.subscribe("ORDERS", subscriber)
                await broker.wait_until_subscribed()
            publisher = publisher_for(first, "orders", OrderPlaced)
            for index in range(50):
                publisher.publish(OrderPlaced(index, 0.0))
            await eventually(lambda: len(seen["a"]) == len(seen["b"]) == 50)
        assert seen["a"] == seen["b"] == list(range(50))

    run(scenario)


def test_publish_is_safe_from_another_thread(prefix: str) -> None:
    async def scenario() -> None:
        got: list[int] = []

        async def handle(event: OrderPlaced) -> None:
            got.append(event.order_id)

        async with open_broker(prefix) as broker:
            subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(subscriber)
            await broker.wait_until_subscribed()

            def from_thread() -> None:
                for index in range(20):
                    publisher.publish(OrderPlaced(index, 0.0))

            await asyncio.to_thread(from_thread)
            await eventually(lambda: len(got) == 20)
        assert got == list(range(20))

    run(scenario)


def test_aclose_is_idempotent_and_refuses_afterwards(prefix: str) -> None:
    async def scenario() -> None:
        broker = AsyncRedisStreamBroker.from_url(REDIS_URL, channel_prefix=prefix)
        subscriber = FunctionalEventSubscriber(
            lambda event: None, with_event_info=False
        )
        broker.subscribe("ORDERS", subscriber)
        await broker.wait_until_subscribed()
        await broker.aclose()
        await broker.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            broker.subscribe("OTHER", subscriber)
        with pytest.raises(RuntimeError, match="closed"):
            await publisher_for(broker, "orders", OrderPlaced).publish_async(
                OrderPlaced(1, 0.0)
            )
        assert not [
            task
            for task in asyncio.all_tasks()
            if "eventspype" in task.get_name() and not task.done()
        ]

    run(scenario)


def test_health_reports_liveness_and_readiness(prefix: str) -> None:
    async def scenario() -> None:
        async with open_broker(prefix) as broker:
            subscriber = FunctionalEventSubscriber(
                lambda event: None, with_event_info=False
            )
            broker.subscribe("ORDERS", subscriber)
            await broker.wait_until_subscribed()
            health = broker.health()
            assert health.live
            assert health.ready
            assert health.connected
            [backlog] = (await broker.backlog()).values()
            assert backlog.exists
            assert (backlog.pending, backlog.dead_letters) == (0, 0)
        assert not broker.health().live

    run(scenario)


def test_aserve_returns_after_a_stop_request_and_drains(prefix: str) -> None:
    async def scenario() -> None:
        handled: list[int] = []

        async def slow(event: OrderPlaced) -> None:
            await asyncio.sleep(0.05)
            handled.append(event.order_id)

        async with open_broker(prefix) as broker:
            subscriber = AsyncFunctionalEventSubscriber(slow, with_event_info=False)
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(subscriber)
            await broker.wait_until_subscribed()
            serving = asyncio.create_task(broker.aserve(drain=5.0))
            await publisher.publish_async(OrderPlaced(1, 0.0))
            await eventually(lambda: handled == [1])
            broker.request_stop()
            await serving
            assert broker.stats().acknowledged == 1
        assert await pending(prefix) == 0

    run(scenario)


def test_a_resp3_client_works_the_same(prefix: str) -> None:
    async def scenario() -> None:
        got: list[int] = []

        async def handle(event: OrderPlaced) -> None:
            got.append(event.order_id)

        async with open_broker(prefix, client_options={"protocol": 3}) as broker:
            subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(subscriber)
            await broker.wait_until_subscribed()
            for index in range(5):
                await publisher.publish_async(OrderPlaced(index, 0.0))
            await eventually(lambda: broker.stats().acknowledged == 5)
        assert got == list(range(5))

    run(scenario)


def test_aclose_leaves_the_group_when_nothing_is_pending(
    prefix: str, admin: redis.Redis
) -> None:
    async def scenario() -> str:
        async with open_broker(prefix) as broker:
            subscriber = FunctionalEventSubscriber(
                lambda event: None, with_event_info=False
            )
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(subscriber)
            await broker.wait_until_subscribed()
            await publisher.publish_async(OrderPlaced(1, 0.0))
            await eventually(lambda: broker.stats().acknowledged == 1)
            return broker.consumer

    name = run(scenario)
    consumers = admin.xinfo_consumers(f"{prefix}{{ORDERS}}", "g")
    assert name.encode() not in [c["name"] for c in consumers]
    assert name not in [c["name"] for c in consumers]


def test_a_connection_the_pool_remade_is_taken_as_an_outage(
    prefix: str, admin: redis.Redis
) -> None:
    # The server closes the consumer's connection while no command is on it
    # (here: from inside a subscriber); redis-py's pool would reconnect it
    # without a word. The driver tells the core, which counts a reconnection
    # and checks its groups and own entries again, as after any outage.
    async def scenario() -> None:
        got: list[int] = []
        async with open_broker(prefix) as broker:

            def handle(event: OrderPlaced) -> None:
                got.append(event.order_id)
                if event.order_id == 0:
                    victim = broker._consumer._client_id
                    admin.client_kill_filter(_id=victim)
                    # Until the socket is closed on our side too (blocking
                    # the loop on purpose: no command may notice it first).
                    while any(c["id"] == victim for c in admin.client_list()):
                        time.sleep(0.01)
                    time.sleep(0.2)

            subscriber = FunctionalEventSubscriber(handle, with_event_info=False)
            publisher = publisher_for(broker, "orders", OrderPlaced)
            publisher.add_subscriber(subscriber)
            await broker.wait_until_subscribed()
            await publisher.publish_async(OrderPlaced(0, 0.0))
            await eventually(lambda: broker.stats().reconnects == 1)
            await publisher.publish_async(OrderPlaced(1, 0.0))
            await eventually(lambda: got[-1:] == [1])
            await eventually(lambda: broker.stats().acknowledged >= 2)

    run(scenario)
