"""TrackingEventSubscriber: bounded logs and wait_for, also across threads."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
from _core_support import PLACED, Placed, Refunded, Shipped

from eventspype import EventPublisher, TrackingEventSubscriber

# Generous: only reached when a wake-up is lost, and never asserted on.
PATIENCE = 10.0


def test_event_log_is_bounded_by_max_len() -> None:
    tracker = TrackingEventSubscriber(event_source="tests", max_len=3)
    assert tracker.event_source == "tests"
    for i in range(5):
        tracker.call(Placed(i), "ORDER_PLACED", None)
    assert tracker.event_log == [Placed(2), Placed(3), Placed(4)]


def test_tracked_type_has_its_own_log() -> None:
    tracker = TrackingEventSubscriber(max_len=2)
    tracker.track_event_type(Shipped)
    tracker.call(Shipped(1), "S", None)
    for i in range(10):  # a flood of other events cannot push Shipped out
        tracker.call(Placed(i), "P", None)
    assert tracker.events_of(Shipped) == [Shipped(1)]
    assert Shipped(1) not in tracker.event_log
    assert tracker.event_log == [Placed(8), Placed(9)]
    tracker.call(Shipped(2), "S", None)
    tracker.call(Shipped(3), "S", None)
    assert tracker.events_of(Shipped) == [Shipped(2), Shipped(3)]
    assert tracker.events_of(Refunded) == []


def test_clear_forgets_everything() -> None:
    tracker = TrackingEventSubscriber()
    tracker.track_event_type(Shipped)
    tracker.call(Placed(1), "P", None)
    tracker.call(Shipped(1), "S", None)
    tracker.clear()
    assert tracker.event_log == []
    assert tracker.events_of(Shipped) == []


def test_tracker_receives_from_publisher() -> None:
    publisher = EventPublisher(PLACED)
    tracker = TrackingEventSubscriber()
    publisher.add_subscriber(tracker)
    publisher.publish(Placed(1))
    assert tracker.event_log == [Placed(1)]


def test_wait_for_returns_next_event_of_type() -> None:
    async def scenario() -> object:
        tracker = TrackingEventSubscriber()
        tracker.call(Placed(0), "P", None)  # before the wait: does not count
        task = asyncio.ensure_future(tracker.wait_for(Placed, PATIENCE))
        await asyncio.sleep(0)  # let the waiter register
        tracker.call(Shipped(1), "S", None)  # other type: ignored
        tracker.call(Placed(1), "P", None)
        tracker.call(Placed(2), "P", None)
        result = await task
        assert tracker._waiters == {}
        return result

    assert asyncio.run(scenario()) == Placed(1)


def test_wait_for_matches_exact_type() -> None:
    async def scenario() -> None:
        from _core_support import SpecialPlaced

        tracker = TrackingEventSubscriber()
        task = asyncio.ensure_future(tracker.wait_for(SpecialPlaced, PATIENCE))
        await asyncio.sleep(0)
        tracker.call(Placed(1), "P", None)
        tracker.call(SpecialPlaced(2), "P", None)
        assert await task == SpecialPlaced(2)

    asyncio.run(scenario())


def test_several_waiters_all_wake() -> None:
    async def scenario() -> list[object]:
        tracker = TrackingEventSubscriber()
        tasks = [
            asyncio.ensure_future(tracker.wait_for(Placed, PATIENCE)) for _ in range(3)
        ]
        await asyncio.sleep(0)
        tracker.call(Placed(7), "P", None)
        results = await asyncio.gather(*tasks)
        assert tracker._waiters == {}
        return list(results)

    assert asyncio.run(scenario()) == [Placed(7)] * 3


def test_wait_for_times_out_as_builtin_timeout_error() -> None:
    async def scenario() -> None:
        tracker = TrackingEventSubscriber()
        tracker.call(Placed(1), "P", None)  # already there: does not count
        with pytest.raises(TimeoutError, match="Placed"):
            await tracker.wait_for(Placed, 0.01)
        assert tracker._waiters == {}

    asyncio.run(scenario())


def test_wait_for_times_out_as_asyncio_timeout_error() -> None:
    async def scenario() -> None:
        tracker = TrackingEventSubscriber()
        with pytest.raises(asyncio.TimeoutError):
            await tracker.wait_for(Placed, 0.01)
        assert tracker._waiters == {}

    asyncio.run(scenario())


def test_waiter_cleanup_on_cancel() -> None:
    async def scenario() -> None:
        tracker = TrackingEventSubscriber()
        task = asyncio.ensure_future(tracker.wait_for(Placed, PATIENCE))
        await asyncio.sleep(0)
        assert Placed in tracker._waiters
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert tracker._waiters == {}
        tracker.call(Placed(1), "P", None)  # nobody waiting: no error

    asyncio.run(scenario())


def test_cross_thread_publish_wakes_waiter() -> None:
    """The publisher runs in another thread; the loop must be woken, not
    left sleeping in select() until the timeout."""

    async def scenario() -> object:
        publisher = EventPublisher(PLACED)
        tracker = TrackingEventSubscriber()
        publisher.add_subscriber(tracker)
        go = threading.Event()

        def worker() -> None:
            go.wait(PATIENCE)
            publisher.publish(Placed(42))

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        task = asyncio.ensure_future(tracker.wait_for(Placed, PATIENCE))
        await asyncio.sleep(0)
        go.set()
        try:
            result = await task
        finally:
            thread.join(PATIENCE)
        # A foreign-thread touch of the loop raises in debug mode; the
        # publisher would have isolated and counted it.
        assert publisher.subscriber_errors == 0
        return result

    # debug=True makes asyncio reject loop calls from a foreign thread, so an
    # implementation that is not thread-safe fails instead of merely stalling.
    assert asyncio.run(scenario(), debug=True) == Placed(42)


def test_cross_thread_many_waits_in_a_row() -> None:
    async def scenario() -> list[object]:
        tracker = TrackingEventSubscriber()
        errors: list[BaseException] = []

        def deliver(event: Placed) -> None:
            try:
                tracker.call(event, "P", None)
            except BaseException as error:  # recorded, asserted below
                errors.append(error)

        results = []
        for i in range(20):
            task = asyncio.ensure_future(tracker.wait_for(Placed, PATIENCE))
            await asyncio.sleep(0)
            thread = threading.Thread(target=deliver, args=(Placed(i),), daemon=True)
            thread.start()
            results.append(await task)
            thread.join(PATIENCE)
            assert errors == []
        assert tracker._waiters == {}
        return results

    assert asyncio.run(scenario(), debug=True) == [Placed(i) for i in range(20)]


def test_event_for_closed_loop_does_not_raise() -> None:
    tracker = TrackingEventSubscriber()
    loop = asyncio.new_event_loop()
    task = loop.create_task(tracker.wait_for(Placed, PATIENCE))
    loop.run_until_complete(asyncio.sleep(0))  # waiter registered
    loop.close()  # abandon it (task never finishes)
    tracker.call(Placed(1), "P", None)  # must not raise
    assert tracker.event_log == [Placed(1)]
    assert tracker._waiters == {}
    # Destroy the abandoned task here, not at some later test's collection.
    del task, loop
    gc.collect()
