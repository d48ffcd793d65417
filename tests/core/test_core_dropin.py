"""Coming from eventspype 1.4.2: its last public names, and mistakes that now
fail (or warn) at the call that makes them instead of in the log at publish."""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import inspect
import logging
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from _core_support import PLACED, Placed, Recorder

import eventspype
from eventspype import (
    EventPublication,
    EventPublisher,
    EventSubscriber,
    FunctionalEventSubscriber,
    LocalBroker,
    MultiPublisher,
    QueueEventSubscriber,
    ReportingEventSubscriber,
    SubscriberLostWarning,
    TagEnum,
    TrackingEventSubscriber,
    normalize_event_tag,
)
from eventspype._missing import MISSING_HINTS, MissingDistributionFinder


class Shop(MultiPublisher):
    PLACED = EventPublication("order_placed", Placed)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


# --- the last public names of 1.4.2 -----------------------------------------


@pytest.mark.parametrize(
    ("owner", "module"),
    [
        (EventPublisher(PLACED), "eventspype.pub.publisher"),
        (LocalBroker(), "eventspype.broker.local"),
        (QueueEventSubscriber(), "eventspype.sub.queue"),
    ],
    ids=["EventPublisher", "LocalBroker", "QueueEventSubscriber"],
)
def test_logger_is_the_modules_logger_every_time(owner: Any, module: str) -> None:
    assert owner.logger is logging.getLogger(module)
    assert owner.logger is owner.logger


def test_call_parameters_are_named_as_in_1_4_2() -> None:
    # Keyword callers of 1.4.2's call(event_object=...) keep working.
    for cls in (TrackingEventSubscriber, ReportingEventSubscriber):
        assert list(inspect.signature(cls.call).parameters)[1] == "event_object"
    tracker = TrackingEventSubscriber()
    tracker.call(event_object=Placed(1), current_event_tag=1, current_event_caller=None)
    assert list(tracker.event_log) == [Placed(1)]


def test_tag_enum_bool_members_have_their_own_tags() -> None:
    class Switch(TagEnum):
        ON = True
        OFF = False

    assert Switch.ON.value is True
    # The tag is the member's name, so True does not collide with the int tag 1.
    assert normalize_event_tag(Switch.ON) == "Switch.ON"
    assert normalize_event_tag(Switch.ON) != normalize_event_tag(1)


def test_tag_enum_error_begins_with_the_reference_wording() -> None:
    with pytest.raises(TypeError, match=r"^TagEnum member value must be int or str"):

        class Bad(TagEnum):
            RATIO = 0.5


