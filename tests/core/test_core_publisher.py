"""EventPublisher, with and without a LocalBroker (the two must behave the same)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
from _core_support import (
    PLACED,
    Exploding,
    Placed,
    Recorder,
    Shipped,
    SpecialPlaced,
    dispatcher,
    make_publisher,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from eventspype import EventPublication, EventPublisher, EventSubscriber, LocalBroker
from eventspype.event import NormalizedTag

# --- one body, two routes ---------------------------------------------------


def test_delivery_is_identical_with_and_without_local_broker(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Deliveries, order, caller, tag and error isolation; run for both routes."""
    publisher, broker = publisher_and_broker
    order: list[str] = []
    first, second, third = (Recorder(n, order) for n in ("first", "second", "third"))
    boom = Exploding()
    publisher.add_subscriber(first)
    publisher.add_subscriber(boom)
    publisher.add_subscriber(second)
    publisher.add_subscriber(third)

    event = Placed(1)
    with caplog.at_level(logging.ERROR):
        publisher.publish(event)

    # Every subscriber, in subscription order, the raising one included.
    assert order == ["first", "second", "third"]
    assert boom.attempts == 1
    for recorder in (first, second, third):
        assert recorder.calls == [(event, "ORDER_PLACED", publisher)]
        assert recorder.calls[0][2] is publisher
    # The failure is logged with the tag and counted by whoever dispatched.
    assert dispatcher(publisher, broker).subscriber_errors == 1
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert "ORDER_PLACED" in failures[0].getMessage()
    assert failures[0].exc_info is not None

    # An explicit caller replaces the publisher.
    marker = object()
    order.clear()
    publisher.publish(Placed(2), caller=marker)
    assert order == ["first", "second", "third"]
    assert first.calls[-1] == (Placed(2), "ORDER_PLACED", marker)
    assert dispatcher(publisher, broker).subscriber_errors == 2


@pytest.mark.parametrize("falsy_caller", [0, [], "", False, ()])
def test_falsy_caller_is_passed_through(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
    falsy_caller: Any,
) -> None:
    publisher, _ = publisher_and_broker
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    publisher.publish(Placed(1), caller=falsy_caller)
    assert recorder.calls[0][2] is falsy_caller


