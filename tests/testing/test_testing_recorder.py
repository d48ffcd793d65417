"""EventRecorder: what it records from each kind of source, its assertions
and their failure messages, and waiting for events from other threads."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
from _testing_support import ORDER_CANCELLED, ORDER_PLACED, OrderCancelled, OrderPlaced

from eventspype import EventPublisher, LocalBroker, MultiPublisher
from eventspype.testing import EventRecorder, TestBroker


class Shop(MultiPublisher):
    placed = ORDER_PLACED
    cancelled = ORDER_CANCELLED


def test_records_a_publisher_and_holds_its_subscriber() -> None:
    publisher = EventPublisher(ORDER_PLACED)
    recorder = EventRecorder(publisher)
    gc.collect()  # the subscriber lives as long as the recorder
    publisher.publish(OrderPlaced(1, 9.5))
    assert recorder.events() == [OrderPlaced(1, 9.5)]
    [record] = recorder.records
    assert record.event_tag == ORDER_PLACED.event_tag
    assert record.caller is publisher
    assert record.thread == threading.current_thread().name


def test_as_a_context_manager_it_stops_recording_on_exit() -> None:
    publisher = EventPublisher(ORDER_PLACED)
    with EventRecorder(publisher) as recorder:
        publisher.publish(OrderPlaced(1, 9.5))
    publisher.publish(OrderPlaced(2, 9.5))
    assert len(recorder) == 1
    assert publisher.get_subscribers() == []


def test_records_every_publication_of_a_multi_publisher_or_one() -> None:
    shop = Shop()
    everything = EventRecorder(shop)
    cancellations = EventRecorder(shop, ORDER_CANCELLED)
    shop.publish(ORDER_PLACED, OrderPlaced(1, 9.5))
    shop.publish(ORDER_CANCELLED, OrderCancelled(1))
    assert everything.events() == [OrderPlaced(1, 9.5), OrderCancelled(1)]
    assert cancellations.events() == [OrderCancelled(1)]
    assert everything.events(OrderCancelled) == [OrderCancelled(1)]


def test_records_a_publication_on_a_broker_whoever_publishes() -> None:
    broker = LocalBroker()
    with EventRecorder(broker, ORDER_PLACED) as recorder:
        EventPublisher(ORDER_PLACED, broker).publish(OrderPlaced(1, 9.5))
        EventPublisher(ORDER_CANCELLED, broker).publish(OrderCancelled(1))
    assert recorder.events() == [OrderPlaced(1, 9.5)]


def test_records_everything_published_through_a_broker_until_closed() -> None:
    broker = TestBroker()
    recorder = EventRecorder(broker)
    EventPublisher(ORDER_PLACED, broker).publish(OrderPlaced(1, 9.5))
    EventPublisher(ORDER_CANCELLED, broker).publish(OrderCancelled(1))

    async def publish_async() -> None:
        await EventPublisher(ORDER_PLACED, broker).publish_async(OrderPlaced(2, 1.0))

    asyncio.run(publish_async())
    recorder.close()
    EventPublisher(ORDER_PLACED, broker).publish(OrderPlaced(3, 9.5))
    assert recorder.events() == [
        OrderPlaced(1, 9.5),
        OrderCancelled(1),
        OrderPlaced(2, 1.0),
    ]
    assert "publish" not in vars(broker)


def test_refuses_what_it_cannot_record() -> None:
    with pytest.raises(TypeError, match="EventRecorder records"):
        EventRecorder(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not"):
        EventRecorder(EventPublisher(ORDER_PLACED), ORDER_CANCELLED)


@pytest.fixture
def recorded() -> EventRecorder:
    publisher = EventPublisher(ORDER_PLACED)
    recorder = EventRecorder(publisher)
    publisher.publish(OrderPlaced(1, 9.0))
    publisher.publish(OrderPlaced(2, 9.5))
    return recorder


def test_assert_published_by_equality_class_fields_or_predicate(
    recorded: EventRecorder,
) -> None:
    assert recorded.assert_published(OrderPlaced(2, 9.5)) == OrderPlaced(2, 9.5)
    assert recorded.assert_published(OrderPlaced) == OrderPlaced(1, 9.0)
    assert recorded.assert_published(OrderPlaced, order_id=2).amount == 9.5
    assert recorded.assert_published(amount=9.0).order_id == 1
    found = recorded.assert_published(OrderPlaced, where=lambda e: e.amount > 9.2)
    assert found.order_id == 2


def test_a_failed_assertion_shows_what_was_published_and_the_difference(
    recorded: EventRecorder,
) -> None:
    with pytest.raises(AssertionError) as failure:
        recorded.assert_published(OrderPlaced(2, 10.0))
    message = str(failure.value)
    assert "no event published matches: OrderPlaced(order_id=2, amount=10.0)" in message
    assert "2 events published by" in message
    assert "1. OrderPlaced(order_id=1, amount=9.0)" in message
    assert "amount: expected 10.0, got 9.5" in message
    assert "order_id: expected 2, got 1" in message

    with pytest.raises(AssertionError, match="order_id: expected 3, got 2"):
        recorded.assert_published(OrderPlaced, order_id=3)
    with pytest.raises(AssertionError, match="an instance of OrderCancelled"):
        recorded.assert_published(OrderCancelled)


def test_a_failure_on_an_empty_recorder_says_nothing_was_published() -> None:
    recorder = EventRecorder(EventPublisher(ORDER_PLACED))
    with pytest.raises(AssertionError, match="nothing was published by"):
        recorder.assert_published(OrderPlaced)


def test_assert_published_once(recorded: EventRecorder) -> None:
    assert recorded.assert_published_once(order_id=1) == OrderPlaced(1, 9.0)
    with pytest.raises(AssertionError, match=r"2 events published \(expected one\)"):
        recorded.assert_published_once(OrderPlaced)
    with pytest.raises(AssertionError, match="no event published matches"):
        recorded.assert_published_once(order_id=5)


def test_assert_not_published_marks_the_offender(recorded: EventRecorder) -> None:
    recorded.assert_not_published(OrderCancelled)
    recorded.assert_not_published(OrderPlaced, order_id=3)
    with pytest.raises(AssertionError) as failure:
        recorded.assert_not_published(OrderPlaced, where=lambda e: e.amount > 9.2)
    message = str(failure.value)
    assert "an event published matches" in message
    assert " *  2. OrderPlaced(order_id=2, amount=9.5)" in message
    assert "    1. OrderPlaced(order_id=1, amount=9.0)" in message


def test_clear_forgets(recorded: EventRecorder) -> None:
    recorded.clear()
    assert recorded.events() == []
    recorded.assert_not_published()


def test_assert_published_waits_for_an_event_from_another_thread() -> None:
    publisher = EventPublisher(ORDER_PLACED)
    recorder = EventRecorder(publisher)
    thread = threading.Thread(target=publisher.publish, args=(OrderPlaced(7, 1.0),))
    thread.start()
    assert recorder.assert_published(order_id=7, timeout=30).amount == 1.0
    thread.join()
    with pytest.raises(AssertionError, match="no event published matches"):
        recorder.assert_published(order_id=8, timeout=0.01)


def test_wait_for_returns_an_event_published_before_or_after_from_any_thread() -> None:
    publisher = EventPublisher(ORDER_PLACED)
    recorder = EventRecorder(publisher)
    publisher.publish(OrderPlaced(1, 1.0))

    async def scenario() -> tuple[OrderPlaced, OrderPlaced]:
        early = await recorder.wait_for(OrderPlaced, order_id=1)
        waiting = asyncio.ensure_future(recorder.wait_for(order_id=2, timeout=30))
        await asyncio.sleep(0)  # the waiter is registered
        await asyncio.to_thread(publisher.publish, OrderPlaced(2, 2.0))
        return early, await waiting

    early, late = asyncio.run(scenario())
    assert (early, late) == (OrderPlaced(1, 1.0), OrderPlaced(2, 2.0))


def test_wait_for_fails_with_the_report_when_nothing_comes() -> None:
    publisher = EventPublisher(ORDER_PLACED)
    recorder = EventRecorder(publisher)
    publisher.publish(OrderPlaced(1, 1.0))

    async def scenario() -> None:
        await recorder.wait_for(OrderPlaced(2, 1.0), timeout=0.01)

    with pytest.raises(AssertionError, match="order_id: expected 2, got 1"):
        asyncio.run(scenario())
