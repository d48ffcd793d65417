"""QueueEventSubscriber: consumer queues of event dicts, also across threads."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from _core_support import PLACED, Placed, Refunded, Tags

from eventspype import EventPublisher, QueueEventSubscriber

PATIENCE = 10.0  # only reached when a wake-up is lost; never asserted on


async def _next(queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), PATIENCE)


def test_consumer_gets_event_dicts() -> None:
    async def scenario() -> dict[str, Any]:
        publisher = EventPublisher(PLACED)
        subscriber = QueueEventSubscriber()
        publisher.add_subscriber(subscriber)
        queue = subscriber.subscribe_consumer()
        publisher.publish(Placed(5))
        return await _next(queue)

    item = asyncio.run(scenario())
    assert set(item) == {"event_type", "event_tag", "caller", "timestamp", "data"}
    assert item["event_type"] == "Placed"
    assert item["event_tag"] == "ORDER_PLACED"
    assert item["caller"] == "EventPublisher"
    assert isinstance(item["timestamp"], float)
    assert item["data"] == {"order_id": 5}


def test_caller_without_name_uses_its_class_name() -> None:
    subscriber = QueueEventSubscriber()
    queue = subscriber.subscribe_consumer()  # outside a loop: filled synchronously

    class Anonymous:
        pass

    subscriber.call(Refunded(1, 2.0), 7, Anonymous())
    subscriber.call(Tags.SHIPPED, "T", None)
    first, second = queue.get_nowait(), queue.get_nowait()
    assert first["caller"] == "Anonymous"
    assert first["event_type"] == "Refunded"
    assert first["data"] == {"order_id": 1, "amount": 2.0}
    assert second["caller"] == "NoneType"
    assert second["data"] == 1  # an Enum event: its value


def test_multiple_consumers_each_get_every_event() -> None:
    async def scenario() -> list[list[int]]:
        subscriber = QueueEventSubscriber()
        queues = [subscriber.subscribe_consumer() for _ in range(3)]
        assert subscriber.consumer_count == 3
        for i in range(4):
            subscriber.call(Placed(i), "ORDER_PLACED", None)
        received: list[list[int]] = []
        for queue in queues:
            received.append([])
            for _ in range(4):
                received[-1].append((await _next(queue))["data"]["order_id"])
        return received

    assert asyncio.run(scenario()) == [[0, 1, 2, 3]] * 3


def test_full_queue_drops_counts_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    subscriber = QueueEventSubscriber(max_queue_size=2)
    small = subscriber.subscribe_consumer()  # outside a loop: synchronous puts
    with caplog.at_level(logging.WARNING, logger="eventspype.sub.queue"):
        for i in range(5):
            subscriber.call(Placed(i), "ORDER_PLACED", None)
    assert small.qsize() == 2
    assert [small.get_nowait()["data"]["order_id"] for _ in range(2)] == [0, 1]
    assert subscriber.dropped == 3
    # Rate-limited: one line for the burst (the counter has them all).
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Placed" in warnings[0].getMessage()


def test_full_queue_in_a_loop_does_not_starve_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[int, int]:
        subscriber = QueueEventSubscriber(max_queue_size=1)
        stuck = subscriber.subscribe_consumer()
        reader = subscriber.subscribe_consumer()
        got = 0
        for i in range(3):
            subscriber.call(Placed(i), "ORDER_PLACED", None)
            await _next(reader)
            got += 1
        assert stuck.qsize() == 1
        return got, subscriber.dropped

    with caplog.at_level(logging.WARNING, logger="eventspype.sub.queue"):
        assert asyncio.run(scenario()) == (3, 2)


def test_unsubscribe_consumer() -> None:
    subscriber = QueueEventSubscriber()
    kept = subscriber.subscribe_consumer()
    gone = subscriber.subscribe_consumer()
    subscriber.unsubscribe_consumer(gone)
    subscriber.unsubscribe_consumer(gone)  # unknown now: ignored
    subscriber.unsubscribe_consumer(asyncio.Queue())  # never known: ignored
    assert subscriber.consumer_count == 1
    subscriber.call(Placed(1), "ORDER_PLACED", None)
    assert kept.qsize() == 1
    assert gone.qsize() == 0


def test_no_consumers_is_noop() -> None:
    subscriber = QueueEventSubscriber()
    assert subscriber.consumer_count == 0
    subscriber.call(Placed(1), "ORDER_PLACED", None)
    assert subscriber.dropped == 0


def test_cross_thread_publish_reaches_awaiting_consumer() -> None:
    async def scenario() -> list[int]:
        publisher = EventPublisher(PLACED)
        subscriber = QueueEventSubscriber()
        publisher.add_subscriber(subscriber)
        queue = subscriber.subscribe_consumer()
        go = threading.Event()

        def worker() -> None:
            go.wait(PATIENCE)
            for i in range(3):
                publisher.publish(Placed(i))

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        pending = asyncio.ensure_future(_next(queue))
        await asyncio.sleep(0)  # the consumer is now blocked in queue.get()
        go.set()
        try:
            ids = [(await pending)["data"]["order_id"]]
            ids += [(await _next(queue))["data"]["order_id"] for _ in range(2)]
        finally:
            thread.join(PATIENCE)
        # In debug mode a foreign-thread touch of the loop raises; the
        # publisher would have isolated and counted it.
        assert publisher.subscriber_errors == 0
        return ids

    assert asyncio.run(scenario(), debug=True) == [0, 1, 2]


def test_closed_loop_queue_is_dropped_without_raising() -> None:
    subscriber = QueueEventSubscriber()

    async def make_consumer() -> asyncio.Queue[dict[str, Any]]:
        return subscriber.subscribe_consumer()

    loop = asyncio.new_event_loop()
    orphan = loop.run_until_complete(make_consumer())
    loop.close()
    survivor = subscriber.subscribe_consumer()  # no loop: synchronous
    assert subscriber.consumer_count == 2

    subscriber.call(Placed(1), "ORDER_PLACED", None)  # must not raise

    assert subscriber.consumer_count == 1
    assert survivor.qsize() == 1
    assert orphan.qsize() == 0