def test_wrong_event_class_raises_naming_both_classes(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    with pytest.raises(ValueError, match="Shipped") as info:
        publisher.publish(Shipped(1))
    message = str(info.value)
    assert f"{Placed.__module__}.{Placed.__qualname__}" in message
    assert f"{Shipped.__module__}.{Shipped.__qualname__}" in message
    assert recorder.calls == []


def test_wrong_event_class_raises_without_subscribers(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    with pytest.raises(ValueError, match="Shipped"):
        publisher.publish(Shipped(1))


def test_subclass_of_event_class_is_accepted(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    event = SpecialPlaced(3, note="vip")
    publisher.publish(event)
    assert recorder.events == [event]


def test_add_twice_delivers_once(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    publisher.add_subscriber(recorder)
    publisher.publish(Placed(1))
    assert len(recorder.calls) == 1
    assert publisher.get_subscribers() == [recorder]


def test_remove_stops_delivery_and_unknown_remove_is_noop(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, broker = publisher_and_broker
    kept, removed, stranger = Recorder(), Recorder(), Recorder()
    publisher.add_subscriber(kept)
    publisher.add_subscriber(removed)
    publisher.remove_subscriber(removed)
    publisher.remove_subscriber(stranger)  # never added: no error
    publisher.remove_subscriber(removed)  # already removed: no error
    publisher.publish(Placed(1))
    assert len(kept.calls) == 1
    assert removed.calls == []
    assert publisher.get_subscribers() == [kept]
    if broker is not None:
        assert broker.subscriber_count(publisher.channel) == 1


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_get_subscribers_in_subscription_order(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    subs = [Recorder(str(i)) for i in range(5)]
    for sub in subs:
        publisher.add_subscriber(sub)
    assert publisher.get_subscribers() == subs
    publisher.remove_subscriber(subs[1])
    publisher.add_subscriber(subs[1])  # re-added: goes to the end
    assert publisher.get_subscribers() == [subs[0], *subs[2:], subs[1]]


def test_publish_without_subscribers_is_noop(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    publisher.publish(Placed(1))
    assert publisher.get_subscribers() == []


def test_every_failure_is_counted_and_logged(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher, broker = publisher_and_broker
    booms = [Exploding(), Exploding()]
    recorder = Recorder()
    publisher.add_subscriber(booms[0])
    publisher.add_subscriber(recorder)
    publisher.add_subscriber(booms[1])
    with caplog.at_level(logging.ERROR):
        for i in range(3):
            publisher.publish(Placed(i))
    assert len(recorder.calls) == 3
    assert dispatcher(publisher, broker).subscriber_errors == 6
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 6
    assert all("ORDER_PLACED" in r.getMessage() for r in errors)


@dataclass
class HashlessSubscriber(EventSubscriber):
    """eq=True without frozen=True sets __hash__ to None: not hashable."""

    label: str
    seen: list[Any]

    def call(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> None:
        self.seen.append(arg)


def test_unhashable_subscribers_work(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    # Equal by value, but two distinct subscribers.
    a, b = HashlessSubscriber("x", []), HashlessSubscriber("x", [])
    with pytest.raises(TypeError):
        hash(a)
    publisher.add_subscriber(a)
    publisher.add_subscriber(b)
    publisher.add_subscriber(a)
    publisher.publish(Placed(1))
    assert a.seen == [Placed(1)]
    assert b.seen == [Placed(1)]
    assert len(publisher.get_subscribers()) == 2
    publisher.remove_subscriber(a)
    publisher.publish(Placed(2))
    assert a.seen == [Placed(1)]
    assert b.seen == [Placed(1), Placed(2)]
    assert publisher.get_subscribers()[0] is b


# --- constructor and properties ---------------------------------------------


def test_publisher_requires_a_publication() -> None:
    with pytest.raises(TypeError):
        EventPublisher("order_placed")  # type: ignore[arg-type]


def test_publisher_properties() -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    assert publisher.publication is PLACED
    assert publisher.broker is broker
    assert publisher.channel == "ORDER_PLACED"
    assert publisher.name == "EventPublisher"
    assert EventPublisher(PLACED).broker is None
    assert "ORDER_PLACED" in repr(publisher)


def test_int_tag_channel_is_its_string() -> None:
    publication = EventPublication(42, Placed)
    broker = LocalBroker()
    publisher = EventPublisher(publication, broker=broker)
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    assert publisher.channel == "42"
    assert broker.subscriber_count("42") == 1
    publisher.publish(Placed(1))
    # The subscriber gets the normalized tag (an int), not the channel string.
    assert recorder.calls[0][1] == 42
    assert type(recorder.calls[0][1]) is int


# --- property: delivery order follows a model list --------------------------

_POOL = 6
_ops = st.lists(
    st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, _POOL - 1)),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=_ops, route=st.sampled_from(["direct", "local"]))
def test_delivery_order_matches_model(ops: list[tuple[str, int]], route: str) -> None:
    publisher, _ = make_publisher(PLACED, route)
    order: list[str] = []
    pool = [Recorder(str(i), order) for i in range(_POOL)]
    model: list[int] = []
    for op, index in ops:
        if op == "add":
            publisher.add_subscriber(pool[index])
            if index not in model:
                model.append(index)
        else:
            publisher.remove_subscriber(pool[index])
            if index in model:
                model.remove(index)
    publisher.publish(Placed(0))
    assert order == [str(i) for i in model]
    assert publisher.get_subscribers() == [pool[i] for i in model]


# --- changes made by subscribers during a dispatch --------------------------


def test_subscriber_removing_itself_during_dispatch_skips_nobody(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    order: list[str] = []

    class RemovesItself(Recorder):
        def call(self, arg: Any, tag: NormalizedTag, caller: Any) -> None:
            super().call(arg, tag, caller)
            publisher.remove_subscriber(self)

    first = RemovesItself("first", order)
    second, third = Recorder("second", order), Recorder("third", order)
    for sub in (first, second, third):
        publisher.add_subscriber(sub)
    publisher.publish(Placed(1))
    assert order == ["first", "second", "third"]
    publisher.publish(Placed(2))
    assert order == ["first", "second", "third", "second", "third"]


def test_subscriber_adding_another_during_dispatch(
    publisher_and_broker: tuple[EventPublisher, LocalBroker | None],
) -> None:
    publisher, _ = publisher_and_broker
    order: list[str] = []
    late = Recorder("late", order)

    class AddsLate(Recorder):
        def call(self, arg: Any, tag: NormalizedTag, caller: Any) -> None:
            super().call(arg, tag, caller)
            publisher.add_subscriber(late)

    first, second = AddsLate("first", order), Recorder("second", order)
    publisher.add_subscriber(first)
    publisher.add_subscriber(second)
    publisher.publish(Placed(1))
    # Nobody already subscribed is skipped; the newcomer gets the next event.
    assert order[:2] == ["first", "second"]
    order.clear()
    publisher.publish(Placed(2))
    assert order == ["first", "second", "late"]
