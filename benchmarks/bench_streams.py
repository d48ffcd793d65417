"""RedisStreamBroker against a raw redis-py Streams loop, on a loopback Redis server.

    python benchmarks/bench_streams.py [--redis-url URL] [--events 20000] [--json PATH]

A consumer runs in a subprocess and this process publishes. The raw loop does
the same job by hand: XADD of pre-encoded envelopes (``MAXLEN ~``); XREADGROUP
``COUNT 100 BLOCK 1000``; the batch's XACK pipelined. eventspype does it with
an ``EventPublisher`` on a ``RedisStreamBroker`` and a subscriber on the
consumer's broker (decoding, checks, dispatch and acknowledgement included).
Measured in one run, raw and eventspype alternating round by round:

- burst: ``--events`` events published one by one, first publish to last
  receipt (best of 3);
- latency: events paced at 2,000/s for 3 s, p50/p99 publish-to-receipt
  (median of 3 runs);
- idle CPU of a consumer with nothing to read, for 5 s;
- eventspype only: events/s through 1, 2 and 4 consumer processes of one
  group, each handler doing 0.2 ms of simulated I/O (a sleep) per event.

Only loopback traffic to the server at ``--redis-url`` (default
``EVENTSPYPE_TEST_REDIS_URL`` or redis://127.0.0.1:6379/0), on streams with a
unique prefix that are deleted afterwards. Exits 0 with a message when no
server answers. Runs in about a minute and a half.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import redis

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker

DEFAULT_URL = os.environ.get("EVENTSPYPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PACED_RATE = 2000
PACED_SECONDS = 3.0
IDLE_SECONDS = 5.0
WORK_SECONDS = 0.0002
ROUNDS = 3
GROUP = "bench"
MAXLEN = 1_000_000


@dataclasses.dataclass
class OrderPlaced:
    order_id: int
    amount: float
    sent_at: float


ORDER_PLACED = EventPublication("order_placed", OrderPlaced)


def raw_payload(event: OrderPlaced) -> bytes:
    """What the raw loop sends: the same envelope eventspype writes."""
    return json.dumps(
        {
            "event_tag": "ORDER_PLACED",
            "event_class": "OrderPlaced",
            "event_module": "__main__",
            "payload": json.dumps(dataclasses.asdict(event)),
        }
    ).encode()


# --- the consumer subprocess ------------------------------------------------


def child(mode: str, url: str, prefix: str, count: int) -> None:
    """Join the group, print READY, then one JSON result line; exit.

    ``mode`` is ``<impl>-<scenario>``: impl ``raw`` or ``eventspype``;
    scenario ``count`` (time of the ``count``-th event), ``latency`` (each
    event's latency), ``idle`` (CPU while idle) or ``work`` (handle with
    simulated I/O until the parent sends SIGTERM; eventspype only).
    """
    impl, scenario = mode.split("-")
    stream = f"{prefix}{{ORDER_PLACED}}"
    latencies: list[float] = []
    received = 0
    finished = threading.Event()
    done_at = 0.0

    def on_event(sent_at: float) -> None:
        nonlocal received, done_at
        if scenario == "latency":
            latencies.append(time.time() - sent_at)
        elif scenario == "work":
            time.sleep(WORK_SECONDS)
        received += 1
        if received == count:
            done_at = time.time()
            finished.set()

    if impl == "raw":
        client = redis.Redis.from_url(url)
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP
            client.xgroup_create(stream, GROUP, id="$", mkstream=True)
        consumer = f"raw-{os.getpid()}"

        def step() -> None:
            reply = client.xreadgroup(
                GROUP, consumer, {stream: ">"}, count=100, block=1000
            )
            for _, entries in reply or []:
                for _, fields in entries:
                    if scenario == "latency":
                        envelope = json.loads(fields[b"event"])
                        on_event(json.loads(envelope["payload"])["sent_at"])
                    else:
                        on_event(0.0)
                pipeline = client.pipeline(transaction=False)
                pipeline.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])
                pipeline.execute()

        print("READY", flush=True)
        if scenario == "idle":
            print(json.dumps({"cpu": idle_cpu(step)}))
            return
        while not finished.is_set():
            step()
    else:
        broker = RedisStreamBroker.from_url(
            url, channel_prefix=prefix, group=GROUP, maxlen=MAXLEN
        )
        broker.register_event_class(OrderPlaced)
        subscriber = FunctionalEventSubscriber(
            lambda event: on_event(event.sent_at), with_event_info=False
        )
        EventPublisher(ORDER_PLACED, broker=broker).add_subscriber(subscriber)
        print("READY", flush=True)
        if scenario == "idle":
            print(json.dumps({"cpu": idle_cpu(None)}))
            broker.close()
            return
        if scenario == "work":
            sys.stdin.read()  # until the parent closes our stdin
        else:
            finished.wait(300)
        broker.close()
    print(json.dumps({"done": done_at, "latencies": latencies, "count": received}))


def idle_cpu(step: Any) -> float:
    """Fraction of a core used over IDLE_SECONDS, running the raw loop's
    ``step`` repeatedly, or sleeping (``None``: the broker's reader works)."""
    time.sleep(0.5)
    start = resource.getrusage(resource.RUSAGE_SELF)
    if step is None:
        time.sleep(IDLE_SECONDS)
    else:
        deadline = time.monotonic() + IDLE_SECONDS
        while time.monotonic() < deadline:
            step()
    end = resource.getrusage(resource.RUSAGE_SELF)
    used = (end.ru_utime + end.ru_stime) - (start.ru_utime + start.ru_stime)
    return used / IDLE_SECONDS


# --- the parent ---------------------------------------------------------------


class Consumer:
    """A consumer subprocess (see :func:`child`)."""

    def __init__(self, mode: str, url: str, prefix: str, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, url, prefix, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "READY":
            self.process.kill()
            raise RuntimeError(f"consumer {mode} failed to start: {line!r}")

    def result(self, timeout: float = 300) -> dict[str, Any]:
        out, _ = self.process.communicate("", timeout=timeout)  # closes stdin
        return dict(json.loads(out.strip().splitlines()[-1]))


class Publisher:
    """Publishes one event at a time, raw or through eventspype."""

    def __init__(self, url: str, impl: str, prefix: str) -> None:
        self.impl = impl
        self.stream = f"{prefix}{{ORDER_PLACED}}"
        self.client = redis.Redis.from_url(url)
        self.broker = RedisStreamBroker.from_url(
            url, channel_prefix=prefix, maxlen=MAXLEN
        )
        self.publisher = EventPublisher(ORDER_PLACED, broker=self.broker)

    def send(self, event: OrderPlaced, payload: bytes | None = None) -> None:
        if self.impl == "raw":
            self.client.xadd(
                self.stream,
                {"event": payload or raw_payload(event)},
                maxlen=MAXLEN,
                approximate=True,
            )
        else:
            self.publisher.publish(event)

    def close(self) -> None:
        self.client.delete(self.stream, f"{self.stream}:dead")
        self.broker.close()
        self.client.close()


def burst(url: str, impl: str, events: int) -> float:
    prefix = f"bench-streams-{uuid.uuid4().hex[:8]}:"
    consumer = Consumer(f"{impl}-count", url, prefix, events)
    publisher = Publisher(url, impl, prefix)
    items = [OrderPlaced(i, 49.99, 0.0) for i in range(events)]
    payloads = [raw_payload(item) for item in items]
    start = time.time()
    for item, payload in zip(items, payloads, strict=True):
        publisher.send(item, payload)
    done = float(consumer.result()["done"])
    publisher.close()
    return events / (done - start)


def latency(url: str, impl: str) -> tuple[float, float]:
    prefix = f"bench-streams-{uuid.uuid4().hex[:8]}:"
    count = int(PACED_RATE * PACED_SECONDS)
    consumer = Consumer(f"{impl}-latency", url, prefix, count)
    publisher = Publisher(url, impl, prefix)
    start = time.monotonic()
    for i in range(count):
        pause = start + i / PACED_RATE - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        publisher.send(OrderPlaced(i, 49.99, time.time()))
    latencies = sorted(consumer.result()["latencies"])
    publisher.close()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies) * 1e3, p99 * 1e3


def idle(url: str, impl: str) -> float:
    prefix = f"bench-streams-{uuid.uuid4().hex[:8]}:"
    cpu = float(Consumer(f"{impl}-idle", url, prefix, 0).result()["cpu"]) * 100
    client = redis.Redis.from_url(url)
    client.delete(f"{prefix}{{ORDER_PLACED}}")
    client.close()
    return cpu


def group_rate(url: str, consumers: int, events: int) -> float:
    """Events/s through ``consumers`` processes of one group (simulated I/O)."""
    prefix = f"bench-streams-{uuid.uuid4().hex[:8]}:"
    stream = f"{prefix}{{ORDER_PLACED}}"
    started = [Consumer("eventspype-work", url, prefix, 0) for _ in range(consumers)]
    publisher = Publisher(url, "eventspype", prefix)
    admin = redis.Redis.from_url(url)
    start = time.time()
    for first in range(0, events, 500):
        with publisher.broker.batch():
            for i in range(first, min(first + 500, events)):
                publisher.send(OrderPlaced(i, 49.99, 0.0))

    def group_done() -> bool:
        [info] = admin.xinfo_groups(stream)
        return int(info["entries-read"] or 0) >= events and not int(info["pending"])

    while not group_done():
        time.sleep(0.005)
    elapsed = time.time() - start
    handled = 0
    for consumer in started:
        handled += int(consumer.result()["count"])
    assert handled >= events, (handled, events)
    publisher.close()
    admin.close()
    return events / elapsed


def run(url: str, events: int) -> list[dict[str, Any]]:
    """Every scenario, raw and eventspype alternating round by round (the
    machine's load drifts: alternating shares it fairly)."""
    rows: list[dict[str, Any]] = []

    def row(name: str, unit: str, raw: float | None, ours: float, target: str) -> None:
        rows.append(
            {"scenario": name, "unit": unit, "raw_redis_py": raw, "eventspype": ours,
             "ratio": None if raw is None else ours / raw, "target": target}
        )  # fmt: skip

    def rounds(function: Any, *args: Any) -> dict[str, list[Any]]:
        results: dict[str, list[Any]] = {"raw": [], "eventspype": []}
        for _ in range(ROUNDS):
            for impl in results:
                results[impl].append(function(url, impl, *args))
        return results

    rates = rounds(burst, events)
    row(f"burst, {events} events (best of {ROUNDS})", "events/s",
        max(rates["raw"]), max(rates["eventspype"]), ">= 1.0x")  # fmt: skip
    paced = rounds(latency)
    for index, name, target in ((0, "p50", "<= 1.2x"), (1, "p99", "")):
        raw, ours = (
            statistics.median(r[index] for r in paced[impl])
            for impl in ("raw", "eventspype")
        )
        row(f"latency {name} at {PACED_RATE}/s (median of {ROUNDS})", "ms",
            raw, ours, target)  # fmt: skip
    row("idle consumer CPU", "% of a core",
        idle(url, "raw"), idle(url, "eventspype"), "~0%")  # fmt: skip
    for consumers in (1, 2, 4):
        rate = group_rate(url, consumers, events)
        row(f"group of {consumers}, 0.2 ms I/O per event", "events/s",
            None, rate, "")  # fmt: skip
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'scenario':38} {'unit':>12} {'raw redis-py':>13} {'eventspype':>11}"
    print(header + f" {'ratio':>7}  target")
    for r in rows:
        raw = "" if r["raw_redis_py"] is None else f"{r['raw_redis_py']:.3f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        print(
            f"{r['scenario']:38} {r['unit']:>12} {raw:>13} "
            f"{r['eventspype']:>11.3f} {ratio:>7}  {r['target']}"
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
        print(f"bench_streams: skipped, no Redis server at {args.redis_url} ({error})")
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import write_results

    rows = run(args.redis_url, args.events)
    print_table(rows)
    print("results:", write_results("streams", rows, args.json))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main())
