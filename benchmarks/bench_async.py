"""AsyncRedisBroker against a raw redis.asyncio loop, end to end, on a loopback Redis.

    python benchmarks/bench_async.py [--redis-url URL] [--events 20000] [--json PATH]

In each scenario a subscriber runs in a subprocess and this process publishes
on an asyncio loop, once raw (``await client.publish(channel, payload)`` per
event, pre-encoded bytes; the subscriber a ``redis.asyncio`` ``PubSub`` read
loop) and once through eventspype (``EventPublisher.publish`` with an
``AsyncRedisBroker``; the subscriber an ``AsyncRedisBroker`` with a plain
function subscriber), alternating round by round:

- burst: ``--events`` events published as fast as the loop goes (the
  eventspype side yields to the loop every 1,000 events, as a service handling
  requests does), first publish to last receipt, best of 3;
- latency: events paced at 2,000/s for 3 s on each of three paths side by
  side in one run: raw, eventspype's ``publisher.publish(event)`` and
  ``await publisher.publish_async(event)`` (three subscriber processes; the
  paths publish interleaved, so the machine's load weighs on all alike),
  p50/p99 publish-to-receipt, median of 3 runs;
- idle CPU of a subscriber doing nothing for 5 s;
- reading Pub/Sub messages (RESP3 pushes of a 180-byte payload), 1 and 100
  per read: redis-py's asyncio parser (hiredis's where it is installed)
  against the listener's, ``_io.push_reader`` (kept only while it wins),
  best of 5;
- the coroutine case (``_coroutines.py``): coroutine subscribers, ``await
  publisher.publish_async(event)`` per event, a burst then paced events in one
  run, with the subscriber's CPU; raw, encode/broadcaster (when installed) and
  eventspype (targets of issue 16: burst >= 1.5x raw, p50 <= 1.1x, subscriber
  CPU <= 1.0x, ahead of broadcaster).

Targets (issue 10): burst >= 1.2x raw (the writer sends what one loop turn
queued in one pipeline, raw pays a round trip per event), p50 <= 1.1x raw,
idle CPU ~0. Only loopback traffic, on channels with a unique prefix. Exits 0
with a message when no server answers. About a minute.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

import redis.asyncio
from _coroutines import child as coroutine_child
from _coroutines import compare as compare_coroutines
from _peer import (
    IDLE_SECONDS,
    ORDER_PLACED,
    OrderPlaced,
    Peer,
    Receipts,
    command_line,
    cpu_since,
    raw_payload,
    raw_sent_at,
    unique_prefix,
)
from _timing import (
    Comparison,
    alternate_async,
    paced_async,
    parser_timings,
    percentiles_ms,
    print_comparison,
)

from eventspype import EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import AsyncRedisBroker

PACED_RATE = 2000
PACED_SECONDS = 3.0
YIELD_EVERY = 1000
ROUNDS = 3
LATENCY_ROUNDS = 3
BASELINE = "raw_redis_asyncio"


# --- the subscriber subprocess ----------------------------------------------


async def child(mode: str, url: str, prefix: str, count: int) -> None:
    """Subscribe, print READY, then one JSON result line (see bench_redis.py)."""
    impl, scenario = mode.split("-")
    finished = asyncio.Event()
    on_event = Receipts(scenario, count, finished.set)

    if impl == "raw":
        client = redis.asyncio.Redis.from_url(url)
        pubsub = client.pubsub()
        await pubsub.subscribe(f"{prefix}ORDER_PLACED")
        while (await pubsub.get_message(timeout=1.0) or {}).get("type") != "subscribe":
            pass
        print("READY", flush=True)
        if scenario == "idle":
            deadline = time.monotonic() + IDLE_SECONDS + 0.5

            async def read() -> None:
                while time.monotonic() < deadline:
                    await pubsub.get_message(timeout=1.0)

            print(json.dumps({"cpu": await idle_cpu(read())}))
            return
        while not finished.is_set():
            message = await pubsub.get_message(timeout=1.0)
            if message is None or message["type"] != "message":
                continue
            on_event(raw_sent_at(message["data"]) if scenario == "latency" else 0)
        await close(pubsub)
        await close(client)
    else:
        broker = AsyncRedisBroker.from_url(url, channel_prefix=prefix)
        broker.register_event_class(OrderPlaced)
        subscriber = FunctionalEventSubscriber(
            lambda event: on_event(event.sent_at), with_event_info=False
        )
        EventPublisher(ORDER_PLACED, broker=broker).add_subscriber(subscriber)
        await broker.wait_until_subscribed()
        print("READY", flush=True)
        if scenario == "idle":
            print(json.dumps({"cpu": await idle_cpu(asyncio.sleep(IDLE_SECONDS))}))
            await broker.aclose()
            return
        await asyncio.wait_for(finished.wait(), 300)
        await broker.aclose()
    print(on_event.report())


async def idle_cpu(idle: Any) -> float:
    """Fraction of a core this process used while ``idle`` ran."""
    await asyncio.sleep(0.5)
    start = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    await idle
    return cpu_since(start) / (time.monotonic() - began)


async def close(client: Any) -> None:
    """``aclose()``, or ``close()`` before redis-py 5.0.1 added it."""
    await (getattr(client, "aclose", None) or client.close)()


# --- the parent ---------------------------------------------------------------


def start_subscriber(mode: str, url: str, prefix: str, count: int) -> Peer:
    """A subscriber subprocess (see :func:`child`)."""
    return Peer(__file__, mode, url, prefix, count)


async def result(peer: Peer, timeout: float = 120) -> dict[str, Any]:
    """The peer's result, awaited without blocking the loop."""
    return await asyncio.to_thread(peer.result, timeout)