def test_error_messages_begin_with_the_reference_wording(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from eventspype import EventSubscription, MultiSubscriber

    class Audit(MultiSubscriber):
        pass

    stranger = EventSubscription(Shop, "order_placed", print)
    with pytest.raises(ValueError, match=r"^Subscription not defined in event"):
        Audit().add_subscription(stranger, Shop())
    with pytest.raises(ValueError, match=r"^Invalid publication: "):
        Shop().publish(EventPublication("order_placed", Placed), Placed(1))
    with pytest.raises(ValueError, match=r"^No event definition found for tag: "):
        Shop.get_event_definition_by_tag("nothing")

    class Failing(Recorder):
        def call(self, arg: Any, tag: Any, caller: Any) -> None:
            raise RuntimeError("boom")

    broker = LocalBroker()
    failing = Failing()
    broker.subscribe("c", failing)
    with caplog.at_level(logging.ERROR):
        broker.publish("c", Placed(1), "C", None)
    (record,) = caplog.records
    assert record.getMessage().startswith("Unexpected error while processing event")
    # Our detail follows: the subscriber, the event class and the channel.
    assert "Placed" in record.getMessage()
    assert "'c'" in record.getMessage()


# --- a plain function given where a subscriber is expected ------------------


def _handler(event: Any) -> None:
    pass


@pytest.mark.parametrize("bad", [_handler, lambda event: None, print])
def test_add_subscriber_refuses_a_function_and_names_the_wrapper(bad: Any) -> None:
    publisher = EventPublisher(PLACED)
    with pytest.raises(TypeError, match="FunctionalEventSubscriber"):
        publisher.add_subscriber(bad)
    with pytest.raises(TypeError, match="FunctionalEventSubscriber"):
        Shop().add_subscriber(Shop.PLACED, bad)
    with pytest.raises(TypeError, match="FunctionalEventSubscriber"):
        LocalBroker().subscribe("channel", bad)
    brokered = EventPublisher(PLACED, broker=LocalBroker())
    with pytest.raises(TypeError, match="FunctionalEventSubscriber"):
        brokered.add_subscriber(bad)
    assert publisher.get_subscribers() == brokered.get_subscribers() == []


def test_multipublisher_refuses_before_creating_anything() -> None:
    shop = Shop()
    with pytest.raises(TypeError, match="add_subscriber needs an EventSubscriber"):
        shop.add_subscriber(Shop.PLACED, "not a subscriber")  # type: ignore[arg-type]
    assert shop.get_subscribers(Shop.PLACED) == []


def test_duck_typed_subscribers_are_still_accepted() -> None:
    class Duck:  # not an EventSubscriber, but has call(): 1.4.2 accepted it
        def __init__(self) -> None:
            self.events: list[Any] = []

        def call(self, arg: Any, tag: Any, caller: Any) -> None:
            self.events.append(arg)

    duck = Duck()
    publisher = EventPublisher(PLACED)
    publisher.add_subscriber(duck)  # type: ignore[arg-type]
    publisher.publish(Placed(1))
    assert duck.events == [Placed(1)]


# --- FunctionalEventSubscriber checks its callback when it is created -------


def test_one_argument_callback_with_event_info_says_what_to_pass() -> None:
    with pytest.raises(TypeError, match="pass with_event_info=False"):
        FunctionalEventSubscriber(lambda event: None)
    with pytest.raises(TypeError, match="pass with_event_info=False"):
        FunctionalEventSubscriber(_handler, with_event_info=True)


def test_three_argument_callback_without_event_info_says_what_to_pass() -> None:
    with pytest.raises(TypeError, match="pass with_event_info=True"):
        FunctionalEventSubscriber(lambda e, t, c: None, with_event_info=False)


def test_callback_fitting_neither_call_is_refused() -> None:
    with pytest.raises(TypeError, match=r"must accept \(event\) or"):
        FunctionalEventSubscriber(lambda a, b: None)
    with pytest.raises(TypeError, match="needs a callable"):
        FunctionalEventSubscriber("print")  # type: ignore[arg-type]


class _Handlers:
    def on_event(self, event: Any) -> None:
        pass

    def on_full(self, event: Any, tag: Any, caller: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("callback", "with_event_info"),
    [
        (lambda *args: None, True),
        (lambda *args: None, False),
        (lambda event, tag=None, caller=None: None, True),
        (lambda event, tag=None, caller=None: None, False),
        (print, True),  # *args
        (max, True),  # a builtin without an inspectable signature
        (_Handlers().on_event, False),  # bound: self is not counted
        (_Handlers().on_full, True),
        ([].append, False),
    ],
)
def test_callbacks_that_can_be_called_are_accepted(
    callback: Any, with_event_info: bool
) -> None:
    FunctionalEventSubscriber(callback, with_event_info=with_event_info)


def test_add_subscriber_with_callback_checks_the_callback_too() -> None:
    with pytest.raises(TypeError, match="pass with_event_info=False"):
        Shop().add_subscriber_with_callback(Shop.PLACED, _handler)


# --- a subscriber lost before its first event -------------------------------


@pytest.fixture
def lost() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()


def _lost_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if w.category is SubscriberLostWarning]


