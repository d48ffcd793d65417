"""The events and subscribers :mod:`eventspype.testing.conformance` uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventspype.event import NormalizedTag
from eventspype.sub.subscriber import EventSubscriber

__all__ = ["EVENT_CLASSES", "Inbox", "Ping", "Pong", "Raising", "wait_until"]


@dataclass(frozen=True)
class Ping:
    """The contract's main event."""

    number: int
    text: str = ""


@dataclass(frozen=True)
class Pong:
    """A second event class, for the class checks."""

    number: int


#: What a broker that accepts only registered classes must register.
EVENT_CLASSES: tuple[type, ...] = (Ping, Pong)


class Inbox(EventSubscriber):
    """Records ``(event, tag, caller)`` from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[Any, NormalizedTag, Any]] = []

    def call(self, arg: Any, current_event_tag: NormalizedTag, caller: Any) -> None:
        with self._lock:
            self.items.append((arg, current_event_tag, caller))

    @property
    def events(self) -> list[Any]:
        with self._lock:
            return [item[0] for item in self.items]

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)


class Raising(EventSubscriber):
    """Raises for its first ``failures`` calls (every call by default), then
    records the events it handles."""

    def __init__(self, failures: int | None = None) -> None:
        self._lock = threading.Lock()
        self._failures = failures
        self.calls = 0
        self.handled: list[Any] = []

    def call(self, arg: Any, current_event_tag: NormalizedTag, caller: Any) -> None:
        with self._lock:
            self.calls += 1
            fail = self._failures is None or self.calls <= self._failures
            if not fail:
                self.handled.append(arg)
        if fail:
            raise RuntimeError("contract: a subscriber bug")


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds
    saying ``what`` was awaited. No assertion on how long it took."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}, in vain")
        time.sleep(0.005)
