"""The public API of eventspype 1.4.2, as its own test suite exercises it.

These are the behaviours that the reference project's public-API tests check
(those that read no private attribute and mock no internals), restated here in
our own words and structure. The module imports nothing but 1.4.2's public
paths, so it also passes unchanged against eventspype 1.4.2 itself: copy it out
of the checkout and run pytest on it in a Python 3.13 venv with
``eventspype==1.4.2`` installed. That is how we know it describes 1.4.2 and
not only us.

What 1.4.2 does and we deliberately do not is listed on
``docs/differences.md`` and tested in ``tests/core/test_core_dropin*.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import weakref
from enum import Enum
from functools import partial
from typing import Any, NamedTuple

import pytest

from eventspype.broker.local import LocalBroker
from eventspype.event import TagEnum, format_event_tag, normalize_event_tag
from eventspype.pub.multipublisher import MultiPublisher
from eventspype.pub.publication import EventPublication
from eventspype.pub.publisher import EventPublisher
from eventspype.sub.functional import FunctionalEventSubscriber
from eventspype.sub.multisubscriber import MultiSubscriber
from eventspype.sub.queue import QueueEventSubscriber
from eventspype.sub.reporter import ReportingEventSubscriber
from eventspype.sub.subscriber import EventSubscriber, OwnedEventSubscriber
from eventspype.sub.subscription import EventSubscription, PublicationSubscription
from eventspype.sub.tracker import TrackingEventSubscriber


class Kind(Enum):
    FIRST = 1
    SECOND = 2


@dataclasses.dataclass
class Greeting:
    text: str


@dataclasses.dataclass
class Farewell:
    text: str


class Inbox(EventSubscriber):
    """Records what it receives, with the tag and the caller."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.tags: list[Any] = []
        self.callers: list[Any] = []

    def call(self, arg: Any, current_event_tag: Any, current_event_caller: Any) -> None:
        self.events.append(arg)
        self.tags.append(current_event_tag)
        self.callers.append(current_event_caller)


class Failing(EventSubscriber):
    def call(self, arg: Any, current_event_tag: Any, current_event_caller: Any) -> None:
        raise RuntimeError("subscriber failure for the test")


def greeting_publisher(broker: LocalBroker | None = None) -> EventPublisher:
    return EventPublisher(EventPublication(Kind.FIRST, Greeting), broker=broker)


# --- event tags ---------------------------------------------------------------


def test_enum_tags_are_named_by_class_and_member() -> None:
    assert normalize_event_tag(Kind.FIRST) == "Kind.FIRST"
    assert format_event_tag(Kind.SECOND) == "Kind.SECOND"


def test_string_tags_ignore_case_but_not_spacing_or_punctuation() -> None:
    tags = {
        normalize_event_tag(t) for t in ("user_created", "USER_CREATED", "User_Created")
    }
    assert tags == {"USER_CREATED"}
    assert normalize_event_tag("user created") == normalize_event_tag("USER CREATED")
    assert normalize_event_tag("user.created") != normalize_event_tag("user_created")
    assert normalize_event_tag("événement") == normalize_event_tag("ÉVÉNEMENT")
    assert format_event_tag("abc") == '"abc"'


def test_int_tags_stay_ints_and_other_values_are_refused() -> None:
    assert normalize_event_tag(42) == 42
    assert format_event_tag(42) == "42"
    for bad in (1.5, None, object()):
        with pytest.raises(ValueError, match="Invalid event tag"):
            normalize_event_tag(bad)  # type: ignore[arg-type]


def test_tag_enum_accepts_int_str_and_bool_members() -> None:
    class Mixed(TagEnum):
        NUMBER = 10
        WORD = "some_event"

    class Flags(TagEnum):
        ON = True
        OFF = False

    assert Mixed.NUMBER.value == 10
    assert Mixed.WORD.value == "some_event"
    assert isinstance(Mixed.WORD, Enum)
    assert isinstance(Mixed.WORD, TagEnum)
    assert Flags.ON.value is True
    assert normalize_event_tag(Mixed.WORD) == "Mixed.WORD"


@pytest.mark.parametrize("bad", [3.14, {"key": "val"}, [1, 2], None])
def test_tag_enum_refuses_other_member_values(bad: object) -> None:
    with pytest.raises(TypeError, match="must be int or str"):

        class Bad(TagEnum):
            BAD = bad