def test_subscriber_only_the_publisher_references_warns(
    lost: list[warnings.WarningMessage],
) -> None:
    publisher = EventPublisher(PLACED)
    publisher.add_subscriber(FunctionalEventSubscriber(_handler, False))
    (message,) = _lost_messages(lost)
    assert "FunctionalEventSubscriber" in message
    assert repr(PLACED) in message
    assert "keep a reference" in message
    assert issubclass(SubscriberLostWarning, RuntimeWarning)
    # It points at the line that dropped the subscriber: this file.
    (warning,) = [w for w in lost if w.category is SubscriberLostWarning]
    assert warning.filename == __file__


def test_subscriber_dropped_before_any_publish_warns_by_channel_on_a_broker(
    lost: list[warnings.WarningMessage],
) -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    del subscriber
    gc.collect()
    # Once, by the broker's list (the one dispatched to), naming the channel.
    (message,) = _lost_messages(lost)
    assert f"channel {publisher.channel!r}" in message


def test_multipublisher_subscriber_lost_warns(
    lost: list[warnings.WarningMessage],
) -> None:
    shop = Shop()
    shop.add_subscriber(Shop.PLACED, Recorder())
    assert len(_lost_messages(lost)) == 1


def test_subscriber_that_received_events_is_dropped_silently(
    lost: list[warnings.WarningMessage],
) -> None:
    for broker in (None, LocalBroker()):
        publisher = EventPublisher(PLACED, broker=broker)
        subscriber = Recorder()
        publisher.add_subscriber(subscriber)
        publisher.publish(Placed(1))
        del subscriber
        gc.collect()
    assert _lost_messages(lost) == []


def test_removed_subscriber_is_dropped_silently(
    lost: list[warnings.WarningMessage],
) -> None:
    publisher = EventPublisher(PLACED)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    publisher.remove_subscriber(subscriber)
    del subscriber
    gc.collect()
    assert _lost_messages(lost) == []


def test_listing_subscribers_is_not_receiving(
    lost: list[warnings.WarningMessage],
) -> None:
    publisher = EventPublisher(PLACED)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    assert publisher.get_subscribers() == [subscriber]
    del subscriber
    gc.collect()
    assert len(_lost_messages(lost)) == 1


def test_late_subscriber_warns_even_after_earlier_publishes(
    lost: list[warnings.WarningMessage],
) -> None:
    publisher = EventPublisher(PLACED)
    early = Recorder()
    publisher.add_subscriber(early)
    publisher.publish(Placed(1))
    late = Recorder()
    publisher.add_subscriber(late)
    del late
    gc.collect()
    assert len(_lost_messages(lost)) == 1
    publisher.publish(Placed(2))
    assert early.events == [Placed(1), Placed(2)]


def test_broker_swap_moves_the_watch_to_the_dispatched_list(
    lost: list[warnings.WarningMessage],
) -> None:
    publisher = EventPublisher(PLACED)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    publisher.broker = LocalBroker()
    publisher.publish(Placed(1))  # received through the broker
    publisher.broker = None
    del subscriber
    gc.collect()
    assert _lost_messages(lost) == []


def test_no_false_warning_while_other_threads_publish(
    lost: list[warnings.WarningMessage],
) -> None:
    # Subscribers added while another thread publishes: each one is dropped
    # only after it received an event, so none may be reported.
    publisher = EventPublisher(PLACED)
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            publisher.publish(Placed(0))

    class Waiter(EventSubscriber):
        def __init__(self) -> None:
            self.received = threading.Event()

        def call(self, arg: Any, tag: Any, caller: Any) -> None:
            self.received.set()

    unreceived = []

    def subscribe_and_drop() -> None:
        for _ in range(200):
            subscriber = Waiter()
            publisher.add_subscriber(subscriber)
            if not subscriber.received.wait(30):
                unreceived.append(subscriber)
            del subscriber

    publishers = [threading.Thread(target=publish) for _ in range(2)]
    adders = [threading.Thread(target=subscribe_and_drop) for _ in range(3)]
    for thread in publishers + adders:
        thread.start()
    for thread in adders:
        thread.join(60)
    stop.set()
    for thread in publishers:
        thread.join(60)
    gc.collect()
    assert unreceived == []
    assert _lost_messages(lost) == []


