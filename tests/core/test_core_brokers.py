"""MessageBroker, LocalBroker, custom brokers and swapping brokers at runtime."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _core_support import (
    PLACED,
    SHIPPED,
    Exploding,
    Placed,
    Recorder,
    RecordingBroker,
    Shipped,
)

from eventspype import EventPublication, EventPublisher, LocalBroker, MessageBroker
from eventspype.sub.subscriber import EventSubscriber

# --- MessageBroker is abstract ----------------------------------------------

_METHODS = {
    "publish": lambda self, channel, event, event_tag, caller: None,
    "subscribe": lambda self, channel, subscriber: None,
    "unsubscribe": lambda self, channel, subscriber: None,
}


def test_message_broker_itself_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        MessageBroker()  # type: ignore[abstract]


@pytest.mark.parametrize("missing", sorted(_METHODS))
def test_broker_missing_a_method_cannot_be_instantiated(missing: str) -> None:
    namespace = {k: v for k, v in _METHODS.items() if k != missing}
    Incomplete = type("Incomplete", (MessageBroker,), namespace)
    with pytest.raises(TypeError, match=missing):
        Incomplete()


def test_complete_broker_can_be_instantiated() -> None:
    Complete = type("Complete", (MessageBroker,), dict(_METHODS))
    assert isinstance(Complete(), MessageBroker)


def test_seed_custom_broker_example_verbatim() -> None:
    """The "Writing a Custom Broker" example from the spec, as written."""

    class MyBroker(MessageBroker):
        def publish(self, channel: str, event, event_tag: int, caller) -> None:  # type: ignore[no-untyped-def, override]
            # Deliver the event
            ...

        def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
            # Register the subscriber for the channel
            ...

        def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
            # Remove the subscriber from the channel
            ...

    broker = MyBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    sub = Recorder()
    publisher.add_subscriber(sub)
    publisher.publish(Placed(1))  # the broker delivers nothing: that is its choice
    assert sub.calls == []


# --- a custom broker sees the right calls -----------------------------------


def test_custom_broker_sees_subscribe_publish_unsubscribe(
    recording_broker: RecordingBroker,
) -> None:
    publisher = EventPublisher(PLACED, broker=recording_broker)
    sub = Recorder()
    publisher.add_subscriber(sub)
    assert recording_broker.calls == [("subscribe", "ORDER_PLACED", sub)]

    event = Placed(1)
    publisher.publish(event)
    assert recording_broker.calls[-1] == (
        "publish",
        "ORDER_PLACED",
        event,
        "ORDER_PLACED",
        publisher,
    )
    # Delivered by the broker only, not also directly by the publisher.
    assert sub.calls == [(event, "ORDER_PLACED", publisher)]

    caller = object()
    publisher.publish(event, caller=caller)
    assert recording_broker.calls[-1][4] is caller
    publisher.publish(event, caller=0)
    assert recording_broker.calls[-1][4] == 0

    publisher.remove_subscriber(sub)
    assert recording_broker.calls[-1] == ("unsubscribe", "ORDER_PLACED", sub)


def test_custom_broker_gets_enum_and_int_channels(
    recording_broker: RecordingBroker,
) -> None:
    int_publisher = EventPublisher(EventPublication(5, Placed), broker=recording_broker)
    enum_publisher = EventPublisher(SHIPPED, broker=recording_broker)
    int_publisher.publish(Placed(1))
    enum_publisher.publish(Shipped(1))
    assert recording_broker.of_kind("publish") == [
        ("publish", "5", Placed(1), 5, int_publisher),
        ("publish", "Tags.SHIPPED", Shipped(1), "Tags.SHIPPED", enum_publisher),
    ]


def test_wrong_event_type_never_reaches_the_broker(
    recording_broker: RecordingBroker,
) -> None:
    publisher = EventPublisher(PLACED, broker=recording_broker)
    with pytest.raises(ValueError, match="Shipped"):
        publisher.publish(Shipped(1))
    assert recording_broker.of_kind("publish") == []


# --- LocalBroker ------------------------------------------------------------


def test_local_broker_channel_is_str_of_normalized_tag() -> None:
    broker = LocalBroker()
    for publication in (PLACED, SHIPPED, EventPublication(9, Placed)):
        publisher = EventPublisher(publication, broker=broker)
        sub = Recorder()
        publisher.add_subscriber(sub)
        assert broker.subscriber_count(str(publication.event_tag)) == 1
        publisher.remove_subscriber(sub)
        assert broker.subscriber_count(str(publication.event_tag)) == 0
    assert broker.subscriber_count("never-used") == 0
    assert broker.channels() == []


def test_publishers_sharing_a_broker_and_tag_reach_each_other() -> None:
    broker = LocalBroker()
    first = EventPublisher(EventPublication("order_placed", Placed), broker=broker)
    # Same tag, spelled differently: normalizes to the same channel.
    second = EventPublisher(EventPublication("ORDER_placed", Placed), broker=broker)
    other = EventPublisher(EventPublication("other", Placed), broker=broker)
    a, b, c = Recorder(), Recorder(), Recorder()
    first.add_subscriber(a)
    second.add_subscriber(b)
    other.add_subscriber(c)

    first.publish(Placed(1))
    assert a.events == [Placed(1)]
    assert b.calls == [(Placed(1), "ORDER_PLACED", first)]
    assert c.calls == []

    second.publish(Placed(2))
    assert a.calls[-1] == (Placed(2), "ORDER_PLACED", second)
    assert b.events == [Placed(1), Placed(2)]
    assert c.calls == []

    other.publish(Placed(3))
    assert c.events == [Placed(3)]
    assert len(a.calls) == 2
    assert len(b.calls) == 2
    assert sorted(broker.channels()) == ["ORDER_PLACED", "OTHER"]


def test_local_broker_used_directly() -> None:
    broker = LocalBroker()
    order: list[str] = []
    a, b = Recorder("a", order), Recorder("b", order)
    broker.subscribe("chan", a)
    broker.subscribe("chan", b)
    broker.subscribe("chan", a)  # twice: no effect
    assert broker.subscriber_count("chan") == 2
    broker.publish("chan", "event", "TAG", "caller")
    assert order == ["a", "b"]
    assert a.calls == [("event", "TAG", "caller")]
    broker.publish("nobody", "event", "TAG", "caller")  # unknown channel: no-op
    broker.unsubscribe("chan", a)
    broker.unsubscribe("chan", a)  # unknown: ignored
    broker.unsubscribe("nowhere", a)
    assert broker.subscriber_count("chan") == 1
    broker.unsubscribe("chan", b)
    assert broker.subscriber_count("chan") == 0
    assert broker.channels() == []


def test_local_broker_isolates_and_counts_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = LocalBroker()
    boom, after = Exploding(), Recorder()
    broker.subscribe("chan", boom)
    broker.subscribe("chan", after)
    with caplog.at_level(logging.ERROR):
        broker.publish("chan", Placed(1), "ORDER_PLACED", None)
    assert after.events == [Placed(1)]
    assert broker.subscriber_errors == 1
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "ORDER_PLACED" in record.getMessage()


# --- swapping brokers at runtime --------------------------------------------


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_swap_local_to_local_moves_every_subscriber() -> None:
    old, new = LocalBroker(), LocalBroker()
    publisher = EventPublisher(PLACED, broker=old)
    order: list[str] = []
    subs = [Recorder(str(i), order) for i in range(3)]
    for sub in subs:
        publisher.add_subscriber(sub)

    publisher.broker = new

    assert publisher.broker is new
    assert old.subscriber_count("ORDER_PLACED") == 0
    assert old.channels() == []
    assert new.subscriber_count("ORDER_PLACED") == 3
    publisher.publish(Placed(1))
    assert order == ["0", "1", "2"]
    # The old broker no longer reaches them.
    old.publish("ORDER_PLACED", Placed(2), "ORDER_PLACED", None)
    assert all(len(s.calls) == 1 for s in subs)
    # Subscribers added after the swap go to the new broker.
    late = Recorder()
    publisher.add_subscriber(late)
    assert new.subscriber_count("ORDER_PLACED") == 4
    assert old.subscriber_count("ORDER_PLACED") == 0


def test_swap_to_none_returns_to_direct_dispatch() -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    sub = Recorder()
    publisher.add_subscriber(sub)

    publisher.broker = None

    assert publisher.broker is None
    assert broker.subscriber_count("ORDER_PLACED") == 0
    publisher.publish(Placed(1))
    assert sub.calls == [(Placed(1), "ORDER_PLACED", publisher)]
    broker.publish("ORDER_PLACED", Placed(2), "ORDER_PLACED", None)
    assert len(sub.calls) == 1


def test_swap_from_none_to_custom_broker(recording_broker: RecordingBroker) -> None:
    publisher = EventPublisher(PLACED)
    a, b = Recorder(), Recorder()
    publisher.add_subscriber(a)
    publisher.add_subscriber(b)

    publisher.broker = recording_broker

    assert recording_broker.calls == [
        ("subscribe", "ORDER_PLACED", a),
        ("subscribe", "ORDER_PLACED", b),
    ]
    publisher.publish(Placed(1))
    assert recording_broker.of_kind("publish") == [
        ("publish", "ORDER_PLACED", Placed(1), "ORDER_PLACED", publisher)
    ]
    # Delivered once, by the broker (not also directly).
    assert len(a.calls) == 1
    assert len(b.calls) == 1

    publisher.broker = None
    assert sorted(id(c[2]) for c in recording_broker.of_kind("unsubscribe")) == sorted(
        [id(a), id(b)]
    )
    calls_before = len(recording_broker.calls)
    publisher.publish(Placed(2))
    assert len(recording_broker.calls) == calls_before
    assert len(a.calls) == 2


def test_swap_to_same_broker_is_noop(recording_broker: RecordingBroker) -> None:
    publisher = EventPublisher(PLACED, broker=recording_broker)
    sub = Recorder()
    publisher.add_subscriber(sub)
    calls_before = list(recording_broker.calls)
    publisher.broker = recording_broker
    assert recording_broker.calls == calls_before
    publisher.publish(Placed(1))
    assert len(sub.calls) == 1


def test_swap_none_to_none_is_noop() -> None:
    publisher = EventPublisher(PLACED)
    sub = Recorder()
    publisher.add_subscriber(sub)
    publisher.broker = None
    publisher.publish(Placed(1))
    assert len(sub.calls) == 1


def test_swap_between_custom_brokers(recording_broker: RecordingBroker) -> None:
    second = RecordingBroker()
    publisher = EventPublisher(PLACED, broker=recording_broker)
    sub = Recorder()
    publisher.add_subscriber(sub)
    publisher.broker = second
    assert recording_broker.calls[-1] == ("unsubscribe", "ORDER_PLACED", sub)
    assert second.calls == [("subscribe", "ORDER_PLACED", sub)]
    publisher.publish(Placed(1))
    assert recording_broker.of_kind("publish") == []
    assert len(second.of_kind("publish")) == 1
    assert len(sub.calls) == 1


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_swap_does_not_migrate_dropped_subscribers(
    recording_broker: RecordingBroker,
) -> None:
    import gc

    publisher = EventPublisher(PLACED)
    kept, dropped = Recorder(), Recorder()
    publisher.add_subscriber(kept)
    publisher.add_subscriber(dropped)
    del dropped
    gc.collect()
    publisher.broker = recording_broker
    subscribed: list[Any] = [c[2] for c in recording_broker.of_kind("subscribe")]
    assert subscribed == [kept]


# --- a publisher only manages its own subscribers on a shared broker --------


def test_removing_unknown_subscriber_leaves_other_publishers_alone() -> None:
    """Removing a subscriber a publisher never had is a no-op, also on a
    broker shared with another publisher of the same tag."""
    broker = LocalBroker()
    owner = EventPublisher(EventPublication("order_placed", Placed), broker=broker)
    bystander = EventPublisher(EventPublication("order_placed", Placed), broker=broker)
    sub = Recorder()
    owner.add_subscriber(sub)

    bystander.remove_subscriber(sub)  # not bystander's subscriber

    assert broker.subscriber_count("ORDER_PLACED") == 1
    owner.publish(Placed(1))
    assert sub.events == [Placed(1)]


def test_custom_broker_sees_each_subscription_once(
    recording_broker: RecordingBroker,
) -> None:
    """Brokers need not deduplicate: the publisher already knows its list."""
    publisher = EventPublisher(PLACED, broker=recording_broker)
    sub, stranger = Recorder(), Recorder()
    publisher.add_subscriber(sub)
    publisher.add_subscriber(sub)
    publisher.remove_subscriber(stranger)
    assert recording_broker.calls == [("subscribe", "ORDER_PLACED", sub)]
    publisher.remove_subscriber(sub)
    publisher.remove_subscriber(sub)
    assert recording_broker.of_kind("unsubscribe") == [
        ("unsubscribe", "ORDER_PLACED", sub)
    ]


def test_local_broker_error_log_names_the_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """LocalBroker's docstring (and the contract): a raising subscriber is
    logged with the channel and the tag."""
    broker = LocalBroker()
    boom = Exploding()
    broker.subscribe("eu-orders", boom)
    with caplog.at_level(logging.ERROR):
        broker.publish("eu-orders", Placed(1), "ORDER_PLACED", None)
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "eu-orders" in record.getMessage()
    assert "ORDER_PLACED" in record.getMessage()