def test_publication_keeps_the_given_and_the_normalized_tag() -> None:
    publication = EventPublication("user_created", str)
    assert publication.original_tag == "user_created"
    assert publication.event_tag == "USER_CREATED"
    assert publication.event_class is str
    assert EventPublication(Kind.FIRST, str).original_tag is Kind.FIRST


# --- EventPublisher -----------------------------------------------------------


def test_publisher_name_and_logger() -> None:
    publisher = greeting_publisher()
    assert publisher.name == "EventPublisher"
    assert isinstance(publisher.logger, logging.Logger)
    assert publisher.logger.name == EventPublisher.__module__
    assert publisher.logger is publisher.logger


def test_publisher_delivers_event_tag_and_itself_as_caller() -> None:
    publisher = greeting_publisher()
    first, second = Inbox(), Inbox()
    publisher.add_subscriber(first)
    publisher.add_subscriber(second)
    assert publisher.get_subscribers() == [first, second]

    publisher.publish(Greeting("hi"))

    for inbox in (first, second):
        assert inbox.events == [Greeting("hi")]
        assert inbox.tags == [normalize_event_tag(Kind.FIRST)]
        assert inbox.callers == [publisher]


def test_publisher_refuses_an_event_of_another_class() -> None:
    publisher = greeting_publisher()
    with pytest.raises(ValueError, match="Invalid event type"):
        publisher.publish("not a greeting")


def test_removed_and_unknown_subscribers() -> None:
    publisher = greeting_publisher()
    inbox = Inbox()
    publisher.remove_subscriber(inbox)  # unknown: ignored
    publisher.add_subscriber(inbox)
    publisher.remove_subscriber(inbox)
    publisher.publish(Greeting("nobody"))
    assert publisher.get_subscribers() == []
    assert inbox.events == []