def test_python_dev_mode_shows_the_warning_at_the_users_line(tmp_path: Any) -> None:
    script = tmp_path / "lost.py"
    script.write_text(
        textwrap.dedent(
            """
            import eventspype as ep
            publisher = ep.EventPublisher(ep.EventPublication("tick", int))
            publisher.add_subscriber(ep.FunctionalEventSubscriber(print, False))
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"{script}:4: SubscriberLostWarning" in result.stderr
    assert "EventPublication('TICK', builtins.int)" in result.stderr


# --- missing distributions name themselves ----------------------------------


def test_finder_is_last_and_answers_only_for_optional_subpackages() -> None:
    assert sys.meta_path[-1] is MissingDistributionFinder
    assert MissingDistributionFinder.find_spec("eventspype.nothing_here") is None
    assert MissingDistributionFinder.find_spec("json") is None


@pytest.mark.parametrize(("module", "distribution"), sorted(MISSING_HINTS.items()))
def test_finder_names_the_distribution(module: str, distribution: str) -> None:
    with pytest.raises(
        ModuleNotFoundError, match=f"pip install {distribution}"
    ) as info:
        MissingDistributionFinder.find_spec(module)
    assert info.value.name == module


@pytest.mark.parametrize(
    ("statement", "distribution"),
    [
        ("from eventspype.broker.redis import RedisBroker", "eventspype-redis"),
        (
            "from eventspype.serializers import JsonEventSerializer",
            "eventspype-serializers",
        ),
        (
            "from eventspype.broker.serializer import JsonEventSerializer",
            "eventspype-serializers",
        ),
        ("import eventspype.viz", "eventspype-viz"),
        ("from eventspype.viz.visualizer import EventVisualizer", "eventspype-viz"),
        ("from eventspype.testing import TestBroker", "eventspype-testing"),
        ("from eventspype.otel import EventspypeInstrumentor", "eventspype-otel"),
    ],
)
def test_importing_a_missing_subpackage_says_what_to_install(
    statement: str, distribution: str
) -> None:
    module = statement.split()[1]
    top = next(m for m in MISSING_HINTS if module.startswith(m))
    if _installed(top):
        pytest.skip(f"{distribution} is installed")
    with pytest.raises(ModuleNotFoundError, match=f"pip install {distribution}"):
        exec(statement, {})


def test_missing_event_visualizer_names_eventspype_viz() -> None:
    if _installed("eventspype.viz"):
        pytest.skip("eventspype-viz is installed")
    with pytest.raises(ImportError, match="pip install eventspype-viz"):
        eventspype.EventVisualizer  # noqa: B018


def test_unrelated_missing_modules_keep_the_plain_error() -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        importlib.import_module("eventspype.no_such_module")
    assert "pip install" not in str(info.value)


# --- versions ------------------------------------------------------------------


def test_version_is_core_and_versions_lists_installed_distributions() -> None:
    found = eventspype.versions()
    assert eventspype.__version__ == importlib.metadata.version("eventspype-core")
    assert found["eventspype-core"] == eventspype.__version__
    assert all(name == "eventspype" or name.startswith("eventspype-") for name in found)
    assert list(found) == sorted(found)
    for name, version in found.items():
        assert importlib.metadata.version(name) == version


def test_multipublisher_is_untouched_by_the_checks() -> None:
    # A smoke test that the checks did not change ordinary use.
    shop = Shop()
    recorder = Recorder()
    shop.add_subscriber(Shop.PLACED, recorder)
    shop.publish(Shop.PLACED, Placed(3))
    assert recorder.events == [Placed(3)]
    assert isinstance(shop, MultiPublisher)
