"""bench_async.py's coroutine case: coroutine subscribers, ``await`` per publish.

The asyncio use case as services write it: the subscriber process handles
each event in a coroutine, the publisher awaits each publish. Three
implementations, run alternately, each in one run per round:

- ``raw``: a ``redis.asyncio`` ``PubSub`` read loop awaiting the handler per
  message; ``await client.publish(channel, payload)`` (pre-encoded bytes);
- ``broadcaster``: encode/broadcaster's Redis backend (``async for`` over its
  subscriber, awaiting the handler); ``await broadcast.publish(...)``, when
  that package is installed (its row is left out otherwise);
- ``eventspype``: ``AsyncRedisBroker`` with an ``AsyncFunctionalEventSubscriber``;
  ``await publisher.publish_async(event)``.

Each run publishes ``BURST`` events as fast as the awaits allow (first
publish to the subscriber's last receipt), then ``PACED`` events at ``RATE``/s
(publish-to-receipt latency), and reports the subscriber's CPU time over the
whole run. Targets (issue 16): burst >= 1.5x raw, p50 <= 1.1x raw,
subscriber CPU <= 1.0x raw, and eventspype ahead of broadcaster on each.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import resource
import statistics
import time
from typing import Any

import redis.asyncio
from _peer import (
    ORDER_PLACED,
    OrderPlaced,
    Peer,
    cpu_since,
    raw_payload,
    raw_sent_at,
    unique_prefix,
)
from _timing import Comparison, paced_async, percentiles_ms

from eventspype import AsyncFunctionalEventSubscriber, EventPublisher
from eventspype.broker.redis import AsyncRedisBroker

BURST = int(__import__("os").environ.get("CORO_BURST", 20_000))
PACED = int(__import__("os").environ.get("CORO_PACED", 4_000))
RATE = 2_000
ROUNDS = 2


def impls() -> list[str]:
    """The implementations to compare, the baseline first."""
    found = importlib.util.find_spec("broadcaster") is not None
    return ["raw", *(["broadcaster"] if found else []), "eventspype"]


# --- the subscriber subprocess ----------------------------------------------


class Record:
    """The subscriber's bookkeeping; prints ``BURST`` once the burst is in."""

    def __init__(self) -> None:
        self.received = 0
        self.burst_done = 0.0
        self.latencies: list[float] = []
        self.finished = asyncio.Event()
        self.cpu_start: Any = None

    def __call__(self, sent_at: float) -> None:
        if sent_at:
            self.latencies.append(time.time() - sent_at)
        self.received += 1
        if self.received == BURST:
            self.burst_done = time.time()
            print("BURST", flush=True)
        elif self.received == BURST + PACED:
            self.finished.set()

    def ready(self) -> None:
        print("READY", flush=True)
        self.cpu_start = resource.getrusage(resource.RUSAGE_SELF)

    def report(self) -> str:
        return json.dumps(
            {
                "burst_done": self.burst_done,
                "latencies": self.latencies,
                "cpu": cpu_since(self.cpu_start),
            }
        )


async def child(impl: str, url: str, prefix: str) -> None:
    """Subscribe with ``impl``, handle every event in a coroutine, report."""
    channel = f"{prefix}ORDER_PLACED"
    record = Record()
    if impl == "raw":
        client = redis.asyncio.Redis.from_url(url)
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        while (await pubsub.get_message(timeout=1.0) or {}).get("type") != "subscribe":
            pass

        async def on_raw(data: bytes) -> None:
            record(raw_sent_at(data))

        record.ready()
        while not record.finished.is_set():
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "message":
                await on_raw(message["data"])
        await pubsub.aclose()
        await client.aclose()
    elif impl == "broadcaster":
        from broadcaster import Broadcast

        broadcast = Broadcast(url)
        await broadcast.connect()
        async with broadcast.subscribe(channel=channel) as subscriber:
            await asyncio.sleep(0.5)  # it has no confirmation to wait for

            async def on_text(text: str) -> None:
                record(raw_sent_at(text.encode()))

            record.ready()
            async for event in subscriber:  # type: ignore[union-attr]
                await on_text(event.message)
                if record.finished.is_set():
                    break
        await broadcast.disconnect()
    else:
        broker = AsyncRedisBroker.from_url(url, channel_prefix=prefix)
        broker.register_event_class(OrderPlaced)

        async def on_event(event: OrderPlaced) -> None:
            record(event.sent_at)

        handler = AsyncFunctionalEventSubscriber(
            on_event, with_event_info=False, max_pending=BURST + PACED
        )
        EventPublisher(ORDER_PLACED, broker=broker).add_subscriber(handler)
        await broker.wait_until_subscribed()
        record.ready()
        await asyncio.wait_for(record.finished.wait(), 300)
        await broker.aclose()
    print(record.report(), flush=True)