class Publishers:
    """A raw client and an eventspype publisher, both on fresh connections."""

    def __init__(self, url: str) -> None:
        self.prefix = unique_prefix()
        self.channel = f"{self.prefix}ORDER_PLACED"
        self.raw = redis.asyncio.Redis.from_url(url)
        self.broker = AsyncRedisBroker.from_url(url, channel_prefix=self.prefix)
        self.publisher = EventPublisher(ORDER_PLACED, broker=self.broker)

    async def close(self) -> None:
        await self.broker.aclose()
        await close(self.raw)


async def burst(url: str, impl: str, events: int) -> float:
    side = Publishers(url)
    items = [OrderPlaced(i, 49.99, 0.0) for i in range(events)]
    payloads = [raw_payload(item) for item in items] if impl == "raw" else []
    peer = start_subscriber(f"{impl}-count", url, side.prefix, events)
    await side.raw.ping()  # both sides connected before the clock starts
    await side.broker.publish_async("WARMUP", OrderPlaced(-1, 0, 0), "WARMUP", None)
    start = time.time()
    if impl == "raw":
        for payload in payloads:
            await side.raw.publish(side.channel, payload)
    else:
        publish = side.publisher.publish
        for index, item in enumerate(items):
            publish(item)
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        await side.broker.flush()
    done = float((await result(peer))["done"])
    await side.close()
    return events / (done - start)


#: The paths of the latency scenario: how each publishes, and its subscriber.
PATHS = {"raw": "raw", "publish": "eventspype", "publish_async": "eventspype"}


