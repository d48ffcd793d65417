"""TestBroker calls its subscribers through the hooks (eventspype.hooks)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from _testing_support import ORDER_PLACED, OrderPlaced

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.hooks import DeliveryInfo, Hook, add_hook, remove_hook
from eventspype.testing import TestBroker


class Recorder(Hook):
    """Every delivery the hooks saw: (started info, finished info, error)."""

    def __init__(self) -> None:
        self.started: list[DeliveryInfo] = []
        self.finished: list[tuple[DeliveryInfo, object, BaseException | None]] = []

    def delivery_started(self, info: DeliveryInfo) -> object:
        self.started.append(info)
        return len(self.started)

    def delivery_finished(
        self,
        info: DeliveryInfo,
        state: object,
        error: BaseException | None,
        duration_ns: int,
    ) -> None:
        assert duration_ns >= 0
        self.finished.append((info, state, error))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hook = Recorder()
    add_hook(hook)
    try:
        yield hook
    finally:
        remove_hook(hook)


def test_a_synchronous_delivery_is_seen_by_the_hooks(recorder: Recorder) -> None:
    broker = TestBroker(errors="collect")
    publisher = EventPublisher(ORDER_PLACED, broker)
    got: list[OrderPlaced] = []

    def fail(event: OrderPlaced) -> None:
        raise ValueError("no stock")

    good = FunctionalEventSubscriber(got.append, with_event_info=False)
    bad = FunctionalEventSubscriber(fail, with_event_info=False)
    publisher.add_subscriber(good)
    publisher.add_subscriber(bad)
    publisher.publish(OrderPlaced(1, 2.0))
    assert got == [OrderPlaced(1, 2.0)]
    assert [i.subscriber for i in recorder.started] == [good, bad]
    for info in recorder.started:
        assert info.channel == str(ORDER_PLACED.event_tag)
        assert info.event == OrderPlaced(1, 2.0)
        assert info.event_tag == ORDER_PLACED.event_tag
        assert info.caller is broker
        assert info.delivery is None
        assert info.system == "eventspype"
    # Each finish gets its own start's state, and the error it raised.
    assert [(i.subscriber, s, type(e)) for i, s, e in recorder.finished] == [
        (good, 1, type(None)),
        (bad, 2, ValueError),
    ]
    assert [f.error for f in broker.failures] == [recorder.finished[1][2]]


def test_coroutine_deliveries_are_seen_around_their_run(recorder: Recorder) -> None:
    events: list[str] = []

    async def scenario() -> None:
        async def handle(event: OrderPlaced) -> None:
            events.append(f"run {event.order_id}")
            if event.order_id == 2:
                raise RuntimeError("mailer down")

        broker = TestBroker(errors="collect")
        publisher = EventPublisher(ORDER_PLACED, broker)
        subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
        publisher.add_subscriber(subscriber)
        await publisher.publish_async(OrderPlaced(1, 2.0))  # awaited
        assert len(recorder.finished) == 1
        publisher.publish(OrderPlaced(2, 2.0))  # queued: no delivery yet
        assert len(recorder.started) == 1
        with pytest.raises(RuntimeError, match="mailer down"):
            await broker.drain_async()
        assert [i.subscriber for i in recorder.started] == [subscriber] * 2
        # The hooks ran around the handler, with the context that handed it over.
        assert all(i.context is not None for i in recorder.started)
        errors = [type(e) for _, _, e in recorder.finished]
        assert errors == [type(None), RuntimeError]

    asyncio.run(scenario())
    assert events == ["run 1", "run 2"]


def test_drain_outside_a_loop_is_seen_by_the_hooks(recorder: Recorder) -> None:
    loop = asyncio.new_event_loop()
    try:

        async def handle(event: OrderPlaced) -> None:
            await asyncio.sleep(0)

        subscriber = AsyncFunctionalEventSubscriber(
            handle, with_event_info=False, loop=loop
        )
        broker = TestBroker()
        publisher = EventPublisher(ORDER_PLACED, broker)
        publisher.add_subscriber(subscriber)
        publisher.publish(OrderPlaced(1, 2.0))
        assert recorder.started == []
        broker.drain()
        [(info, _, error)] = recorder.finished
        assert info.subscriber is subscriber
        assert error is None
    finally:
        loop.close()


def test_without_hooks_nothing_is_observed() -> None:
    hook = Recorder()
    add_hook(hook)
    remove_hook(hook)
    broker = TestBroker()
    publisher = EventPublisher(ORDER_PLACED, broker)
    got: list[Any] = []
    subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
    publisher.add_subscriber(subscriber)
    publisher.publish(OrderPlaced(1, 2.0))
    assert got == [OrderPlaced(1, 2.0)]
    assert hook.started == []
