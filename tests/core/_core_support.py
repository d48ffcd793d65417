"""Events, subscribers and brokers shared by the eventspype-core tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from eventspype import (
    EventPublication,
    EventPublisher,
    EventSubscriber,
    LocalBroker,
    MessageBroker,
)
from eventspype.event import NormalizedTag


@dataclass(frozen=True)
class Placed:
    order_id: int


@dataclass(frozen=True)
class SpecialPlaced(Placed):
    """A subclass: publishers must accept it where ``Placed`` is expected."""

    note: str = ""


@dataclass(frozen=True)
class Shipped:
    order_id: int


class Refunded(NamedTuple):
    order_id: int
    amount: float


class Tags(Enum):
    SHIPPED = 1
    REFUNDED = "refunded"


class OtherTags(Enum):
    SHIPPED = 1


PLACED = EventPublication("order_placed", Placed)
SHIPPED = EventPublication(Tags.SHIPPED, Shipped)


class Recorder(EventSubscriber):
    """Records every ``(event, tag, caller)``; optionally appends its label to
    a shared ``order`` list so tests can see who was called first."""

    def __init__(self, label: str = "", order: list[str] | None = None) -> None:
        self.label = label
        self.order = order
        self.calls: list[tuple[Any, NormalizedTag, Any]] = []

    def call(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> None:
        self.calls.append((arg, current_event_tag, current_event_caller))
        if self.order is not None:
            self.order.append(self.label)

    @property
    def events(self) -> list[Any]:
        return [c[0] for c in self.calls]


class Counter(EventSubscriber):
    """Counts deliveries; safe to call from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def call(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> None:
        with self._lock:
            self.count += 1


class Exploding(EventSubscriber):
    """Always raises."""

    def __init__(self) -> None:
        self.attempts = 0

    def call(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> None:
        self.attempts += 1
        raise RuntimeError("subscriber exploded on purpose")


class RecordingBroker(MessageBroker):
    """The seed's "Writing a Custom Broker" example, made concrete: it records
    every call and delivers ``publish`` to the subscribers of the channel."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.subscribers: dict[str, list[EventSubscriber]] = {}

    def publish(self, channel: str, event: Any, event_tag: int, caller: Any) -> None:  # type: ignore[override]
        self.calls.append(("publish", channel, event, event_tag, caller))
        for subscriber in list(self.subscribers.get(channel, ())):
            subscriber.call(event, event_tag, caller)

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        self.calls.append(("subscribe", channel, subscriber))
        subs = self.subscribers.setdefault(channel, [])
        if not any(s is subscriber for s in subs):
            subs.append(subscriber)

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        self.calls.append(("unsubscribe", channel, subscriber))
        subs = self.subscribers.get(channel, [])
        self.subscribers[channel] = [s for s in subs if s is not subscriber]

    def of_kind(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


def make_publisher(
    publication: EventPublication, route: str
) -> tuple[EventPublisher, LocalBroker | None]:
    """``route`` is "direct" (no broker) or "local" (a fresh ``LocalBroker``)."""
    if route == "direct":
        return EventPublisher(publication), None
    broker = LocalBroker()
    return EventPublisher(publication, broker=broker), broker


def dispatcher(
    publisher: EventPublisher, broker: LocalBroker | None
) -> EventPublisher | LocalBroker:
    """The object that calls subscribers (and counts their errors) on a route."""
    return publisher if broker is None else broker
