"""Coroutine subscribers and publish_async (issue 10, core side)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any

import pytest
from _core_support import PLACED, Placed, Recorder

import eventspype
from eventspype import (
    AsyncEventSubscriber,
    AsyncFunctionalEventSubscriber,
    EventPublication,
    EventPublisher,
    EventSubscriber,
    LocalBroker,
    MessageBroker,
    MultiPublisher,
)
from eventspype.event import NormalizedTag

PATIENCE = 10.0  # only reached when something is lost; never asserted on
LOGGER = "eventspype.sub.asynchronous"


class Collector(AsyncEventSubscriber):
    """Records (order_id, tag, thread) for each event; waits for ``gate``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.seen: list[int] = []
        self.threads: set[int] = set()
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.most_running = 0

    async def call(
        self, arg: Any, current_event_tag: NormalizedTag, caller: Any
    ) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            self.threads.add(threading.get_ident())
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            self.seen.append(arg.order_id)
        finally:
            self.running -= 1


class Failing(AsyncEventSubscriber):
    async def call(
        self, arg: Any, current_event_tag: NormalizedTag, caller: Any
    ) -> None:
        if arg.order_id % 2:
            raise RuntimeError(f"odd order {arg.order_id}")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, PATIENCE))


def test_exported_like_the_other_subscribers() -> None:
    assert "AsyncEventSubscriber" in eventspype.__all__
    assert "AsyncFunctionalEventSubscriber" in eventspype.__all__
    assert issubclass(AsyncFunctionalEventSubscriber, EventSubscriber)


def test_sync_publish_schedules_and_returns_then_handles_in_order() -> None:
    async def scenario() -> tuple[list[int], list[int], set[int]]:
        publisher = EventPublisher(PLACED)
        collector = Collector()
        publisher.add_subscriber(collector)
        for i in range(5):
            publisher.publish(Placed(i))
        before = list(collector.seen)  # publish() only scheduled
        await collector.drain()
        return before, collector.seen, collector.threads

    before, seen, threads = run(scenario())
    assert before == []
    assert seen == [0, 1, 2, 3, 4]
    assert len(threads) == 1


def test_publish_from_other_threads_runs_on_the_loop_in_order() -> None:
    async def scenario() -> tuple[list[int], set[int], int]:
        publisher = EventPublisher(PLACED, broker=LocalBroker())
        collector = Collector()
        publisher.add_subscriber(collector)

        def worker() -> None:
            for i in range(200):
                publisher.publish(Placed(i))

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        await collector.drain()
        return collector.seen, collector.threads, threading.get_ident()

    seen, threads, loop_thread = run(scenario())
    assert seen == list(range(200))
    assert threads == {loop_thread}


def test_one_at_a_time_unless_max_concurrency_allows_more() -> None:
    async def most_running(max_concurrency: int) -> tuple[int, list[int]]:
        collector = Collector(max_concurrency=max_concurrency)
        collector.gate = asyncio.Event()
        for i in range(6):
            collector.call(Placed(i), "ORDER_PLACED", None)
        for _ in range(5):
            await asyncio.sleep(0)
        running = collector.running
        collector.gate.set()
        await collector.drain()
        return running, sorted(collector.seen)

    assert run(most_running(1)) == (1, list(range(6)))
    assert run(most_running(3)) == (3, list(range(6)))


def test_a_full_backlog_drops_the_newest_counts_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[int, int, list[int]]:
        collector = Collector(max_pending=4)
        collector.gate = asyncio.Event()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            for i in range(10):
                collector.call(Placed(i), "ORDER_PLACED", None)
        dropped = collector.dropped
        collector.gate.set()
        await collector.drain()
        return dropped, collector.handled, collector.seen

    dropped, handled, seen = run(scenario())
    assert (dropped, handled, seen) == (6, 4, [0, 1, 2, 3])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited; the counter has all six
    assert "ORDER_PLACED" in warnings[0].getMessage()


def test_a_raising_handler_is_logged_with_the_tag_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[int, int]:
        failing = Failing()
        publisher = EventPublisher(PLACED)
        publisher.add_subscriber(failing)
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            for i in range(4):
                publisher.publish(Placed(i))
            await failing.drain()
        return failing.errors, failing.handled

    assert run(scenario()) == (2, 2)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "ORDER_PLACED" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_loop_shutdown_with_events_pending_reports_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder: list[Collector] = []

    async def main() -> None:
        collector = Collector()
        collector.gate = asyncio.Event()  # never set: the handler never ends
        holder.append(collector)
        for i in range(3):
            collector.call(Placed(i), "ORDER_PLACED", None)
        await asyncio.sleep(0)  # the first one is being handled
        # main returns with three events pending: asyncio.run cancels them

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        asyncio.run(main())
    (collector,) = holder
    assert collector.abandoned == 3
    assert collector.pending == 0
    assert any("3 event(s) not handled" in r.getMessage() for r in caplog.records)
    # Delivering after the loop is closed: counted and logged, never raises.
    collector.call(Placed(9), "ORDER_PLACED", None)
    assert collector.abandoned == 4
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(collector.call_async(Placed(10), "ORDER_PLACED", None))


