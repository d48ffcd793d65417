"""QueueEventSubscriber's bound across threads, drop logging, late binding and
async iteration (issue 8 item 6, issue 10)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _core_support import PLACED, Placed

from eventspype import EventPublisher, QueueEventSubscriber

PATIENCE = 10.0


class LoopThread:
    """An event loop running in its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = PATIENCE) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def block(self) -> threading.Event:
        """Keep the loop busy until the returned event is set."""
        release, blocked = threading.Event(), threading.Event()

        def busy() -> None:
            blocked.set()
            release.wait(PATIENCE)

        self.loop.call_soon_threadsafe(busy)
        assert blocked.wait(PATIENCE)
        return release

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(PATIENCE)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    made = LoopThread()
    yield made
    made.stop()


async def _subscribe(subscriber: QueueEventSubscriber) -> asyncio.Queue[Any]:
    return subscriber.subscribe_consumer()


def test_the_bound_counts_events_handed_to_a_busy_loop(
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    subscriber = QueueEventSubscriber(max_queue_size=10)
    queue = loop_thread.run(_subscribe(subscriber))
    release = loop_thread.block()
    with caplog.at_level(logging.WARNING, logger="eventspype.sub.queue"):
        for i in range(1000):
            subscriber.call(Placed(i), "ORDER_PLACED", None)
        # Decided on hand-off, while the loop is still busy: only 10 are on
        # their way, the rest are already counted as dropped.
        assert subscriber.dropped == 990
        release.set()

        async def drain() -> list[int]:
            return [queue.get_nowait()["data"]["order_id"] for _ in range(10)]

        assert loop_thread.run(drain()) == list(range(10))
    assert queue.qsize() == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # 990 drops, one line (rate-limited)
    assert "990 dropped in all" not in warnings[0].getMessage()  # the first drop
    assert "dropped Placed event" in warnings[0].getMessage()


def test_space_freed_by_the_reader_is_usable_again(loop_thread: LoopThread) -> None:
    subscriber = QueueEventSubscriber(max_queue_size=2)
    queue = loop_thread.run(_subscribe(subscriber))
    for i in range(3):
        subscriber.call(Placed(i), "ORDER_PLACED", None)

    async def take() -> int:
        return int((await queue.get())["data"]["order_id"])

    assert loop_thread.run(take()) == 0
    subscriber.call(Placed(3), "ORDER_PLACED", None)
    assert [loop_thread.run(take()) for _ in range(2)] == [1, 3]
    assert subscriber.dropped == 1


def test_a_queue_made_outside_a_loop_binds_to_its_first_consumer(
    loop_thread: LoopThread,
) -> None:
    publisher = EventPublisher(PLACED)
    subscriber = QueueEventSubscriber()
    publisher.add_subscriber(subscriber)
    queue = subscriber.subscribe_consumer()  # no running loop here
    publisher.publish(Placed(0))  # before anyone reads: queued synchronously

    async def read_two() -> list[int]:
        return [(await queue.get())["data"]["order_id"] for _ in range(2)]

    future = asyncio.run_coroutine_threadsafe(read_two(), loop_thread.loop)

    async def waiting() -> bool:
        return bool(getattr(queue, "_getters", ()))

    # Wait until the reader is blocked in get() on an empty queue.
    for _ in range(10_000):
        if loop_thread.run(waiting()):
            break
    publisher.publish(Placed(1))  # from this thread: must wake the loop
    try:
        assert future.result(PATIENCE) == [0, 1]
    finally:
        future.cancel()


def test_async_for_yields_events_and_ends_when_closed(loop_thread: LoopThread) -> None:
    publisher = EventPublisher(PLACED)
    subscriber = QueueEventSubscriber()
    publisher.add_subscriber(subscriber)
    started = threading.Event()

    async def consume() -> list[int]:
        got = []
        aiter = subscriber.__aiter__()
        first = asyncio.ensure_future(aiter.__anext__())
        await asyncio.sleep(0)  # the consumer queue now exists
        started.set()
        got.append((await first)["data"]["order_id"])
        async for event in aiter:
            got.append(event["data"]["order_id"])
        return got

    future = asyncio.run_coroutine_threadsafe(consume(), loop_thread.loop)
    assert started.wait(PATIENCE)
    for i in range(3):
        publisher.publish(Placed(i))  # from another thread
    subscriber.close()
    subscriber.close()  # twice: no effect
    assert future.result(PATIENCE) == [0, 1, 2]
    assert subscriber.consumer_count == 0  # the iteration unsubscribed
    publisher.publish(Placed(9))  # closed: ignored, not an error
    assert subscriber.dropped == 0


def test_async_for_on_a_closed_subscriber_ends_at_once() -> None:
    subscriber = QueueEventSubscriber()
    subscriber.close()

    async def consume() -> list[Any]:
        return [event async for event in subscriber]

    assert asyncio.run(consume()) == []


def test_close_ends_an_iteration_whose_queue_is_full() -> None:
    async def scenario() -> int:
        subscriber = QueueEventSubscriber(max_queue_size=2)
        count = 0
        aiter = subscriber.__aiter__()
        first = asyncio.ensure_future(aiter.__anext__())
        await asyncio.sleep(0)
        for i in range(5):  # the reader is not reading: the queue fills
            subscriber.call(Placed(i), "ORDER_PLACED", None)
        await asyncio.sleep(0)
        subscriber.close()  # no room for the end marker
        await first
        count += 1
        async for _ in aiter:
            count += 1
        return count

    assert asyncio.run(scenario()) == 2
