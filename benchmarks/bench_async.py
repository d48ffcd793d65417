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
- idle CPU of a subscriber doing nothing for 5 s.

Targets (issue 10): burst >= 1.2x raw (the writer sends what one loop turn
queued in one pipeline, raw pays a round trip per event), p50 <= 1.1x raw,
idle CPU ~0. Only loopback traffic, on channels with a unique prefix. Exits 0
with a message when no server answers. About a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import redis
import redis.asyncio

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import AsyncRedisBroker

DEFAULT_URL = os.environ.get("EVENTSPYPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PACED_RATE = 2000
PACED_SECONDS = 3.0
YIELD_EVERY = 1000
IDLE_SECONDS = 5.0
ROUNDS = 3
LATENCY_ROUNDS = 3


@dataclasses.dataclass
class OrderPlaced:
    order_id: int
    amount: float
    sent_at: float


ORDER_PLACED = EventPublication("order_placed", OrderPlaced)


def raw_payload(event: OrderPlaced) -> bytes:
    """What the raw loop sends: the bytes eventspype puts on the wire."""
    return json.dumps(
        {
            "event_tag": "ORDER_PLACED",
            "event_class": "OrderPlaced",
            "event_module": "__main__",
            "payload": json.dumps(dataclasses.asdict(event)),
        }
    ).encode()


# --- the subscriber subprocess ----------------------------------------------


async def child(mode: str, url: str, prefix: str, count: int) -> None:
    """Subscribe, print READY, then one JSON result line (see bench_redis.py)."""
    impl, scenario = mode.split("-")
    latencies: list[float] = []
    received = 0
    finished = asyncio.Event()
    done_at = 0.0

    def on_event(sent_at: float) -> None:
        nonlocal received, done_at
        if scenario == "latency":
            latencies.append(time.time() - sent_at)
        received += 1
        if received == count:
            done_at = time.time()
            finished.set()

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
            if scenario == "latency":
                envelope = json.loads(message["data"])
                on_event(json.loads(envelope["payload"])["sent_at"])
            else:
                on_event(0.0)
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
    print(json.dumps({"done": done_at, "latencies": latencies}))


async def idle_cpu(idle: Any) -> float:
    """Fraction of a core this process used while ``idle`` ran."""
    await asyncio.sleep(0.5)
    start = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    await idle
    end = resource.getrusage(resource.RUSAGE_SELF)
    used = (end.ru_utime + end.ru_stime) - (start.ru_utime + start.ru_stime)
    return used / (time.monotonic() - began)


async def close(client: Any) -> None:
    """``aclose()``, or ``close()`` before redis-py 5.0.1 added it."""
    await (getattr(client, "aclose", None) or client.close)()


# --- the parent ---------------------------------------------------------------


class Subscriber:
    """A subscriber subprocess (see :func:`child`)."""

    def __init__(self, mode: str, url: str, prefix: str, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, url, prefix, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "READY":
            self.process.kill()
            raise RuntimeError(f"subscriber {mode} failed to start: {line!r}")

    async def result(self, timeout: float = 120) -> dict[str, Any]:
        out, _ = await asyncio.to_thread(self.process.communicate, timeout=timeout)
        return dict(json.loads(out.strip().splitlines()[-1]))


class Publishers:
    """A raw client and an eventspype publisher, both on fresh connections."""

    def __init__(self, url: str) -> None:
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}:"
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
    subscriber = Subscriber(f"{impl}-count", url, side.prefix, events)
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
    done = float((await subscriber.result())["done"])
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
        path: Subscriber(f"{impl}-latency", url, sides[path].prefix, count)
        for path, impl in PATHS.items()
    }
    for side in sides.values():
        await side.raw.ping()
        await side.broker.publish_async("WARMUP", OrderPlaced(-1, 0, 0), "WARMUP", None)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def pace(offset: float, path: str) -> None:
        side = sides[path]
        for i in range(count):
            pause = start + offset + i / PACED_RATE - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
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
    for path, subscriber in subscribers.items():
        latencies = sorted((await subscriber.result())["latencies"])
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        results[path] = (statistics.median(latencies) * 1e3, p99 * 1e3)
    for side in sides.values():
        await side.close()
    return results


async def idle(url: str, impl: str) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    return float((await Subscriber(f"{impl}-idle", url, prefix, 0).result())["cpu"])


async def run(url: str, events: int) -> list[dict[str, Any]]:
    """Every scenario, raw and eventspype alternating round by round."""
    rows: list[dict[str, Any]] = []

    def row(name: str, unit: str, raw: float, ours: float, target: str) -> None:
        rows.append(
            {"scenario": name, "unit": unit, "raw_redis_asyncio": raw,
             "eventspype": ours, "ratio": ours / raw if raw else float("nan"),
             "target": target}
        )  # fmt: skip

    async def rounds(
        function: Any, *args: Any, count: int = ROUNDS
    ) -> dict[str, list[Any]]:
        results: dict[str, list[Any]] = {"raw": [], "eventspype": []}
        for _ in range(count):
            for impl in results:
                results[impl].append(await function(url, impl, *args))
        return results

    rates = await rounds(burst, events)
    row(f"burst, {events} events", "events/s",
        max(rates["raw"]), max(rates["eventspype"]), ">= 1.2x")  # fmt: skip
    paced = [await latency(url) for _ in range(LATENCY_ROUNDS)]
    for path in ("publish", "publish_async"):
        for index, name, target in ((0, "p50", "<= 1.1x"), (1, "p99", "")):
            raw, ours = (
                statistics.median(r[p][index] for r in paced) for p in ("raw", path)
            )
            row(f"{path} latency {name} at {PACED_RATE}/s", "ms", raw, ours, target)
    row("idle subscriber CPU", "% of a core",
        await idle(url, "raw") * 100, await idle(url, "eventspype") * 100,
        "~0%")  # fmt: skip
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'scenario':38} {'unit':>12} {'raw asyncio':>12} {'eventspype':>11}"
    print(header + f" {'ratio':>7}  target")
    for r in rows:
        print(
            f"{r['scenario']:38} {r['unit']:>12} {r['raw_redis_asyncio']:>12.3f} "
            f"{r['eventspype']:>11.3f} {r['ratio']:>6.2f}x  {r['target']}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=DEFAULT_URL)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--json", help="where to write results")
    args = parser.parse_args()
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as error:
        print(f"bench_async: skipped, no Redis server at {args.redis_url} ({error})")
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import write_results

    rows = asyncio.run(run(args.redis_url, args.events))
    print_table(rows)
    print("results:", write_results("async", rows, args.json))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        sys.exit(main())