def test_failing_subscriber_is_logged_with_the_reference_wording(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = greeting_publisher()
    failing, inbox = Failing(), Inbox()
    publisher.add_subscriber(failing)
    publisher.add_subscriber(inbox)
    with caplog.at_level(logging.ERROR):
        publisher.publish(Greeting("still delivered"))
    (record,) = caplog.records
    assert "Unexpected error while processing event" in record.getMessage()
    assert record.exc_info is not None
    assert inbox.events == [Greeting("still delivered")]


def test_dropped_subscriber_stops_being_listed() -> None:
    publisher = greeting_publisher()
    kept, dropped = Inbox(), Inbox()
    publisher.add_subscriber(dropped)
    publisher.add_subscriber(kept)
    publisher.publish(Greeting("both"))
    del dropped
    gc.collect()
    assert publisher.get_subscribers() == [kept]
    publisher.publish(Greeting("one"))
    assert kept.events == [Greeting("both"), Greeting("one")]


# --- brokers ------------------------------------------------------------------


def test_local_broker_routes_by_channel() -> None:
    broker = LocalBroker()
    a, b = Inbox(), Inbox()
    broker.subscribe("channel_a", a)
    broker.subscribe("channel_b", b)
    broker.publish("channel_a", Greeting("a"), 1, None)
    broker.publish("channel_b", Farewell("b"), 2, None)
    broker.publish("nobody_listens", Greeting("x"), 3, None)
    assert (a.events, a.tags) == ([Greeting("a")], [1])
    assert (b.events, b.tags) == ([Farewell("b")], [2])
    broker.unsubscribe("channel_a", a)
    broker.unsubscribe("never_subscribed", a)
    broker.publish("channel_a", Greeting("again"), 1, None)
    assert a.events == [Greeting("a")]


def test_local_broker_logs_a_failing_subscriber(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = LocalBroker()
    failing = Failing()
    broker.subscribe("channel", failing)
    with caplog.at_level(logging.ERROR):
        broker.publish("channel", Greeting("x"), 1, None)
    (record,) = caplog.records
    assert record.getMessage().startswith("Unexpected error")
    assert isinstance(broker.logger, logging.Logger)


def test_publisher_through_a_broker_and_broker_swaps() -> None:
    old, new = LocalBroker(), LocalBroker()
    publisher = greeting_publisher(broker=old)
    assert publisher.broker is old
    assert greeting_publisher().broker is None
    inbox = Inbox()
    publisher.add_subscriber(inbox)
    publisher.publish(Greeting("old"))

    publisher.broker = new
    publisher.publish(Greeting("new"))
    channel = str(normalize_event_tag(Kind.FIRST))
    old.publish(channel, Greeting("stale"), normalize_event_tag(Kind.FIRST), None)
    assert inbox.events == [Greeting("old"), Greeting("new")]

    publisher.remove_subscriber(inbox)
    publisher.publish(Greeting("gone"))
    assert inbox.events == [Greeting("old"), Greeting("new")]


def test_direct_publisher_given_a_broker_later() -> None:
    publisher = greeting_publisher()
    inbox = Inbox()
    publisher.add_subscriber(inbox)
    publisher.publish(Greeting("direct"))
    publisher.broker = LocalBroker()
    publisher.publish(Greeting("brokered"))
    assert inbox.events == [Greeting("direct"), Greeting("brokered")]


# --- MultiPublisher -----------------------------------------------------------


class Greeter(MultiPublisher):
    HELLO = EventPublication(Kind.FIRST, Greeting)
    BYE = EventPublication(Kind.SECOND, Farewell)
    not_a_publication = "ignored"


class Base(MultiPublisher):
    shared = EventPublication(Kind.FIRST, Greeting)


class Child(Base):
    shared = EventPublication(Kind.FIRST, Farewell)  # overrides the parent's
    extra = EventPublication(Kind.SECOND, Farewell)


def test_multipublisher_lists_its_declarations_and_inherits_them() -> None:
    assert Greeter.get_event_definitions() == {
        "HELLO": Greeter.HELLO,
        "BYE": Greeter.BYE,
    }
    assert list(Base.get_event_definitions()) == ["shared"]
    children = Child.get_event_definitions()
    assert set(children) == {"shared", "extra"}
    assert children["shared"].event_class is Farewell
    assert Child.is_publication_valid(Child.extra)
    assert Child.is_publication_valid(Child.shared)


def test_multipublisher_validity_checks() -> None:
    stranger = EventPublication(Kind.FIRST, Greeting)
    assert Greeter.is_publication_valid(Greeter.HELLO, raise_error=False) is True
    assert Greeter.is_publication_valid(stranger, raise_error=False) is False
    greeter = Greeter()
    with pytest.raises(ValueError, match="Invalid publication"):
        greeter.add_subscriber(stranger, Inbox())
    with pytest.raises(ValueError, match="Invalid publication"):
        greeter.publish(stranger, Greeting("x"))


def test_multipublisher_finds_a_publication_by_tag() -> None:
    class Other(Enum):
        UNKNOWN = 999

    assert Greeter.get_event_definition_by_tag(Kind.SECOND) is Greeter.BYE
    assert Greeter.get_event_definition_by_tag("Kind.FIRST") is Greeter.HELLO
    with pytest.raises(ValueError, match="No event definition found for tag"):
        Greeter.get_event_definition_by_tag(Other.UNKNOWN)


def test_multipublisher_delivers_per_publication() -> None:
    greeter = Greeter()
    inbox = Inbox()
    greeter.add_subscriber(Greeter.HELLO, inbox)
    greeter.publish(Greeter.BYE, Farewell("nobody listens"))
    greeter.publish(Greeter.HELLO, Greeting("hi"))
    assert inbox.events == [Greeting("hi")]
    assert inbox.tags == [normalize_event_tag(Kind.FIRST)]
    assert inbox.callers == [greeter]
    with pytest.raises(ValueError, match="Invalid event type"):
        greeter.publish(Greeter.HELLO, Farewell("wrong class"))

    greeter.remove_subscriber(Greeter.HELLO, inbox)
    greeter.remove_subscriber(Greeter.BYE, inbox)  # never added: ignored
    greeter.publish(Greeter.HELLO, Greeting("gone"))
    assert inbox.events == [Greeting("hi")]


def test_multipublisher_keeps_callbacks_alive() -> None:
    greeter = Greeter()
    seen: list[Any] = []

    def on_hello(event: Greeting, tag: Any, caller: Any) -> None:
        seen.append((event.text, tag))

    greeter.add_subscriber_with_callback(Greeter.HELLO, on_hello)
    gc.collect()
    greeter.publish(Greeter.HELLO, Greeting("kept"))
    greeter.remove_subscriber_with_callback(Greeter.HELLO, on_hello)
    greeter.remove_subscriber_with_callback(Greeter.BYE, on_hello)  # unknown
    greeter.publish(Greeter.HELLO, Greeting("removed"))
    assert seen == [("kept", normalize_event_tag(Kind.FIRST))]


def test_multipublisher_broker_reaches_every_publication() -> None:
    greeter = Greeter()
    inbox = Inbox()
    greeter.add_subscriber(Greeter.HELLO, inbox)
    broker = LocalBroker()
    greeter.broker = broker
    assert greeter.broker is broker
    greeter.publish(Greeter.HELLO, Greeting("via broker"))
    assert inbox.events == [Greeting("via broker")]


# --- subscribers --------------------------------------------------------------


def test_functional_subscriber_with_and_without_event_info() -> None:
    calls: list[Any] = []
    caller = object()
    full = FunctionalEventSubscriber(lambda e, t, c: calls.append((e, t, c)))
    full.call("a", 1, caller)
    full("b", 2, caller)  # __call__ is call
    FunctionalEventSubscriber(calls.append, with_event_info=False).call("c", 3, caller)
    assert calls == [("a", 1, caller), ("b", 2, caller), "c"]


def test_owned_subscriber_keeps_its_owner() -> None:
    class Owned(OwnedEventSubscriber):
        def call(
            self, arg: Any, current_event_tag: Any, current_event_caller: Any
        ) -> None:
            pass

    owner = object()
    assert Owned(owner).owner is owner


class Shape(NamedTuple):
    name: str
    sides: int


class Plain:
    def __init__(self, text: str) -> None:
        self.text = text


def _reported(caplog: pytest.LogCaptureFixture, event: Any) -> tuple[str, Any]:
    reporter = ReportingEventSubscriber(event_source="test_source")
    with caplog.at_level(logging.INFO, logger=ReportingEventSubscriber.__module__):
        reporter.call(event, 1, None)
    (record,) = caplog.records
    return record.getMessage(), record.event_data  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("event", "fields", "name"),
    [
        (Greeting("hello there"), {"text": "hello there"}, "Greeting"),
        (Shape("triangle", 3), {"name": "triangle", "sides": 3}, "Shape"),
        ("just text", {"value": "just text"}, "str"),
        (None, {"value": "None"}, "NoneType"),
    ],
)
def test_reporter_logs_event_fields_and_metadata(
    caplog: pytest.LogCaptureFixture, event: Any, fields: dict[str, Any], name: str
) -> None:
    message, data = _reported(caplog, event)
    assert data == {
        **fields,
        "event_name": name,
        "event_source": "test_source",
        "event_tag": 1,
    }
    assert str(next(iter(fields.values()))) in message


def test_reporter_logs_plain_objects_by_their_str(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = Plain("x")
    message, data = _reported(caplog, event)
    assert data["value"] == str(event)
    assert data["event_name"] == "Plain"
    assert "Plain" in message


def test_reporter_source_and_shared_logger() -> None:
    assert ReportingEventSubscriber(event_source="src").event_source == "src"
    assert ReportingEventSubscriber().event_source is None
    assert ReportingEventSubscriber().logger() is ReportingEventSubscriber().logger()


def test_tracker_keeps_the_last_events() -> None:
    tracker = TrackingEventSubscriber(event_source="test_source", max_len=2)
    assert tracker.event_source == "test_source"
    assert TrackingEventSubscriber().event_source is None
    events = [Greeting(str(i)) for i in range(3)]
    for event in events:
        tracker.call(event, 1, None)
    assert list(tracker.event_log) == events[1:]
    tracker.clear()
    assert len(tracker.event_log) == 0


def test_tracker_wait_for_resolves_every_waiter() -> None:
    tracker = TrackingEventSubscriber()

    async def scenario() -> list[Any]:
        waiters = [
            asyncio.ensure_future(tracker.wait_for(Greeting, timeout_seconds=5))
            for _ in range(3)
        ]
        await asyncio.sleep(0)  # the waits are registered
        tracker.call(Farewell("other type"), 1, None)
        tracker.call(Greeting("awaited"), 1, None)
        return list(await asyncio.gather(*waiters))

    assert asyncio.run(scenario()) == [Greeting("awaited")] * 3


def test_tracker_wait_for_times_out() -> None:
    tracker = TrackingEventSubscriber()

    async def scenario() -> None:
        waiter = asyncio.ensure_future(tracker.wait_for(Greeting, timeout_seconds=0.05))
        await asyncio.sleep(0)
        tracker.call(Farewell("not the awaited type"), 1, None)
        await waiter

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(scenario())


class NamedCaller:
    name = "my_caller"


def test_queue_subscriber_consumers() -> None:
    queues = QueueEventSubscriber(max_queue_size=1000)
    first = queues.subscribe_consumer()
    second = queues.subscribe_consumer()
    assert isinstance(first, asyncio.Queue)
    assert first.maxsize == 1000
    assert queues.consumer_count == 2
    queues.call(Greeting("fan out"), 99, NamedCaller())
    item = first.get_nowait()
    assert second.get_nowait()["data"] == item["data"] == {"text": "fan out"}
    assert item["event_type"] == "Greeting"
    assert item["event_tag"] == 99
    assert item["caller"] == "my_caller"
    assert isinstance(item["timestamp"], float)
    queues.unsubscribe_consumer(first)
    queues.unsubscribe_consumer(asyncio.Queue())  # unknown: ignored
    assert queues.consumer_count == 1


def test_queue_subscriber_callers_without_name_and_full_queues() -> None:
    queues = QueueEventSubscriber(max_queue_size=1)
    queues.call(Greeting("no consumer"), 1, Plain("x"))  # no consumer: no-op
    queue = queues.subscribe_consumer()
    queues.call(Greeting("a"), 1, Plain("x"))
    queues.call(Greeting("b"), 1, Plain("x"))  # full: skipped, no exception
    assert queue.qsize() == 1
    assert queue.get_nowait()["caller"] == "Plain"
    assert isinstance(queues.logger, logging.Logger)


def test_queue_subscriber_behind_a_publisher() -> None:
    publisher = greeting_publisher()
    queues = QueueEventSubscriber()
    publisher.add_subscriber(queues)
    queue = queues.subscribe_consumer()
    publisher.publish(Greeting("integration"))
    assert queue.get_nowait()["data"] == {"text": "integration"}


# --- subscriptions and MultiSubscriber ---------------------------------------


class StrPublisher(EventPublisher):
    def __init__(self) -> None:
        super().__init__(EventPublication(Kind.FIRST, str))


class OtherStrPublisher(EventPublisher):
    def __init__(self) -> None:
        super().__init__(EventPublication(Kind.FIRST, str))


class Collector:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def on_event(
        self, arg: Any, current_event_tag: Any, current_event_caller: Any
    ) -> None:
        self.calls.append(arg)


def test_subscription_properties_and_hash() -> None:
    def callback(event: Any) -> None:
        pass

    subscription = EventSubscription(StrPublisher, Kind.FIRST, callback)
    assert subscription.publisher_class is StrPublisher
    assert subscription.event_tag is Kind.FIRST
    assert subscription.callback is callback
    assert subscription.callback_with_subscriber is True
    assert hash(subscription) == hash(
        EventSubscription(StrPublisher, Kind.FIRST, callback)
    )
    assert subscription.event_tag_str == str(Kind.FIRST)
    both = EventSubscription(StrPublisher, [Kind.FIRST, Kind.SECOND], callback)
    assert both.event_tag_str == f"[{Kind.FIRST}, {Kind.SECOND}]"


def test_subscription_with_a_plain_callback() -> None:
    collector = Collector()
    publisher = StrPublisher()
    subscription = EventSubscription(
        StrPublisher, Kind.FIRST, collector.on_event, callback_with_subscriber=False
    )
    created = subscription.subscribe(publisher, collector)
    assert len(created) == 1
    assert isinstance(created[0], FunctionalEventSubscriber)
    publisher.publish("one")
    subscription.unsubscribe(publisher, created[0])
    publisher.publish("two")
    assert collector.calls == ["one"]
    again = subscription.subscribe(publisher, None)
    assert len(again) == 1
    publisher.publish("three")
    assert collector.calls == ["one", "three"]


def test_subscription_to_several_tags_of_one_publisher() -> None:
    collector = Collector()
    publisher = StrPublisher()
    subscription = EventSubscription(
        StrPublisher,
        [Kind.FIRST, Kind.SECOND],
        collector.on_event,
        callback_with_subscriber=False,
    )
    created = subscription.subscribe(publisher, collector)
    assert len(created) == 2
    publisher.publish("x")
    assert collector.calls == ["x", "x"]


def test_subscription_calls_the_owners_method_of_the_same_name() -> None:
    collector = Collector()
    publisher = StrPublisher()
    subscription = EventSubscription(StrPublisher, Kind.FIRST, Collector.on_event)
    kept = subscription(publisher, collector)
    publisher.publish("through the owner")
    assert collector.calls == ["through the owner"]
    assert len(kept) == 1


def test_subscription_errors_use_the_reference_wording() -> None:
    collector = Collector()
    with pytest.raises(ValueError, match="Publisher type mismatch"):
        EventSubscription(StrPublisher, Kind.FIRST, Collector.on_event).subscribe(
            OtherStrPublisher(), collector
        )
    with pytest.raises(
        ValueError, match="Subscriber is required for callback with subscriber"
    ):
        EventSubscription(StrPublisher, Kind.FIRST, Collector.on_event).subscribe(
            StrPublisher(), None
        )
    with pytest.raises(
        ValueError,
        match="Publisher class must be a subclass of EventPublisher or MultiPublisher",
    ):
        EventSubscription(Collector, Kind.FIRST, print)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match="Publisher class must be a subclass of MultiPublisher"
    ):
        PublicationSubscription(
            StrPublisher,  # type: ignore[arg-type]
            Greeter.HELLO,
            print,
            callback_with_subscriber=False,
        )


def test_subscriptions_to_a_multipublisher() -> None:
    collector = Collector()
    greeter = Greeter()
    by_tag = EventSubscription(
        Greeter, Kind.FIRST, collector.on_event, callback_with_subscriber=False
    )
    by_publication = PublicationSubscription(
        Greeter, Greeter.BYE, collector.on_event, callback_with_subscriber=False
    )
    assert by_publication.publisher_class is Greeter
    kept = by_tag.subscribe(greeter, collector) + by_publication.subscribe(
        greeter, None
    )
    greeter.publish(Greeter.HELLO, Greeting("hello"))
    greeter.publish(Greeter.BYE, Farewell("bye"))
    by_tag.unsubscribe(greeter, kept[0])
    greeter.publish(Greeter.HELLO, Greeting("unheard"))
    assert collector.calls == [Greeting("hello"), Farewell("bye")]


class Audit(MultiSubscriber):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Any] = []

    def logger(self) -> logging.Logger:
        return logging.getLogger(__name__)

    def handle(self, event: Any) -> None:
        self.logger().warning("[Audit] %s", event)
        self.calls.append(event)

    @staticmethod
    def _adapt(handler: Any, owner: Any, arg: Any, tag: Any, caller: Any) -> None:
        handler(owner, arg)

    first = EventSubscription(StrPublisher, Kind.FIRST, partial(_adapt, handle))
    second = EventSubscription(StrPublisher, Kind.SECOND, partial(_adapt, handle))


