"""A publisher on a LocalBroker runs the broker's delivery loop itself, on the
broker's list of its channel: it must deliver exactly as
``LocalBroker.publish`` would, whoever subscribes, when, and through what."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from _core_support import PLACED, Exploding, Placed, Recorder
from hypothesis import given, settings
from hypothesis import strategies as st

from eventspype import EventPublisher, LocalBroker
from eventspype.hooks import Hook, PublishInfo, add_hook, remove_hook

CHANNEL = str(PLACED.event_tag)


def test_a_channel_emptied_and_subscribed_again_still_reaches_the_publisher() -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker)
    first, second = Recorder(), Recorder()
    broker.subscribe(CHANNEL, first)
    broker.unsubscribe(CHANNEL, first)  # the broker forgets the empty channel
    assert broker.channels() == []
    broker.subscribe(CHANNEL, second)  # ...and makes it again
    publisher.publish(Placed(1))
    assert second.events == [Placed(1)]
    assert first.events == []


def test_an_empty_channel_held_by_a_publisher_is_not_listed() -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker)
    assert broker.channels() == []
    assert broker.subscriber_count(CHANNEL) == 0
    publisher.publish(Placed(1))  # nobody: nothing happens


def test_errors_are_the_brokers_and_logged_with_the_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker)
    boom, after = Exploding(), Recorder()
    publisher.add_subscriber(boom)
    publisher.add_subscriber(after)
    with caplog.at_level(logging.ERROR):
        publisher.publish(Placed(1))
    assert after.events == [Placed(1)]
    assert (broker.subscriber_errors, publisher.subscriber_errors) == (1, 0)
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "eventspype.broker.local"
    assert CHANNEL in record.getMessage()


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_a_subclass_that_delivers_otherwise_is_called() -> None:
    seen: list[Any] = []

    class Filtering(LocalBroker):
        def publish(
            self, channel: str, event: Any, event_tag: Any, caller: Any
        ) -> None:
            seen.append(event)

    broker = Filtering()
    publisher = EventPublisher(PLACED, broker)
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    publisher.publish(Placed(1))
    assert seen == [Placed(1)]
    assert recorder.events == []


def test_swapping_in_and_out_of_a_local_broker() -> None:
    one, two = LocalBroker(), LocalBroker()
    publisher = EventPublisher(PLACED)
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    for broker in (one, None, two, one):
        publisher.broker = broker
        publisher.publish(Placed(1))
    assert len(recorder.events) == 4
    # Only one broker has it now: another publisher on ``two`` reaches nobody.
    EventPublisher(PLACED, two).publish(Placed(2))
    assert len(recorder.events) == 4


def test_with_hooks_the_publish_is_the_brokers() -> None:
    class Seen(Hook):
        def __init__(self) -> None:
            self.brokers: list[Any] = []

        def publish_started(self, info: PublishInfo) -> object:
            self.brokers.append(info.broker)
            return None

    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker)
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    hook = Seen()
    add_hook(hook)
    try:
        publisher.publish(Placed(1))
    finally:
        remove_hook(hook)
    assert hook.brokers == [broker]
    assert recorder.events == [Placed(1)]


#: (operation, subscriber index): what may happen to the channel between two
#: publishes, through the publisher, the broker or another publisher.
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["add", "remove", "subscribe", "unsubscribe", "other_add", "drop"]
        ),
        st.integers(0, 3),
    ),
    max_size=25,
)


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
@settings(max_examples=150, deadline=None)
@given(OPERATIONS)
def test_the_publisher_reaches_whom_the_broker_would(
    operations: list[tuple[str, int]],
) -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker)
    other = EventPublisher(PLACED, broker)
    subscribers: list[Recorder | None] = [Recorder() for _ in range(4)]
    for number, (operation, index) in enumerate(operations):
        subscriber = subscribers[index]
        if subscriber is None:
            continue
        if operation == "add":
            publisher.add_subscriber(subscriber)
        elif operation == "remove":
            publisher.remove_subscriber(subscriber)
        elif operation == "subscribe":
            broker.subscribe(CHANNEL, subscriber)
        elif operation == "unsubscribe":
            broker.unsubscribe(CHANNEL, subscriber)
        elif operation == "other_add":
            other.add_subscriber(subscriber)
        else:
            subscribers[index] = subscriber = None
            gc.collect(0)
        broker.channels()  # forgets emptied channels
        live = [s for s in subscribers if s is not None]
        before = [len(s.calls) for s in live]
        broker.publish(CHANNEL, Placed(number), PLACED.event_tag, publisher)
        expected = [len(s.calls) - b for s, b in zip(live, before, strict=True)]
        publisher.publish(Placed(number))
        got = [
            len(s.calls) - b - e for s, b, e in zip(live, before, expected, strict=True)
        ]
        assert got == expected
