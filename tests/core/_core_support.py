"""Events, subscribers, brokers and a fork runner shared by the eventspype-core tests.

Needs eventspype-core only. The integration tests reuse :func:`in_child`
(tests/integration/conftest.py puts this directory on ``sys.path`` too).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

import pytest

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


#: The marks of a test module that forks: POSIX only; and Python 3.12+ warns
#: that forking a threaded process may deadlock, which is exactly what such
#: tests check the library survives.
FORKS = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork() (POSIX)"),
    pytest.mark.filterwarnings("ignore:This process .* fork:DeprecationWarning"),
]


def in_child(body: Callable[[], object], timeout: float = 15.0) -> str:
    """Run ``body`` in a forked child; what it returned (repr) or raised.

    The child never returns into pytest: it reports through a pipe and leaves
    with ``os._exit``. A child still running after ``timeout`` s is killed:
    ``"hung"``; a second before, it writes the stack of every thread to
    stderr (shown with the failed test), to say where it hung.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        report = "no report"
        try:
            faulthandler.dump_traceback_later(
                max(timeout - 1, 0.5), file=sys.__stderr__
            )
            os.close(read_end)
            report = repr(body())
        except BaseException as error:
            report = f"{type(error).__name__}: {error}"
        finally:
            os.write(write_end, report.encode())
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return "hung"
        time.sleep(0.01)
    with os.fdopen(read_end, "rb") as pipe:
        return pipe.read().decode()