def test_multisubscriber_declarations_and_subscriptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    audit = Audit()
    assert set(audit.get_event_definitions()) == {"first", "second"}
    publisher = StrPublisher()
    audit.add_subscription(Audit.first, publisher)
    audit.add_subscription(Audit.first, publisher)  # once only
    assert list(audit.subscribers[publisher]) == [Audit.first]
    with caplog.at_level(logging.WARNING):
        publisher.publish("logged")
    assert audit.calls == ["logged"]
    assert "[Audit] logged" in caplog.text

    audit.remove_subscription(Audit.first, publisher)
    audit.remove_subscription(Audit.second, publisher)  # never added
    assert publisher not in audit.subscribers
    publisher.publish("unheard")
    assert audit.calls == ["logged"]


def test_multisubscriber_refuses_undeclared_subscriptions() -> None:
    audit = Audit()
    stranger = EventSubscription(StrPublisher, Kind.FIRST, lambda m, t, p: None)
    for method in (audit.add_subscription, audit.remove_subscription):
        with pytest.raises(
            ValueError, match="Subscription not defined in event definitions"
        ):
            method(stranger, StrPublisher())


def test_multisubscriber_lets_go_of_publishers() -> None:
    audit = Audit()
    publisher = StrPublisher()
    ref = weakref.ref(publisher)
    audit.add_subscription(Audit.first, publisher)
    audit.remove_subscription(Audit.first, publisher)
    audit.remove_subscription(Audit.second, publisher)
    del publisher
    gc.collect()
    assert ref() is None


def test_log_event_decorator(caplog: pytest.LogCaptureFixture) -> None:
    class Logged(MultiSubscriber):
        def logger(self) -> logging.Logger:
            return logging.getLogger(__name__)

        @MultiSubscriber.log_event(log_level=logging.WARNING, log_prefix="Custom")
        def handle(self, event: Any) -> Any:
            return event

    with caplog.at_level(logging.WARNING):
        assert Logged().handle("an event") == "an event"
    assert "[Custom] an event" in caplog.text
