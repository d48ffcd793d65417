"""Helpers for the eventspype-redis tests (a unique module name: every tier
shares one pytest run in ``nox -s tests_all``)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import gc
import json
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

import pytest
import redis

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber

REDIS_URL = os.environ.get("EVENTSPYPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("EVENTSPYPE_REQUIRE_REDIS") == "1"
LISTENER_THREAD = "eventspype-redis-listener"


@dataclasses.dataclass
class OrderPlaced:
    order_id: int
    amount: float


@dataclasses.dataclass
class OrderCancelled:
    order_id: int
    reason: str = ""


class Point(NamedTuple):
    x: int
    y: int


class Color(enum.Enum):
    RED = 1
    GREEN = 2


@dataclasses.dataclass
class UserDeleted:
    """What a hostile client slips onto a channel that is not its own."""

    user: str


@dataclasses.dataclass
class BigOrderPlaced(OrderPlaced):
    """A subclass: delivered to subscribers of ``OrderPlaced``'s publication."""

    vip: bool = True


ORDER_PLACED = EventPublication("order_placed", OrderPlaced)


def forged(tag: Any, event_class: type, payload: dict[str, Any]) -> bytes:
    """A message as anyone with PUBLISH rights on the server can write it."""
    return json.dumps(
        {
            "event_tag": tag,
            "event_class": event_class.__qualname__,
            "event_module": event_class.__module__,
            "payload": json.dumps(payload),
        }
    ).encode()


def unique_prefix() -> str:
    """A channel prefix no other test (or process) uses."""
    return f"eventspype-test:{uuid.uuid4().hex[:12]}:"


_reachable: dict[str, str | None] = {}


def real_redis_problem(url: str = REDIS_URL) -> str | None:
    """``None`` if a Redis server answers at ``url``, else why not (cached)."""
    if url not in _reachable:
        try:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=1, socket_timeout=1
            )
            try:
                client.ping()
            finally:
                client.close()
            _reachable[url] = None
        except (redis.RedisError, OSError) as error:
            _reachable[url] = f"no Redis server at {url}: {error}"
    return _reachable[url]


def skip_or_fail(reason: str) -> None:
    """Skip the test for ``reason``, or fail under ``EVENTSPYPE_REQUIRE_REDIS=1``
    (CI, where a missing server or tool is a broken set-up)."""
    if REQUIRE_REDIS:
        pytest.fail(f"EVENTSPYPE_REQUIRE_REDIS=1 but {reason}")
    pytest.skip(reason)


def require_real_redis() -> None:
    """Skip the test without a real server, or fail when one is required."""
    problem = real_redis_problem()
    if problem is not None:
        skip_or_fail(problem)


def wait_until(
    condition: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str = "",
) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds,
    saying ``what`` was awaited (the condition's repr by default)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what or condition}: condition not met within {timeout} s"
            )
        time.sleep(interval)


def run_bounded(
    scenario: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 30.0
) -> Any:
    """Run ``scenario()`` in a new event loop; fail after ``timeout`` s
    instead of hanging."""

    async def bounded() -> Any:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())


async def eventually(
    condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Let the running loop work until ``condition()`` holds; fail after
    ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def collect(ref: weakref.ref[Any], timeout: float = 10.0) -> None:
    """Run the garbage collector until ``ref``'s object is gone.

    One ``gc.collect()`` is not enough: while another thread is inside a
    collection (a broker's reader thread allocates all the time, fakeredis
    runs the server in it too, and a collection that runs Python finalizers
    lets other threads in), ``gc.collect()`` returns 0 at once, collecting
    nothing. A test that means "this subscriber is gone" waits for it.
    """

    def gone() -> bool:
        gc.collect()
        return ref() is None

    wait_until(gone, timeout)


class Inbox:
    """A subscriber that records ``(event, tag, caller)`` from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[Any, Any, Any]] = []
        self.subscriber = FunctionalEventSubscriber(self._record)

    def _record(self, event: Any, tag: Any, caller: Any) -> None:
        with self._lock:
            self.items.append((event, tag, caller))

    @property
    def events(self) -> list[Any]:
        with self._lock:
            return [item[0] for item in self.items]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        """Wait until ``count`` events arrived; return them."""
        wait_until(lambda: len(self.items) >= count, timeout)
        return self.events


def numsub(client: redis.Redis, channel: str) -> int:
    """How many connections are subscribed to ``channel`` on the server."""
    return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))


def listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == LISTENER_THREAD]


def publisher_for(broker: Any, tag: Any, event_class: type) -> EventPublisher:
    return EventPublisher(EventPublication(tag, event_class), broker=broker)


def publish_in_batch(broker: Any, publisher: EventPublisher, events: list[Any]) -> None:
    """Publish ``events`` inside one ``broker.batch()`` block."""
    with broker.batch():
        for event in events:
            publisher.publish(event)


def next_message(pubsub: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The next data message of a redis-py ``PubSub``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            return dict(message)
    raise AssertionError(f"no message within {timeout} s")


async def close_client(client: Any) -> None:
    """Close a ``redis.asyncio`` client: ``aclose()`` where redis-py has it
    (5.0.1 on), ``close()`` on 5.0.0, the floor eventspype-redis declares."""
    await (getattr(client, "aclose", None) or client.close)()
