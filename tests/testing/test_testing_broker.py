"""TestBroker: round trip through the serializer, class checks, errors raised
in the test, coroutine subscribers, and no collection by pytest."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from _testing_support import ORDER_PLACED, Basket, OrderCancelled, OrderPlaced

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.serializers import MsgpackEventSerializer, SerializationError
from eventspype.testing import TestBroker


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[Any, Any, Any]] = []
        self.subscriber = FunctionalEventSubscriber(self.record)

    def record(self, event: Any, tag: Any, caller: Any) -> None:
        self.items.append((event, tag, caller))


def test_needs_no_argument_and_delivers_a_copy_from_the_broker() -> None:
    broker = TestBroker()
    publisher = EventPublisher(ORDER_PLACED, broker)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    event = OrderPlaced(1, 9.5)
    publisher.publish(event)
    [(received, tag, caller)] = inbox.items
    assert received == event
    assert received is not event, "a copy, as from another process"
    assert tag == ORDER_PLACED.event_tag
    assert caller is broker
    assert broker.published == {"ORDER_PLACED": [event]}


def test_an_event_the_serializer_cannot_encode_fails_the_publish() -> None:
    class NotSerializable:
        pass

    broker = TestBroker()
    publisher = EventPublisher(EventPublication("odd", NotSerializable), broker)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    with pytest.raises(SerializationError):
        publisher.publish(NotSerializable())
    assert inbox.items == []


def test_an_event_that_changes_on_the_way_fails_the_publish() -> None:
    broker = TestBroker()
    publisher = EventPublisher(EventPublication("basket", Basket), broker)
    with pytest.raises(AssertionError, match="changes when it crosses a process"):
        publisher.publish(Basket(items=(1, 2)))  # type: ignore[arg-type]


def test_serialize_false_delivers_the_object_itself() -> None:
    broker = TestBroker(serialize=False)
    publisher = EventPublisher(ORDER_PLACED, broker)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    event = OrderPlaced(1, 9.5)
    publisher.publish(event)
    assert inbox.items[0][0] is event


def test_the_serializer_is_configurable() -> None:
    class Counting(MsgpackEventSerializer):
        used = 0

        def serialize(self, event: Any) -> bytes:
            Counting.used += 1
            return super().serialize(event)

    broker = TestBroker(Counting())
    EventPublisher(ORDER_PLACED, broker).publish(OrderPlaced(1, 2.0))
    assert Counting.used == 1


def test_subscribers_of_a_publication_get_only_its_class() -> None:
    broker = TestBroker()
    placed = EventPublisher(ORDER_PLACED, broker)
    cancelled_on_same_tag = EventPublisher(
        EventPublication("order_placed", OrderCancelled), broker
    )
    inbox, anything = Inbox(), Inbox()
    placed.add_subscriber(inbox.subscriber)
    broker.subscribe(placed.channel, anything.subscriber)
    cancelled_on_same_tag.publish(OrderCancelled(1))
    assert inbox.items == []
    assert [item[0] for item in anything.items] == [OrderCancelled(1)]


def test_a_subscriber_error_is_raised_after_the_others_received_the_event() -> None:
    broker = TestBroker()
    publisher = EventPublisher(ORDER_PLACED, broker)

    def fail(event: Any) -> None:
        raise KeyError("no such customer")

    failing = FunctionalEventSubscriber(fail, with_event_info=False)
    inbox = Inbox()
    publisher.add_subscriber(failing)
    publisher.add_subscriber(inbox.subscriber)
    with pytest.raises(KeyError, match="no such customer"):
        publisher.publish(OrderPlaced(1, 2.0))
    assert len(inbox.items) == 1
    [failure] = broker.failures
    assert failure.subscriber is failing
    assert failure.event == OrderPlaced(1, 2.0)
    assert failure.channel == "ORDER_PLACED"
    broker.drain()  # already raised: not again


def test_collected_errors_are_raised_by_drain_once() -> None:
    broker = TestBroker(errors="collect")
    publisher = EventPublisher(ORDER_PLACED, broker)

    def fail(event: OrderPlaced) -> None:
        raise ValueError(f"bad order {event.order_id}")

    failing = FunctionalEventSubscriber(fail, with_event_info=False)
    publisher.add_subscriber(failing)
    publisher.publish(OrderPlaced(1, 2.0))
    publisher.publish(OrderPlaced(2, 2.0))
    assert len(broker.failures) == 2
    with pytest.raises(ValueError, match="bad order 1"):
        broker.drain()
    broker.drain()


def test_errors_must_be_raise_or_collect() -> None:
    with pytest.raises(ValueError, match="errors must be"):
        TestBroker(errors="log")  # type: ignore[arg-type]


def test_coroutine_subscribers_are_awaited_by_publish_async() -> None:
    handled: list[OrderPlaced] = []

    async def scenario() -> None:
        async def handle(event: OrderPlaced) -> None:
            await asyncio.sleep(0)
            handled.append(event)

        broker = TestBroker()
        publisher = EventPublisher(ORDER_PLACED, broker)
        subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
        publisher.add_subscriber(subscriber)
        await publisher.publish_async(OrderPlaced(1, 2.0))
        assert handled == [OrderPlaced(1, 2.0)]  # handled when it returns

        publisher.publish(OrderPlaced(2, 2.0))  # queued, not run
        assert len(handled) == 1
        with pytest.raises(RuntimeError, match="drain_async"):
            broker.drain()
        await broker.drain_async()
        assert handled == [OrderPlaced(1, 2.0), OrderPlaced(2, 2.0)]

    asyncio.run(scenario())


def test_drain_runs_queued_coroutine_subscribers_and_raises_their_error() -> None:
    loop = asyncio.new_event_loop()
    try:

        async def handle(event: OrderPlaced) -> None:
            if event.order_id == 2:
                raise RuntimeError("mailer down")

        subscriber = AsyncFunctionalEventSubscriber(
            handle, with_event_info=False, loop=loop
        )
        broker = TestBroker()
        publisher = EventPublisher(ORDER_PLACED, broker)
        publisher.add_subscriber(subscriber)
        publisher.publish(OrderPlaced(1, 2.0))
        publisher.publish(OrderPlaced(2, 2.0))
        with pytest.raises(RuntimeError, match="mailer down"):
            broker.drain()
        assert [f.event.order_id for f in broker.failures] == [2]
    finally:
        loop.close()


def test_a_closed_broker_refuses_work() -> None:
    broker = TestBroker()
    with broker:
        pass
    assert broker.closed
    with pytest.raises(RuntimeError, match="closed"):
        broker.publish("X", OrderPlaced(1, 2.0), "X", None)
    with pytest.raises(RuntimeError, match="closed"):
        broker.subscribe("X", Inbox().subscriber)


def test_importing_it_into_a_test_module_does_not_collect_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_imports="""
        from eventspype.testing import EventRecorder, TestBroker

        def test_nothing():
            assert TestBroker()
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:asyncio", "-W", "error")
    result.assert_outcomes(passed=1)
    assert "cannot collect" not in result.stdout.str()


def test_the_consumer_group_emulation_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As without eventspype-redis (the tests(testing) session has none).
    for name in [n for n in sys.modules if n.startswith("eventspype.broker.redis")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "eventspype.broker.redis", None)
    monkeypatch.delitem(sys.modules, "eventspype.testing.consumer_group", False)
    with pytest.raises(ImportError, match=r'pip install "eventspype-testing\[redis\]"'):
        TestBroker(durable=True)
