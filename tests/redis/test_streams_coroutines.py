"""RedisStreamBroker with coroutine subscribers: acknowledged once they returned.

Every test runs on fakeredis and on the shared server (see conftest). The
subscriber's loop runs in a thread of the test; its coroutine waits on a gate
the test opens, so "not acknowledged yet" is observed, not timed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from _redis_support import OrderPlaced, publisher_for, wait_until

from eventspype import AsyncFunctionalEventSubscriber, FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker
from eventspype.delivery import Delivery, current_delivery


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


@pytest.fixture
def broker(client: redis.Redis, prefix: str) -> Iterator[RedisStreamBroker]:
    made = RedisStreamBroker(
        client,
        channel_prefix=prefix,
        group="g",
        claim_idle=5.0,
        claim_interval=0.2,
        prefetch=5,
        retry_delay=(0.05, 0.1),
    )
    made.register_event_class(OrderPlaced)
    yield made
    made.close()
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def test_a_coroutine_subscriber_is_acknowledged_after_its_coroutine_returned(
    broker: RedisStreamBroker, loop: asyncio.AbstractEventLoop
) -> None:
    gate = threading.Event()
    handled: list[int] = []

    async def handle(event: Any, tag: Any, caller: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, gate.wait)
        handled.append(event.order_id)

    subscriber = AsyncFunctionalEventSubscriber(handle, loop=loop, max_pending=1)
    broker.subscribe("ORDERS", subscriber)
    publisher = publisher_for(broker, "orders", OrderPlaced)
    for index in range(20):
        publisher.publish(OrderPlaced(index, 0.0))
    # prefetch=5: five entries held, the rest unread; none acknowledged,
    # none dropped by the subscriber's small backlog.
    wait_until(lambda: broker.stats().channels["ORDERS"].pending == 5)
    stats = broker.stats()
    assert stats.acknowledged == 0
    assert stats.channels["ORDERS"].lag == 15 or stats.channels["ORDERS"].lag is None
    assert subscriber.dropped == 0
    gate.set()
    wait_until(lambda: broker.stats().acknowledged == 20)
    assert sorted(handled) == list(range(20))
    assert broker.stats().channels["ORDERS"].pending == 0


def test_a_failing_coroutine_is_retried_and_the_others_are_not_called_again(
    broker: RedisStreamBroker, loop: asyncio.AbstractEventLoop
) -> None:
    calls: list[str] = []

    def steady(event: Any, tag: Any, caller: Any) -> None:
        calls.append("sync")

    async def flaky(event: Any, tag: Any, caller: Any) -> None:
        calls.append("async")
        if calls.count("async") < 3:
            raise RuntimeError("not yet")

    first = FunctionalEventSubscriber(steady)
    second = AsyncFunctionalEventSubscriber(flaky, loop=loop)
    broker.subscribe("ORDERS", first)
    broker.subscribe("ORDERS", second)
    publisher_for(broker, "orders", OrderPlaced).publish(OrderPlaced(1, 0.0))
    wait_until(lambda: broker.stats().acknowledged == 1)
    assert calls == ["sync", "async", "async", "async"]
    assert broker.stats().retried == 2


def test_handlers_see_the_entry_id_and_redis_delivery_count(
    broker: RedisStreamBroker, loop: asyncio.AbstractEventLoop, client: redis.Redis
) -> None:
    seen: list[Delivery | None] = []

    def sync_handler(event: Any, tag: Any, caller: Any) -> None:
        seen.append(current_delivery())
        if len(seen) == 1:
            raise RuntimeError("once")

    async def async_handler(event: Any, tag: Any, caller: Any) -> None:
        seen.append(current_delivery())

    first = FunctionalEventSubscriber(sync_handler)
    second = AsyncFunctionalEventSubscriber(async_handler, loop=loop)
    broker.subscribe("ORDERS", first)
    broker.subscribe("ORDERS", second)
    publisher_for(broker, "orders", OrderPlaced).publish(OrderPlaced(1, 0.0))
    wait_until(lambda: broker.stats().acknowledged == 1)
    ((entry_id, _),) = client.xrange(broker.stream_key("ORDERS"))
    assert all(d is not None for d in seen)
    ids = {d.message_id for d in seen if d is not None}
    assert ids == {entry_id.decode()}
    counts = [d.delivery_count for d in seen if d is not None]
    assert counts == [1, 1, 2]  # sync failed, async ok, then the sync retry
    assert {d.group for d in seen if d is not None} == {"g"}
    assert {d.consumer for d in seen if d is not None} == {broker.consumer}