async def latency(url: str) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of every path, measured side by side in one paced run.

    Paths: ``raw`` (``await client.publish``), ``publish``
    (``publisher.publish(event)``: queued, the writer sends it) and
    ``publish_async`` (``await publisher.publish_async(event)``). Their
    subscriber processes run at once and the paths publish interleaved, a
    third of a period apart, so that the machine's load, which drifts, weighs
    on all alike.
    """
    sides = {path: Publishers(url) for path in PATHS}
    count = int(PACED_RATE * PACED_SECONDS)
    subscribers = {
        path: start_subscriber(f"{impl}-latency", url, sides[path].prefix, count)
        for path, impl in PATHS.items()
    }
    for side in sides.values():
        await side.raw.ping()
        await side.broker.publish_async("WARMUP", OrderPlaced(-1, 0, 0), "WARMUP", None)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def pace(offset: float, path: str) -> None:
        side = sides[path]
        async for i in paced_async(count, PACED_RATE, start + offset):
            event = OrderPlaced(i, 49.99, time.time())
            if path == "raw":
                await side.raw.publish(side.channel, raw_payload(event))
            elif path == "publish":
                side.publisher.publish(event)
            else:
                await side.publisher.publish_async(event)

    await asyncio.gather(
        *(
            pace(index / len(PATHS) / PACED_RATE, path)
            for index, path in enumerate(PATHS)
        )
    )
    results = {}
    for path, peer in subscribers.items():
        results[path] = percentiles_ms((await result(peer))["latencies"])
    for side in sides.values():
        await side.close()
    return results


async def idle(url: str, impl: str) -> float:
    prefix = unique_prefix()
    return float(
        (await result(start_subscriber(f"{impl}-idle", url, prefix, 0)))["cpu"]
    )


async def run(url: str, events: int) -> list[dict[str, Any]]:
    """Every scenario, raw and eventspype alternating round by round."""
    table = Comparison(BASELINE)

    async def rounds(function: Any, *args: Any) -> dict[str, list[Any]]:
        return await alternate_async(lambda impl: function(url, impl, *args), ROUNDS)

    table.add_best(f"burst, {events} events", "events/s",
                   await rounds(burst, events), ">= 1.2x")  # fmt: skip
    paced = [await latency(url) for _ in range(LATENCY_ROUNDS)]
    for path in ("publish", "publish_async"):
        by_impl = {
            "raw": [r["raw"] for r in paced],
            "eventspype": [r[path] for r in paced],
        }
        table.add_percentiles(f"{path} latency {{}} at {PACED_RATE}/s", by_impl,
                              ("<= 1.1x", ""))  # fmt: skip
    table.add("idle subscriber CPU", "% of a core",
              await idle(url, "raw") * 100, await idle(url, "eventspype") * 100,
              "~0%")  # fmt: skip
    for per_read in (1, 100):
        raw_us, ours_us = await message_timings(per_read)
        table.add(f"read a Pub/Sub message, {per_read} a read (speed)", "k/s",
                  1e3 / raw_us, 1e3 / ours_us, "keep ours if > 1x")  # fmt: skip
    await compare_coroutines(url, __file__, table)
    return table.rows


async def message_timings(per_read: int) -> tuple[float, float]:
    """us to read one Pub/Sub message when ``per_read`` arrive in one read:
    redis-py's parser, then the listener's ``PushReader``."""
    from eventspype.broker.redis._io.push_reader import MAX_BULK, PushReader

    payload = b"x" * 180
    message = b">3\r\n$7\r\nmessage\r\n$12\r\nchannel:abcd\r\n$%d\r\n%s\r\n" % (
        len(payload),
        payload,
    )

    async def theirs(parser: Any, stream: asyncio.StreamReader) -> None:
        for _ in range(per_read):
            await parser.read_response(push_request=True)

    reader = PushReader(MAX_BULK)  # one per connection, as the listener's

    async def ours(parser: Any, stream: asyncio.StreamReader) -> None:
        reader.feed(await stream.read(1 << 16))
        assert len(reader.replies()) == per_read

    return await parser_timings(
        message * per_read, theirs, ours, per_feed=per_read, number=2_000
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    print_comparison(rows, BASELINE, "raw asyncio", width=38)


def main() -> int:
    def run_sync(url: str, events: int) -> list[dict[str, Any]]:
        return asyncio.run(run(url, events))

    return command_line("async", __doc__ or "", 20_000, run_sync, print_table)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"] and sys.argv[2].startswith("coroutine-"):
        impl = sys.argv[2].partition("-")[2]
        asyncio.run(coroutine_child(impl, sys.argv[3], sys.argv[4]))
    elif sys.argv[1:2] == ["--child"]:
        asyncio.run(child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        sys.exit(main())
