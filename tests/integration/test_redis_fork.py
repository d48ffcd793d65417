"""A broker in a process that forks: the child has its own locks and connections.

Each scenario forks this test process (``os.fork()``; the child never returns
into pytest: it reports through a pipe and leaves with ``os._exit``), on the
shared server with a unique prefix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _core_support import FORKS, in_child
from redis_helpers import (
    numsub,
    shared_redis_url,
    unique_prefix,
    wait_until,
)

from eventspype import (
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.broker.redis import RedisBroker

pytestmark = [pytest.mark.slow, *FORKS]


@dataclass
class Note:
    n: int


NOTE = EventPublication("note", Note)


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    made = RedisBroker.from_url(shared_redis_url(), channel_prefix=unique_prefix())
    made.register_event_class(Note)
    yield made
    made.close()


def receiver(
    broker: RedisBroker, tag: str
) -> tuple[EventPublisher, list[Any], FunctionalEventSubscriber]:
    """A publisher on ``tag``, what its subscriber received, and the subscriber
    (keep it: subscribers are held weakly)."""
    got: list[Any] = []
    publisher = EventPublisher(EventPublication(tag, Note), broker=broker)
    subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
    publisher.add_subscriber(subscriber)
    return publisher, got, subscriber


def test_a_child_publishes_and_closes_whatever_parent_threads_held(
    broker: RedisBroker,
) -> None:
    # Parent threads publish all the time, so at the fork one of them holds
    # the broker's locks: the child used to deadlock on them in close().
    publisher = EventPublisher(NOTE, broker=broker)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            publisher.publish(Note(0))

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()

    def child() -> str:
        publisher.publish(Note(1))
        broker.close()
        return "ok"

    try:
        wait_until(lambda: broker.stats().published > 100)
        reports = [in_child(child, timeout=10) for _ in range(5)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert reports == ["'ok'"] * 5
    publisher.publish(Note(2))  # the parent's broker is unaffected


def test_a_child_publishes_while_a_parent_thread_holds_the_pool_lock(
    broker: RedisBroker,
) -> None:
    # The deterministic form of the race above: a parent thread is inside the
    # broker's connection pool (holding its lock) at the fork. redis-py's
    # reset() in the child takes that same lock, so a child that reused the
    # inherited pool waited forever on its first publish.
    publisher = EventPublisher(NOTE, broker=broker)
    publisher.publish(Note(0))  # the pool exists and has served
    pool_lock = broker._transport._pool._lock  # type: ignore[attr-defined]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with pool_lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)

        def child() -> str:
            publisher.publish(Note(1))
            broker.close()
            return "ok"

        report = in_child(child, timeout=10)
    finally:
        release.set()
        holder.join(10)
    assert report == "'ok'"
    publisher.publish(Note(2))  # the parent's pool is unaffected


def test_a_child_subscribes_on_connections_of_its_own(broker: RedisBroker) -> None:
    parent_publisher, parent_got, _kept = receiver(broker, "parent")
    parent_publisher.publish(Note(1))
    wait_until(lambda: parent_got == [Note(1)])

    def child() -> tuple[list[Any], int]:
        # Before: this SUBSCRIBE went out on the parent's socket, and the
        # child had no listener thread to read anything.
        child_publisher, child_got, _child_kept = receiver(broker, "child")
        child_publisher.publish(Note(2))
        wait_until(lambda: child_got == [Note(2)], timeout=5)
        threads = [t for t in threading.enumerate() if "listener" in t.name]
        broker.close()
        return child_got, len(threads)

    assert in_child(child, timeout=10) == "([Note(n=2)], 1)"
    # The parent's connection carried on, untouched by the child.
    parent_publisher.publish(Note(3))
    wait_until(lambda: parent_got == [Note(1), Note(3)])
    admin = broker._redis  # the from_url client, on the shared server
    assert numsub(admin, f"{broker.channel_prefix}PARENT") == 1
    wait_until(lambda: numsub(admin, f"{broker.channel_prefix}CHILD") == 0)
