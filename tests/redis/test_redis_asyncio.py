"""asyncio subscribers receive events the listener thread delivers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from _redis_support import OrderCancelled, OrderPlaced, publisher_for

from eventspype import (
    AsyncFunctionalEventSubscriber,
    QueueEventSubscriber,
    TrackingEventSubscriber,
)
from eventspype.broker.redis import RedisBroker


def test_tracking_subscriber_wait_for(broker: RedisBroker) -> None:
    publisher = publisher_for(broker, "orders", OrderPlaced)
    tracker = TrackingEventSubscriber()
    publisher.add_subscriber(tracker)

    async def scenario() -> OrderPlaced:
        waiting = asyncio.ensure_future(tracker.wait_for(OrderPlaced, 10))
        await asyncio.sleep(0)  # the waiter is registered before publishing
        # Publish from a worker thread: the event comes back on the listener
        # thread, never on the loop's.
        await asyncio.get_running_loop().run_in_executor(
            None, publisher.publish, OrderPlaced(1, 9.5)
        )
        result: OrderPlaced = await waiting
        return result

    assert asyncio.run(scenario()) == OrderPlaced(1, 9.5)


def test_queue_subscriber(broker: RedisBroker) -> None:
    placed = publisher_for(broker, "placed", OrderPlaced)
    cancelled = publisher_for(broker, "cancelled", OrderCancelled)
    queue_subscriber = QueueEventSubscriber()
    placed.add_subscriber(queue_subscriber)
    cancelled.add_subscriber(queue_subscriber)

    async def scenario() -> list[dict[str, object]]:
        queue = queue_subscriber.subscribe_consumer()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, placed.publish, OrderPlaced(1, 2.0))
        await loop.run_in_executor(None, cancelled.publish, OrderCancelled(1, "x"))
        return [
            await asyncio.wait_for(queue.get(), 10),
            await asyncio.wait_for(queue.get(), 10),
        ]

    first, second = asyncio.run(scenario())
    assert first["event_type"] == "OrderPlaced"
    assert first["event_tag"] == "PLACED"
    assert first["data"] == {"order_id": 1, "amount": 2.0}
    assert first["caller"] == "RedisBroker"
    assert second["event_type"] == "OrderCancelled"
    assert second["data"] == {"order_id": 1, "reason": "x"}


def test_coroutine_subscriber_runs_on_its_loop(broker: RedisBroker) -> None:
    # The listener thread delivers through the synchronous call(), which hands
    # the event to the subscriber's loop; publish_async() on a broker without
    # a coroutine publish_async falls back to publish().
    publisher = publisher_for(broker, "orders", OrderPlaced)

    async def scenario() -> tuple[list[Any], bool]:
        loop_thread = threading.current_thread()
        got: list[Any] = []
        arrived = asyncio.Event()

        async def on_order(event: OrderPlaced) -> None:
            got.append((event, threading.current_thread() is loop_thread))
            arrived.set()

        subscriber = AsyncFunctionalEventSubscriber(on_order, with_event_info=False)
        publisher.add_subscriber(subscriber)
        await publisher.publish_async(OrderPlaced(5, 1.0))
        await asyncio.wait_for(arrived.wait(), 10)
        publisher.remove_subscriber(subscriber)
        return got, broker.stats().published == 1

    assert asyncio.run(scenario()) == ([(OrderPlaced(5, 1.0), True)], True)