def test_loop_closed_before_the_workers_ever_ran(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    collector = Collector(loop=loop)  # explicit loop, never run
    for i in range(2):
        collector.call(Placed(i), "ORDER_PLACED", None)
    loop.close()
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        collector.call(Placed(2), "ORDER_PLACED", None)
    assert collector.abandoned == 3
    assert any("3 event(s) not handled" in r.getMessage() for r in caplog.records)


def test_binding_needs_a_running_loop_or_an_explicit_one() -> None:
    with pytest.raises(RuntimeError, match="loop="):
        Collector()
    loop = asyncio.new_event_loop()
    try:
        assert Collector(loop=loop).loop is loop
    finally:
        loop.close()


def test_a_synchronous_call_in_a_subclass_is_refused() -> None:
    with pytest.raises(TypeError, match="async def"):

        class Wrong(AsyncEventSubscriber):
            def call(  # type: ignore[override]
                self, arg: Any, current_event_tag: NormalizedTag, caller: Any
            ) -> None:
                pass

    with pytest.raises(TypeError, match="coroutine function"):
        AsyncFunctionalEventSubscriber(print)


def test_functional_with_and_without_event_info() -> None:
    async def scenario() -> list[Any]:
        got: list[Any] = []

        async def full(event: Any, tag: NormalizedTag, caller: Any) -> None:
            got.append(("full", event.order_id, tag, caller))

        async def bare(event: Any) -> None:
            got.append(("bare", event.order_id))

        publisher = EventPublisher(PLACED)
        subs = [
            AsyncFunctionalEventSubscriber(full),
            AsyncFunctionalEventSubscriber(bare, with_event_info=False),
        ]
        for sub in subs:
            publisher.add_subscriber(sub)
        publisher.publish(Placed(1), caller="me")
        for sub in subs:
            await sub.drain()
        return got

    assert run(scenario()) == [("full", 1, "ORDER_PLACED", "me"), ("bare", 1)]


# --- publish_async -------------------------------------------------------------


@pytest.mark.parametrize("route", ["direct", "local"])
def test_publish_async_returns_once_every_subscriber_handled(route: str) -> None:
    async def scenario() -> tuple[list[str], int]:
        order: list[str] = []
        broker = None if route == "direct" else LocalBroker()
        publisher = EventPublisher(PLACED, broker=broker)

        async def slow(event: Any) -> None:
            for _ in range(3):
                await asyncio.sleep(0)
            order.append(f"async {event.order_id}")

        first = Recorder("sync first", order)
        coroutine = AsyncFunctionalEventSubscriber(slow, with_event_info=False)
        failing = Failing()
        last = Recorder("sync last", order)
        for sub in (first, coroutine, failing, last):
            publisher.add_subscriber(sub)
        await publisher.publish_async(Placed(1))
        errors = (broker or publisher).subscriber_errors
        return order, errors

    order, errors = run(scenario())
    assert order == ["sync first", "async 1", "sync last"]
    assert errors == 1  # the failing coroutine, isolated and counted
    # ...and counted by the dispatcher, not by the subscriber (see call_async)


def test_publish_async_checks_the_type() -> None:
    async def scenario() -> None:
        await EventPublisher(PLACED).publish_async("not an order")

    with pytest.raises(ValueError, match="Invalid event type"):
        run(scenario())


def test_publish_async_keeps_order_with_sync_publish() -> None:
    async def scenario() -> list[int]:
        publisher = EventPublisher(PLACED)
        collector = Collector()
        publisher.add_subscriber(collector)
        publisher.publish(Placed(1))  # scheduled
        await publisher.publish_async(Placed(2))  # after it, awaited
        return collector.seen

    assert run(scenario()) == [1, 2]


def test_publish_async_from_another_loop() -> None:
    async def scenario() -> list[int]:
        collector = Collector()
        publisher = EventPublisher(PLACED)
        publisher.add_subscriber(collector)
        # Awaited on a second loop in another thread: runs on the first.
        await asyncio.get_running_loop().run_in_executor(
            None, asyncio.run, publisher.publish_async(Placed(5))
        )
        return collector.seen

    assert run(scenario()) == [5]


def test_multipublisher_publish_async() -> None:
    class Shop(MultiPublisher):
        PLACED = PLACED
        OTHER = EventPublication("other", Placed)

    async def scenario() -> list[int]:
        shop = Shop()
        collector = Collector()
        shop.add_subscriber(Shop.PLACED, collector)
        await shop.publish_async(Shop.PLACED, Placed(3))
        await shop.publish_async(Shop.OTHER, Placed(4))  # nobody listens
        with pytest.raises(ValueError, match="Invalid event type"):
            await shop.publish_async(Shop.PLACED, "wrong")
        with pytest.raises(ValueError, match="NOPE"):
            await shop.publish_async(EventPublication("nope", Placed), Placed(5))
        return collector.seen

    assert run(scenario()) == [3]


class AsyncCapableBroker(LocalBroker):
    def __init__(self) -> None:
        super().__init__()
        self.awaited: list[Any] = []

    async def publish_async(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        self.awaited.append((channel, event))
        await super().publish_async(channel, event, event_tag, caller)


class SyncOnlyBroker(MessageBroker):
    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        self.published.append((channel, event))

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        pass

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        pass


def test_publish_async_awaits_the_brokers_publish_async_or_calls_publish() -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        awaiting, sync_only = AsyncCapableBroker(), SyncOnlyBroker()
        await EventPublisher(PLACED, broker=awaiting).publish_async(Placed(1))
        await EventPublisher(PLACED, broker=sync_only).publish_async(Placed(2))
        return awaiting.awaited, sync_only.published

    assert run(scenario()) == (
        [("ORDER_PLACED", Placed(1))],
        [("ORDER_PLACED", Placed(2))],
    )


def test_submit_reports_through_the_future_it_is_given_in_order() -> None:
    """``_submit`` (the stream broker's hand-over): the handler's outcome goes
    to the caller's future (an error too, not counted), in backlog order,
    with the delivery that was current when it was submitted."""
    from eventspype.delivery import Delivery, current_delivery, delivering

    seen: list[tuple[int, str | None]] = []

    class Handler(AsyncEventSubscriber):
        async def call(
            self, arg: Any, current_event_tag: NormalizedTag, caller: Any
        ) -> None:
            delivery = current_delivery()
            seen.append((arg.order_id, delivery and delivery.message_id))
            if arg.order_id == 2:
                raise RuntimeError("two")

    async def scenario() -> list[BaseException | None]:
        handler = Handler()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for i in range(1, 4):
            future: asyncio.Future[None] = loop.create_future()
            with delivering(Delivery("ORDER_PLACED", "redis", message_id=f"{i}-0")):
                handler._submit(Placed(i), "ORDER_PLACED", None, None, future)
            futures.append(future)
        # Before 3.12 the handlers wait for the next loop turn; from 3.12 each
        # starts as an eager task, and these (which never wait) are done.
        assert seen == (
            [] if sys.version_info < (3, 12) else [(1, "1-0"), (2, "2-0"), (3, "3-0")]
        )
        await asyncio.wait(futures)
        assert handler.errors == 0  # the caller's to count, as call_async
        return [f.exception() for f in futures]

    outcomes = run(scenario())
    assert seen == [(1, "1-0"), (2, "2-0"), (3, "3-0")]
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], RuntimeError)


