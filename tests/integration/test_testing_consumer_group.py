"""TestBroker(durable=True): the consumer-group emulation that runs the Streams
protocol core of RedisStreamBroker on the in-memory model, on a clock that
moves only when the test says so."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
    current_delivery,
)
from eventspype.broker.redis import DeadLetter
from eventspype.broker.redis._wire import envelope
from eventspype.testing import TestBroker


@dataclass
class InvoiceDue:
    number: int


INVOICE_DUE = EventPublication("invoice_due", InvoiceDue)


class Mailer:
    """Fails for the invoice numbers in ``failing``; records every call."""

    def __init__(self, *failing: int) -> None:
        self.failing = set(failing)
        self.calls: list[tuple[int, int]] = []
        self.subscriber = FunctionalEventSubscriber(self.send, with_event_info=False)

    def send(self, event: InvoiceDue) -> None:
        delivery = current_delivery()
        assert delivery is not None
        self.calls.append((event.number, delivery.delivery_count))
        if event.number in self.failing:
            raise RuntimeError(f"mail server refused invoice {event.number}")


def _broker(**options: Any) -> tuple[TestBroker, EventPublisher]:
    broker = TestBroker(durable=True, **options)
    return broker, EventPublisher(INVOICE_DUE, broker)


def test_a_handled_event_is_acknowledged_at_once() -> None:
    broker, publisher = _broker()
    mailer = Mailer()
    publisher.add_subscriber(mailer.subscriber)
    publisher.publish(InvoiceDue(1))
    assert mailer.calls == [(1, 1)]
    assert broker.pending() == 0
    broker.drain()


def test_a_failed_event_waits_for_its_backoff_then_is_delivered_again() -> None:
    broker, publisher = _broker(retry_delay=(10.0, 60.0))
    mailer = Mailer(7)
    publisher.add_subscriber(mailer.subscriber)
    publisher.publish(InvoiceDue(7))
    assert mailer.calls == [(7, 1)]
    assert broker.pending() == 1
    broker.advance(4.0)  # the first wait is 5 to 10 s: nothing yet
    assert mailer.calls == [(7, 1)]
    mailer.failing.clear()
    broker.advance(6.0)
    assert mailer.calls == [(7, 1), (7, 2)]
    assert broker.pending() == 0
    assert broker.dead_letters(publisher.channel) == []
    with pytest.raises(RuntimeError, match="refused invoice 7"):
        broker.drain()  # the first failure, collected


def test_a_retry_calls_only_the_subscribers_that_failed() -> None:
    broker, publisher = _broker()
    fine, flaky = Mailer(), Mailer(3)
    publisher.add_subscriber(fine.subscriber)
    publisher.add_subscriber(flaky.subscriber)
    publisher.publish(InvoiceDue(3))
    flaky.failing.clear()
    broker.settle()
    assert fine.calls == [(3, 1)]
    assert flaky.calls == [(3, 1), (3, 2)]


def test_after_max_deliveries_the_event_is_a_dead_letter() -> None:
    broker, publisher = _broker(max_deliveries=5)
    mailer = Mailer(9)
    publisher.add_subscriber(mailer.subscriber)
    publisher.publish(InvoiceDue(9))
    broker.settle()
    assert mailer.calls == [(9, n) for n in range(1, 6)]
    [letter] = broker.dead_letters(publisher.channel)
    assert isinstance(letter, DeadLetter)
    assert letter.deliveries == 5
    assert letter.channel == "INVOICE_DUE"
    assert "refused invoice 9" in letter.error
    decoded = envelope.decode(letter.event, max_bytes=1 << 20)
    assert decoded.event_class == "InvoiceDue"
    assert decoded.payload == b'{"number":9}'
    assert broker.pending() == 0
    assert len(broker.failures) == 5


def test_the_timeline_is_the_same_every_run() -> None:
    def run() -> list[tuple[int, int]]:
        broker, publisher = _broker(max_deliveries=4)
        mailer = Mailer(1, 2)
        publisher.add_subscriber(mailer.subscriber)
        for number in (1, 2, 3):
            publisher.publish(InvoiceDue(number))
        broker.settle()
        return mailer.calls

    assert run() == run()


def test_errors_raise_can_still_be_asked_for() -> None:
    broker, publisher = _broker(errors="raise")
    mailer = Mailer(4)
    publisher.add_subscriber(mailer.subscriber)
    with pytest.raises(RuntimeError, match="refused invoice 4"):
        publisher.publish(InvoiceDue(4))
    assert broker.pending() == 1


def test_the_delivery_context_is_what_the_stream_broker_sets() -> None:
    _, publisher = _broker(group="billing")
    seen = []

    def record(event: InvoiceDue) -> None:
        seen.append(current_delivery())

    subscriber = FunctionalEventSubscriber(record, with_event_info=False)
    publisher.add_subscriber(subscriber)
    publisher.publish(InvoiceDue(1))
    [delivery] = seen
    assert delivery is not None
    assert (delivery.channel, delivery.system) == ("INVOICE_DUE", "redis")
    assert (delivery.group, delivery.delivery_count) == ("billing", 1)
    assert delivery.message_id is not None
    assert delivery.message_id.endswith("-0")


def test_coroutine_subscribers_are_acknowledged_once_drained() -> None:
    handled: list[int] = []
    counts: list[int] = []

    async def scenario() -> None:
        async def handle(event: InvoiceDue) -> None:
            delivery = current_delivery()
            assert delivery is not None, "no delivery context"
            counts.append(delivery.delivery_count)
            if not handled:
                handled.append(-event.number)
                raise RuntimeError("first try fails")
            handled.append(event.number)

        broker, publisher = _broker()
        subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
        publisher.add_subscriber(subscriber)
        publisher.publish(InvoiceDue(5))
        assert broker.pending() == 1
        assert handled == []
        with pytest.raises(RuntimeError, match="first try fails"):
            await broker.drain_async()
        assert broker.pending() == 1
        broker.advance(2.0)  # the retry is due: it waits for the coroutine again
        await broker.drain_async()
        assert handled == [-5, 5]
        assert broker.pending() == 0

        await publisher.publish_async(InvoiceDue(6))  # awaited, acknowledged
        assert handled == [-5, 5, 6]
        assert broker.pending() == 0
        assert counts == [1, 2, 1]

    asyncio.run(scenario())


def test_settle_refuses_while_coroutines_hold_events() -> None:
    loop = asyncio.new_event_loop()
    try:

        async def handle(event: InvoiceDue) -> None:
            pass

        broker, publisher = _broker()
        subscriber = AsyncFunctionalEventSubscriber(
            handle, with_event_info=False, loop=loop
        )
        publisher.add_subscriber(subscriber)
        publisher.publish(InvoiceDue(1))
        with pytest.raises(RuntimeError, match="drain"):
            broker.settle()
        broker.drain()  # runs it on its loop
        assert broker.pending() == 0
    finally:
        loop.close()


def test_the_consumer_group_methods_need_durable() -> None:
    with pytest.raises(RuntimeError, match="durable=True"):
        TestBroker().advance(1.0)
    with pytest.raises(ValueError, match="serialize=True"):
        TestBroker(durable=True, serialize=False)


@settings(max_examples=60, deadline=None)
@given(
    outcomes=st.lists(st.lists(st.booleans(), max_size=7), min_size=1, max_size=6),
    max_deliveries=st.integers(min_value=1, max_value=5),
)
def test_each_event_is_acknowledged_after_its_first_success_or_dead_lettered(
    outcomes: list[list[bool]], max_deliveries: int
) -> None:
    """``outcomes[i][k]``: whether the k-th delivery of event i fails (past
    the list it succeeds). Whatever the mix, once settled every event was
    delivered until its first success, or exactly ``max_deliveries`` times
    and then dead-lettered; nothing is left pending."""
    broker, publisher = _broker(max_deliveries=max_deliveries)
    calls: dict[int, int] = {}

    def handle(event: InvoiceDue) -> None:
        attempt = calls.get(event.number, 0)
        calls[event.number] = attempt + 1
        plan = outcomes[event.number]
        if attempt < len(plan) and plan[attempt]:
            raise RuntimeError(f"attempt {attempt + 1} of {event.number}")

    subscriber = FunctionalEventSubscriber(handle, with_event_info=False)
    publisher.add_subscriber(subscriber)
    for number in range(len(outcomes)):
        publisher.publish(InvoiceDue(number))
    broker.settle()

    dead = []
    for number, plan in enumerate(outcomes):
        first_success = next(
            (k for k, fails in enumerate(plan) if not fails), len(plan)
        )
        if first_success < max_deliveries:
            assert calls[number] == first_success + 1
        else:
            assert calls[number] == max_deliveries
            dead.append(number)
    letters = broker.dead_letters(publisher.channel)
    decoded = [envelope.decode(x.event, max_bytes=1 << 20).payload for x in letters]
    assert sorted(decoded) == sorted(b'{"number":%d}' % n for n in dead)
    assert all(letter.deliveries == max_deliveries for letter in letters)
    assert broker.pending() == 0
