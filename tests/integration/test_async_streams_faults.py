"""AsyncRedisStreamBroker under faults, each test on a private redis-server.

A server that stops answering (SIGSTOP) must not stall the event loop:
``publish()`` returns at once and the loop keeps running other tasks. A server
killed and restarted with an append-only file: the consumer task reconnects
and every event reaches the group. Waits are generous; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions
from redis_helpers import PrivateRedis, private_redis

from eventspype import AsyncFunctionalEventSubscriber, EventPublication, EventPublisher
from eventspype.broker.redis import AsyncRedisStreamBroker

pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Tick:
    n: int


TICKS = EventPublication("tick", Tick)


class Collector:
    """A consumer with a coroutine subscriber that records every ``n``."""

    def __init__(self, url: str) -> None:
        self.seen: set[int] = set()
        self.broker = AsyncRedisStreamBroker.from_url(
            url,
            channel_prefix="afaults:",
            group="g",
            claim_idle=1.0,
            reconnect_delay=(0.05, 0.5),
        )
        self.broker.register_event_class(Tick)
        self.subscriber = AsyncFunctionalEventSubscriber(
            self._record, with_event_info=False
        )
        EventPublisher(TICKS, broker=self.broker).add_subscriber(self.subscriber)

    async def _record(self, event: Tick) -> None:
        self.seen.add(event.n)


async def eventually(condition: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


def test_a_stalled_redis_never_stalls_the_loop(server: PrivateRedis) -> None:
    async def scenario() -> None:
        collector = Collector(server.url)
        publisher = AsyncRedisStreamBroker.from_url(
            server.url, channel_prefix="afaults:", publish_timeout=30.0
        )
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        try:
            await collector.broker.wait_until_subscribed()
            server.pause()
            events = EventPublisher(TICKS, broker=publisher)
            for n in range(100):
                events.publish(Tick(n))  # queued: returns at once
            before = ticks
            await eventually(lambda: ticks >= before + 20)  # the loop runs on
            server.resume()
            await eventually(lambda: collector.seen == set(range(100)))
        finally:
            ticking.cancel()
            await publisher.aclose()
            await collector.broker.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_redis_restarted_with_aof_mid_stream_loses_nothing(tmp_path: Path) -> None:
    aof = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]

    async def scenario(server: PrivateRedis) -> None:
        collector = Collector(server.url)
        publisher = AsyncRedisStreamBroker.from_url(
            server.url, channel_prefix="afaults:"
        )
        events = EventPublisher(TICKS, broker=publisher)
        try:
            await collector.broker.wait_until_subscribed()
            for n in range(1000):
                await events.publish_async(Tick(n))
            server.kill()
            server.start()
            for n in range(1000, 2000):
                while True:  # at least once: retry while Redis is away
                    try:
                        await events.publish_async(Tick(n))
                        break
                    except (redis.exceptions.ConnectionError, OSError):
                        await asyncio.sleep(0.05)
            await eventually(lambda: collector.seen == set(range(2000)), 120)
            assert collector.broker.stats().reconnects >= 1
        finally:
            await publisher.aclose()
            await collector.broker.aclose()

    with private_redis(*aof) as server:
        asyncio.run(asyncio.wait_for(scenario(server), 180))


def test_acknowledgements_lost_in_an_outage_are_sent_when_redis_is_back(
    tmp_path: Path,
) -> None:
    # As for RedisStreamBroker: all 20 entries are read in one batch, the last
    # handler kills Redis before an acknowledgement went out; with AOF they
    # stay pending with this consumer, and once Redis is back the failed
    # acknowledgements are sent (owned entries: claim_idle is far away), so
    # nothing is handled twice.
    total = 20
    aof = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    handled: list[int] = []

    async def scenario(server: PrivateRedis) -> None:
        publisher = AsyncRedisStreamBroker.from_url(server.url, channel_prefix="acks:")
        events = EventPublisher(TICKS, broker=publisher)
        for n in range(total):
            await events.publish_async(Tick(n))
        await publisher.aclose()
        killed = asyncio.Event()

        async def handle(event: Tick) -> None:
            handled.append(event.n)
            if event.n == total - 1 and not killed.is_set():
                server.kill()
                killed.set()

        consumer = AsyncRedisStreamBroker.from_url(
            server.url,
            channel_prefix="acks:",
            group="g",
            consumer="one",
            start="all",
            prefetch=50,
            claim_idle=300.0,
            reconnect_delay=(0.05, 0.2),
        )
        consumer.register_event_class(Tick)
        subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
        EventPublisher(TICKS, broker=consumer).add_subscriber(subscriber)
        try:
            await asyncio.wait_for(killed.wait(), 60)
            server.start()
            key = consumer.stream_key("TICK")
            with server.client() as admin:
                assert admin.xpending(key, "g")["pending"] == total  # kept by AOF
                await eventually(lambda: admin.xpending(key, "g")["pending"] == 0)
            assert sorted(handled) == list(range(total)), "handled twice"
            assert consumer.stats().reconnects >= 1
        finally:
            await consumer.aclose()

    with private_redis(*aof) as server:
        asyncio.run(asyncio.wait_for(scenario(server), 180))
