"""The single loop of ``EventPublisher.publish`` and ``LocalBroker.publish``.

Both loops call ``ref().call(...)`` without testing the dereferenced
subscriber, and a publisher on any broker but a ``LocalBroker`` loops over a
one-entry route that hands the event to ``broker.publish``. These tests pin
what that shape must not change: a collected subscriber is dropped quietly, a
subscriber's own ``AttributeError`` is an error like any other, and a broker's
error reaches the publisher's caller.
"""

from __future__ import annotations

import gc
import logging
from typing import Any
from unittest import mock

import pytest
from _core_support import PLACED, Placed, Recorder, RecordingBroker, make_publisher

from eventspype import EventPublisher, EventSubscriber, LocalBroker

CHANNEL = str(PLACED.event_tag)


class MissingAttribute(EventSubscriber):
    """Raises AttributeError from inside its own ``call``."""

    def __init__(self) -> None:
        self.attempts = 0

    def call(self, arg: Any, current_event_tag: Any, current_event_caller: Any) -> None:
        self.attempts += 1
        arg.no_such_attribute  # noqa: B018  (raises AttributeError on purpose)


class BrokenBroker(RecordingBroker):
    """A broker whose ``publish`` fails, as a transport that is down would."""

    def publish(self, channel: str, event: Any, event_tag: int, caller: Any) -> None:  # type: ignore[override]
        raise ConnectionError("the broker is down")


def _errors(publisher: EventPublisher, broker: LocalBroker | None) -> int:
    return publisher.subscriber_errors + (broker.subscriber_errors if broker else 0)


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_collected_subscribers_among_live_ones_are_dropped_quietly(
    route: str, caplog: pytest.LogCaptureFixture
) -> None:
    publisher, broker = make_publisher(PLACED, route)
    order: list[str] = []
    subs = [Recorder(str(i), order) for i in range(6)]
    for sub in subs:
        publisher.add_subscriber(sub)
    publisher.publish(Placed(0))
    del subs[4], subs[2], subs[0]
    gc.collect()
    order.clear()

    with caplog.at_level(logging.DEBUG):
        publisher.publish(Placed(1))

    assert order == ["1", "3", "5"]
    assert _errors(publisher, broker) == 0
    assert caplog.records == []
    assert publisher.get_subscribers() == subs
    listed = publisher._direct
    assert isinstance(listed, type(publisher._subscribers))
    assert len(listed.snapshot) == 3  # the publish applied the removals
    order.clear()
    publisher.publish(Placed(2))
    assert order == ["1", "3", "5"]


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_local_broker_publish_drops_collected_subscribers_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = LocalBroker()
    kept, dropped = Recorder(), Recorder()
    broker.subscribe(CHANNEL, dropped)
    broker.subscribe(CHANNEL, kept)
    del dropped
    gc.collect()
    with caplog.at_level(logging.DEBUG):
        broker.publish(CHANNEL, Placed(1), PLACED.event_tag, None)
    assert kept.events == [Placed(1)]
    assert broker.subscriber_errors == 0
    assert caplog.records == []
    assert len(broker._channels[CHANNEL].snapshot) == 1


def test_a_subscribers_own_attribute_error_is_an_error(
    route: str, caplog: pytest.LogCaptureFixture
) -> None:
    publisher, broker = make_publisher(PLACED, route)
    failing, after = MissingAttribute(), Recorder()
    publisher.add_subscriber(failing)
    publisher.add_subscriber(after)
    with caplog.at_level(logging.ERROR):
        publisher.publish(Placed(1))
        publisher.publish(Placed(2))
    assert failing.attempts == 2
    assert after.events == [Placed(1), Placed(2)]
    assert _errors(publisher, broker) == 2
    assert len([r for r in caplog.records if r.exc_info]) == 2
    assert publisher.get_subscribers() == [failing, after]


def test_a_brokers_error_reaches_the_caller_uncounted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = EventPublisher(PLACED, broker=BrokenBroker())
    publisher.add_subscriber(sub := Recorder())
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectionError, match="down"):
        publisher.publish(Placed(1))
    assert publisher.subscriber_errors == 0
    assert caplog.records == []
    assert sub.events == []


def test_a_brokers_publish_is_looked_up_at_each_publish() -> None:
    broker = RecordingBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    publisher.add_subscriber(sub := Recorder())
    publisher.publish(Placed(1))
    # Shadowed on the instance after the publisher was made (EventRecorder
    # does this), then on the class (as hooks swap LocalBroker.publish).
    seen: list[Any] = []
    with mock.patch.object(broker, "publish", lambda *args: seen.append(args)):
        publisher.publish(Placed(2))
    with mock.patch.object(
        RecordingBroker, "publish", lambda self, *args: seen.append(args)
    ):
        publisher.publish(Placed(3))
    publisher.publish(Placed(4))
    assert [args[1] for args in seen] == [Placed(2), Placed(3)]
    assert sub.events == [Placed(1), Placed(4)]
    assert all(args[3] is publisher for args in seen)


def test_the_route_follows_every_broker_swap() -> None:
    custom, local = RecordingBroker(), LocalBroker()
    publisher = EventPublisher(PLACED)
    publisher.add_subscriber(sub := Recorder())
    for broker in (custom, None, local, custom, None):
        publisher.broker = broker
        publisher.publish(Placed(1), caller="me")
    assert sub.calls == [(Placed(1), PLACED.event_tag, "me")] * 5
    assert len(custom.of_kind("publish")) == 2


def test_an_event_is_checked_as_isinstance_would() -> None:
    publisher = EventPublisher(PLACED)
    publisher.add_subscriber(sub := Recorder())
    lookalike = mock.Mock(spec=Placed)  # its __class__ says Placed
    publisher.publish(lookalike)
    assert sub.events == [lookalike]
    with pytest.raises(ValueError, match="Invalid event type"):
        publisher.publish(mock.Mock())
    assert sub.events == [lookalike]