# --- the publisher ------------------------------------------------------------


class Publisher:
    """``await publish(event)`` the way ``impl`` does it."""

    def __init__(self, impl: str, url: str, prefix: str) -> None:
        self.impl = impl
        self.channel = f"{prefix}ORDER_PLACED"
        self.client = redis.asyncio.Redis.from_url(url)
        self.broker = AsyncRedisBroker.from_url(url, channel_prefix=prefix)
        self.publisher = EventPublisher(ORDER_PLACED, broker=self.broker)
        self.broadcast: Any = None
        if impl == "broadcaster":
            from broadcaster import Broadcast

            self.broadcast = Broadcast(url)

    async def start(self) -> None:
        await self.client.ping()
        await self.broker.publish_async("WARMUP", OrderPlaced(-1, 0, 0), "WARMUP", None)
        if self.broadcast is not None:
            await self.broadcast.connect()

    async def publish(self, event: OrderPlaced) -> None:
        if self.impl == "raw":
            await self.client.publish(self.channel, raw_payload(event))
        elif self.impl == "broadcaster":
            await self.broadcast.publish(self.channel, raw_payload(event).decode())
        else:
            await self.publisher.publish_async(event)

    async def close(self) -> None:
        if self.broadcast is not None:
            await self.broadcast.disconnect()
        await self.broker.aclose()
        await self.client.aclose()


async def one_run(url: str, impl: str, script: str) -> dict[str, float]:
    """Burst then paced, through ``impl``: rate, p50, p99 and subscriber CPU."""
    prefix = unique_prefix()
    peer = Peer(script, f"coroutine-{impl}", url, prefix, 0)
    side = Publisher(impl, url, prefix)
    await side.start()
    items = [OrderPlaced(i, 49.99, 0.0) for i in range(BURST)]
    start = time.time()
    for item in items:
        await side.publish(item)
    assert peer.process.stdout is not None
    line = await asyncio.to_thread(peer.process.stdout.readline)
    if line.strip() != "BURST":
        raise RuntimeError(f"the {impl} subscriber said {line!r}")
    loop = asyncio.get_running_loop()
    async for i in paced_async(PACED, RATE, loop.time() + 0.05):
        await side.publish(OrderPlaced(BURST + i, 49.99, time.time()))
    result = await asyncio.to_thread(peer.result, 120)
    await side.close()
    p50, p99 = percentiles_ms(result["latencies"])
    return {
        "burst": BURST / (float(result["burst_done"]) - start),
        "p50": p50,
        "p99": p99,
        "cpu": float(result["cpu"]),
    }


async def compare(url: str, script: str, table: Comparison) -> None:
    """The coroutine case's rows (medians of ``ROUNDS`` alternated runs)."""
    names = impls()
    runs: dict[str, list[dict[str, float]]] = {impl: [] for impl in names}
    for _ in range(ROUNDS):
        for impl in names:
            runs[impl].append(await one_run(url, impl, script))

    def median(impl: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[impl])

    rows = (
        (f"coroutine: burst, {BURST} awaited", "events/s", "burst", ">= 1.5x"),
        (f"coroutine: p50 at {RATE}/s", "ms", "p50", "<= 1.1x"),
        (f"coroutine: p99 at {RATE}/s", "ms", "p99", ""),
        ("coroutine: subscriber CPU", "s", "cpu", "<= 1.0x"),
    )
    for scenario, unit, key, target in rows:
        table.add(scenario, unit, median("raw", key), median("eventspype", key), target)
        if "broadcaster" in runs:
            table.add(
                scenario.replace("coroutine:", "  broadcaster:"),
                unit,
                median("raw", key),
                median("broadcaster", key),
                "",
            )
