"""Resuming in the child of ``fork()``: add the subscriber again (issue 8, item 5).

The documented way (docs/redis-in-production.md, "Running several processes"):
a RedisBroker created before a fork works in the child without the parent's
subscriptions, and the child subscribes what it needs itself. That includes
re-adding to the same publisher a subscriber that the parent had added, which
used to do nothing: the publisher believed it was still subscribed.

Each scenario forks this test process on the shared server, with a unique
channel prefix; the child reports through a pipe and leaves with ``os._exit``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis_helpers import shared_redis_url, unique_prefix, wait_until

from eventspype import (
    EventPublication,
    EventPublisher,
    EventSubscription,
    FunctionalEventSubscriber,
    MultiPublisher,
    MultiSubscriber,
)
from eventspype.broker.redis import RedisBroker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork() (POSIX)"),
    pytest.mark.filterwarnings("ignore:This process .* fork:DeprecationWarning"),
]


@dataclass
class Resumed:
    n: int


RESUMED = EventPublication("resumed", Resumed)


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    made = RedisBroker.from_url(shared_redis_url(), channel_prefix=unique_prefix())
    made.register_event_class(Resumed)
    yield made
    made.close()


def in_child(body: Callable[[], object], timeout: float = 15.0) -> str:
    """Run ``body`` in a forked child; its result's repr, what it raised, or
    ``"hung"`` (killed after ``timeout`` s)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        report = "no report"
        try:
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


def test_re_adding_the_parents_subscriber_resumes_delivery_in_the_child(
    broker: RedisBroker,
) -> None:
    got: list[Any] = []
    publisher = EventPublisher(RESUMED, broker=broker)
    subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
    publisher.add_subscriber(subscriber)
    publisher.publish(Resumed(1))
    wait_until(lambda: got == [Resumed(1)])

    def child() -> list[Any]:
        got.clear()  # the child's copy of the list
        publisher.add_subscriber(subscriber)  # resume, as documented
        publisher.add_subscriber(subscriber)  # twice: still one subscription
        publisher.publish(Resumed(2))
        wait_until(lambda: Resumed(2) in got, timeout=5)
        publisher.publish(Resumed(3))
        wait_until(lambda: Resumed(3) in got, timeout=5)
        broker.close()
        return got

    # Exactly once each: one subscription, not the parent's copy plus a new one.
    assert in_child(child) == "[Resumed(n=2), Resumed(n=3)]"
    # The parent's subscription was never touched; it heard the child too.
    wait_until(lambda: got == [Resumed(1), Resumed(2), Resumed(3)])
    publisher.publish(Resumed(4))
    wait_until(lambda: got[-1] == Resumed(4))
    assert got == [Resumed(1), Resumed(2), Resumed(3), Resumed(4)]


def test_re_attaching_a_multisubscriber_resumes_in_the_child(
    broker: RedisBroker,
) -> None:
    class Service(MultiPublisher):
        RESUMED = RESUMED

    class Listener(MultiSubscriber):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Any] = []

        def on_resumed(self, event: Any) -> None:
            self.seen.append(event)

        resumed = EventSubscription(
            Service, "resumed", on_resumed, callback_with_event_info=False
        )

    service = Service(broker=broker)
    listener = Listener()
    listener.add_subscription(Listener.resumed, service)

    def child() -> list[Any]:
        listener.add_subscription(Listener.resumed, service)
        service.publish(Service.RESUMED, Resumed(7))
        wait_until(lambda: listener.seen == [Resumed(7)], timeout=5)
        broker.close()
        return listener.seen

    assert in_child(child) == "[Resumed(n=7)]"
