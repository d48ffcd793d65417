"""Every public import path of eventspype 1.4.2 works with the meta-package.

The table is the public surface of 1.4.2: its modules and the names they
define (``eventspype.viz`` comes from the eventspype-viz distribution).
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest

REFERENCE_1_4_2 = {
    "eventspype": [
        "Event", "EventTag", "NormalizedTag", "TagEnum", "normalize_event_tag",
        "format_event_tag", "MessageBroker", "LocalBroker", "EventSerializer",
        "JsonEventSerializer", "make_json_safe", "EventPublisher",
        "MultiPublisher", "EventPublication", "EventSubscriber",
        "OwnedEventSubscriber", "FunctionalEventSubscriber",
        "QueueEventSubscriber", "MultiSubscriber", "ReportingEventSubscriber",
        "TrackingEventSubscriber", "EventSubscription", "PublicationSubscription",
    ],
    "eventspype.broker": [
        "MessageBroker", "LocalBroker", "RedisBroker", "EventSerializer",
        "JsonEventSerializer",
    ],
    "eventspype.broker.broker": ["MessageBroker"],
    "eventspype.broker.local": ["LocalBroker"],
    "eventspype.broker.redis": ["RedisBroker"],
    "eventspype.broker.serializer": [
        "EventSerializer", "JsonEventSerializer", "make_json_safe",
    ],
    "eventspype.event": [
        "EventTag", "NormalizedTag", "TagEnum", "normalize_event_tag",
        "format_event_tag", "Event",
    ],
    "eventspype.pub": [],
    "eventspype.pub.multipublisher": ["MultiPublisher"],
    "eventspype.pub.publication": ["EventPublication"],
    "eventspype.pub.publisher": ["EventPublisher"],
    "eventspype.sub": [],
    "eventspype.sub.functional": [
        "FunctionalEventSubscriber", "FunctionalEventCallback",
        "CompleteEventCallback", "SimpleEventCallback",
    ],
    "eventspype.sub.multisubscriber": ["MultiSubscriber"],
    "eventspype.sub.queue": ["QueueEventSubscriber"],
    "eventspype.sub.reporter": ["HasAsDict", "ReportingEventSubscriber"],
    "eventspype.sub.subscriber": ["EventSubscriber", "OwnedEventSubscriber"],
    "eventspype.sub.subscription": [
        "EventSubscription", "PublicationSubscription", "EventSubscriptionCallback",
        "SubscriberCompleteEventCallback", "SubscriberSimpleEventCallback",
        "FunctionalEventCallback",
    ],
    "eventspype.sub.tracker": ["TrackingEventSubscriber"],
    "eventspype.viz": ["EventVisualizer"],
    "eventspype.viz.visualizer": ["EventVisualizer"],
}  # fmt: skip


@pytest.mark.parametrize(("module", "names"), sorted(REFERENCE_1_4_2.items()))
def test_reference_import_path_works(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    missing = [name for name in names if not hasattr(loaded, name)]
    assert not missing, f"{module} lacks {missing}"


def test_names_reexported_from_eventspype_are_the_defining_objects() -> None:
    import eventspype
    from eventspype.broker.redis import RedisBroker
    from eventspype.broker.serializer import JsonEventSerializer
    from eventspype.serializers import EventSerializer
    from eventspype.viz.visualizer import EventVisualizer

    assert eventspype.JsonEventSerializer is JsonEventSerializer
    assert eventspype.EventSerializer is EventSerializer
    assert eventspype.broker.RedisBroker is RedisBroker
    assert eventspype.EventVisualizer is EventVisualizer
