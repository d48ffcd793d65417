"""Publishers tell their broker the publication (issue 8, item 2, core side).

``MessageBroker`` has non-abstract ``subscribe_publication`` /
``unsubscribe_publication`` whose default is ``subscribe(channel, ...)``; a
publisher uses them, and falls back to ``subscribe`` for a duck-typed broker.
"""

from __future__ import annotations

from typing import Any

import pytest
from _core_support import PLACED, Placed, Recorder, RecordingBroker

from eventspype import (
    EventPublication,
    EventPublisher,
    EventSubscriber,
    LocalBroker,
    MessageBroker,
    MultiPublisher,
)
from eventspype.event import NormalizedTag


class PublicationAwareBroker(RecordingBroker):
    """Records what the publisher told it through the publication methods."""

    def subscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        self.calls.append(("subscribe_publication", publication, subscriber))
        super().subscribe_publication(publication, subscriber)

    def unsubscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        self.calls.append(("unsubscribe_publication", publication, subscriber))
        super().unsubscribe_publication(publication, subscriber)


class DuckBroker:
    """Not a MessageBroker: only the three methods of the seed page."""

    def __init__(self) -> None:
        self.inner = RecordingBroker()

    def publish(
        self, channel: str, event: Any, tag: NormalizedTag, caller: Any
    ) -> None:
        self.inner.publish(channel, event, tag, caller)  # type: ignore[arg-type]

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        self.inner.subscribe(channel, subscriber)

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        self.inner.unsubscribe(channel, subscriber)


def test_publisher_subscribes_through_the_publication() -> None:
    broker = PublicationAwareBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    assert broker.of_kind("subscribe_publication") == [
        ("subscribe_publication", PLACED, subscriber)
    ]
    # The default implementation lands on subscribe(channel, ...).
    assert broker.of_kind("subscribe") == [("subscribe", "ORDER_PLACED", subscriber)]
    publisher.publish(Placed(1))
    assert subscriber.events == [Placed(1)]
    publisher.remove_subscriber(subscriber)
    assert broker.of_kind("unsubscribe_publication") == [
        ("unsubscribe_publication", PLACED, subscriber)
    ]
    assert broker.of_kind("unsubscribe") == [
        ("unsubscribe", "ORDER_PLACED", subscriber)
    ]


def test_broker_swap_moves_subscribers_with_their_publication() -> None:
    old, new = PublicationAwareBroker(), PublicationAwareBroker()
    publisher = EventPublisher(PLACED, broker=old)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    publisher.broker = new
    assert new.of_kind("subscribe_publication") == [
        ("subscribe_publication", PLACED, subscriber)
    ]
    assert old.of_kind("unsubscribe_publication") == [
        ("unsubscribe_publication", PLACED, subscriber)
    ]


def test_multipublisher_subscribes_through_the_publication() -> None:
    class Shop(MultiPublisher):
        PLACED = PLACED

    broker = PublicationAwareBroker()
    shop = Shop(broker=broker)
    subscriber = Recorder()
    shop.add_subscriber(Shop.PLACED, subscriber)
    assert broker.of_kind("subscribe_publication") == [
        ("subscribe_publication", PLACED, subscriber)
    ]
    shop.broker = LocalBroker()
    assert broker.of_kind("unsubscribe_publication") == [
        ("unsubscribe_publication", PLACED, subscriber)
    ]
    shop.remove_subscriber(Shop.PLACED, subscriber)  # done with it: no lost warning


def test_a_duck_typed_broker_without_the_methods_keeps_working() -> None:
    broker = DuckBroker()
    publisher = EventPublisher(PLACED, broker=broker)  # type: ignore[arg-type]
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)
    publisher.publish(Placed(2))
    assert subscriber.events == [Placed(2)]
    publisher.broker = None
    assert broker.inner.of_kind("unsubscribe") == [
        ("unsubscribe", "ORDER_PLACED", subscriber)
    ]


@pytest.mark.parametrize("method", ["publish", "subscribe", "unsubscribe"])
def test_the_abstract_bodies_raise_not_implemented(method: str) -> None:
    class Delegating(MessageBroker):
        def publish(
            self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
        ) -> None:
            super().publish(channel, event, event_tag, caller)  # type: ignore[safe-super]

        def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
            super().subscribe(channel, subscriber)  # type: ignore[safe-super]

        def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
            super().unsubscribe(channel, subscriber)  # type: ignore[safe-super]

    broker = Delegating()
    args: dict[str, tuple[Any, ...]] = {
        "publish": ("c", Placed(1), "c", None),
        "subscribe": ("c", Recorder()),
        "unsubscribe": ("c", Recorder()),
    }
    with pytest.raises(NotImplementedError):
        getattr(broker, method)(*args[method])
