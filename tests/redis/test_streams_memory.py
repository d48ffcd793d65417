"""What a stream consumer holds in memory, measured (real Redis only).

redis-py reads each reply whole, so a consumer's memory for entries is
bounded by ``prefetch`` x the largest entry, never by the backlog: the
durable-delivery page states about twice that (the reply, and the entries
taken from it while they are held). Measured with ``tracemalloc`` over every
thread, around a consumer that reads a backlog of large entries; the margin
is generous, the backlog far larger than the bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import tracemalloc

import redis
from _redis_support import REDIS_URL, wait_until

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.broker.redis import AsyncRedisStreamBroker, RedisStreamBroker

ENTRY_BYTES = 256 * 1024
BACKLOG = 120  # 30 MiB in the stream
PREFETCH = 4  # 1 MiB of entries in hand


@dataclasses.dataclass(frozen=True)
class Blob:
    n: int
    data: str


BLOBS = EventPublication("blob", Blob)


def _publish_backlog(client: redis.Redis, prefix: str) -> None:
    with RedisStreamBroker(client, channel_prefix=prefix) as publisher:
        blobs = EventPublisher(BLOBS, publisher)
        data = "x" * ENTRY_BYTES
        with publisher.batch():
            for n in range(BACKLOG):
                blobs.publish(Blob(n, data))
    gc.collect()


def _check(peak: int, seen: list[int]) -> None:
    assert sorted(seen) == list(range(BACKLOG))
    stated = 2 * PREFETCH * ENTRY_BYTES  # what the docs state
    # Twice the stated bound plus 2 MiB for the broker itself; the backlog
    # (30 MiB) would not fit: a consumer reading more than prefetch fails.
    assert peak <= 2 * stated + (2 << 20), f"peak {peak / 2**20:.1f} MiB"
    assert peak < BACKLOG * ENTRY_BYTES / 3


def test_a_consumer_holds_about_prefetch_entries_not_the_backlog(
    real: tuple[redis.Redis, str],
) -> None:
    client, prefix = real
    _publish_backlog(client, prefix)
    seen: list[int] = []
    lock = threading.Lock()

    def handle(event: Blob, tag: object, caller: object) -> None:
        with lock:
            seen.append(event.n)

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        consumer = RedisStreamBroker(
            client, channel_prefix=prefix, group="g", start="all", prefetch=PREFETCH
        )
        with consumer:
            consumer.register_event_class(Blob)
            subscriber = FunctionalEventSubscriber(handle)
            EventPublisher(BLOBS, consumer).add_subscriber(subscriber)
            wait_until(lambda: len(seen) == BACKLOG, timeout=60)
            peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    _check(peak, seen)


def test_an_async_consumer_holds_about_prefetch_entries_not_the_backlog(
    real: tuple[redis.Redis, str],
) -> None:
    client, prefix = real
    _publish_backlog(client, prefix)
    seen: list[int] = []

    async def handle(event: Blob) -> None:
        seen.append(event.n)

    async def consume() -> int:
        before = tracemalloc.get_traced_memory()[0]
        async with AsyncRedisStreamBroker.from_url(
            REDIS_URL, channel_prefix=prefix, group="g", start="all", prefetch=PREFETCH
        ) as consumer:
            consumer.register_event_class(Blob)
            subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
            EventPublisher(BLOBS, broker=consumer).add_subscriber(subscriber)
            deadline = asyncio.get_running_loop().time() + 60
            while len(seen) < BACKLOG:
                assert asyncio.get_running_loop().time() < deadline, len(seen)
                await asyncio.sleep(0.01)
            return tracemalloc.get_traced_memory()[1] - before

    tracemalloc.start()
    try:
        peak = asyncio.run(consume())
    finally:
        tracemalloc.stop()
    _check(peak, seen)
