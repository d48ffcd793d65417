"""A RedisStreamBroker in a process that forks: the child is a consumer of its own.

The child (``os.fork()``; it reports through a pipe and leaves with
``os._exit``) subscribes on the broker it inherited: it gets a reader thread,
a connection and, since the name was generated, a consumer name of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from _core_support import FORKS, in_child
from redis_helpers import shared_redis_url, unique_prefix, wait_until

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker

pytestmark = [pytest.mark.slow, pytest.mark.redis_server, *FORKS]


@dataclass
class Note:
    n: int


NOTE = EventPublication("note", Note)


@pytest.fixture
def broker() -> Iterator[RedisStreamBroker]:
    url = shared_redis_url()
    prefix = unique_prefix()
    made = RedisStreamBroker.from_url(url, channel_prefix=prefix, group="g")
    made.register_event_class(Note)
    yield made
    made.close()
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_a_forked_child_consumes_as_a_consumer_of_its_own(
    broker: RedisStreamBroker,
) -> None:
    parent_got: list[Any] = []
    kept = FunctionalEventSubscriber(parent_got.append, with_event_info=False)
    publisher = EventPublisher(NOTE, broker=broker)
    publisher.add_subscriber(kept)
    publisher.publish(Note(1))
    wait_until(lambda: parent_got == [Note(1)])
    parent_name = broker.consumer

    def child() -> tuple[list[Any], bool, int]:
        # Its own channel: on NOTE, the parent (same group) may take the event.
        got: list[Any] = []
        mine = FunctionalEventSubscriber(got.append, with_event_info=False)
        child_note = EventPublication("child_note", Note)
        EventPublisher(child_note, broker=broker).add_subscriber(mine)
        EventPublisher(child_note, broker=broker).publish(Note(2))
        wait_until(lambda: got, timeout=10)
        name_changed = broker.consumer != parent_name
        # The parent's subscriptions were not inherited.
        inherited = len(broker._receiving.channels())
        broker.close()
        return got, name_changed, inherited

    report = in_child(child, timeout=20.0)

    assert report == f"({[Note(2)]!r}, True, 1)"  # its one channel
    publisher.publish(Note(3))  # the parent's broker is unaffected
    wait_until(lambda: Note(3) in parent_got)


def test_a_child_subscribes_while_a_parent_thread_holds_the_command_pool(
    broker: RedisStreamBroker,
) -> None:
    # A parent thread is inside the broker's command pool (holding its lock)
    # at the fork: a child that reused the inherited pool waited forever on
    # its first subscribe() (XGROUP CREATE).
    broker.stats()  # the command pool exists and has served
    pool_lock = broker._receiving.commands.connection_pool._lock
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
            got: list[Any] = []
            kept = FunctionalEventSubscriber(got.append, with_event_info=False)
            EventPublisher(NOTE, broker=broker).add_subscriber(kept)
            broker.close(drain=0)
            return "ok"

        report = in_child(child, timeout=15)
    finally:
        release.set()
        holder.join(10)
    assert report == "'ok'"