def test_a_handler_started_at_once_runs_in_a_task_of_its_own() -> None:
    """From Python 3.12 ``_submit`` starts the handler eagerly, inside the
    caller's step; the handler still runs in its own task: a timeout it sets
    in its first step cancels the handler, not the caller."""
    tasks: list[asyncio.Task[Any] | None] = []

    class Slow(AsyncEventSubscriber):
        async def call(
            self, arg: Any, current_event_tag: NormalizedTag, caller: Any
        ) -> None:
            tasks.append(asyncio.current_task())
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(0.05):  # binds to the current task
                    await asyncio.sleep(30)
            else:
                await asyncio.wait_for(asyncio.sleep(30), 0.05)

    async def scenario() -> tuple[BaseException | None, bool]:
        handler = Slow()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        handler._submit(Placed(1), "ORDER_PLACED", None, None, future)
        await asyncio.sleep(0.3)  # the caller lives on past the timeout
        assert future.done()
        return future.exception(), tasks[0] is asyncio.current_task()

    error, same_task = run(scenario())
    assert isinstance(error, asyncio.TimeoutError)
    assert not same_task


def test_submit_reports_to_a_callback_once_per_event() -> None:
    """A broker may hear the outcome through a callback instead of a future:
    called once, on the loop, with ``None``, the handler's error, or a
    ``RuntimeError`` for an event abandoned with the backlog."""
    heard: list[tuple[int, BaseException | None]] = []

    class Handler(AsyncEventSubscriber):
        async def call(
            self, arg: Any, current_event_tag: NormalizedTag, caller: Any
        ) -> None:
            if arg.order_id == 2:
                raise ValueError("two")
            if arg.order_id == 3:
                await asyncio.sleep(30)  # abandoned below

    async def scenario() -> Handler:
        handler = Handler(max_concurrency=1)
        for i in (1, 2, 3, 4):
            handler._submit(
                Placed(i), "ORDER_PLACED", None, None,
                lambda error, i=i: heard.append((i, error)),
            )  # fmt: skip
        await asyncio.sleep(0.2)  # 1 and 2 are done, 3 waits, 4 is queued
        handler._abandon("the test gives up")
        return handler

    handler = run(scenario())
    outcomes = dict(heard)
    assert sorted(i for i, _ in heard) == [1, 2, 3, 4]  # each once
    assert outcomes[1] is None
    assert isinstance(outcomes[2], ValueError)
    assert isinstance(outcomes[4], RuntimeError)
    assert "abandoned" in str(outcomes[4])
    # 3 was running when the loop ended (asyncio.run cancels its task).
    assert isinstance(outcomes[3], RuntimeError)
    assert "stopped" in str(outcomes[3])
    assert handler.errors == 0
