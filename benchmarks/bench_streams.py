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

Targets (issue 15): burst >= 1.3x raw, p50 <= 0.9x.

Only loopback traffic to the server at ``--redis-url`` (default
``EVENTSPYPE_TEST_REDIS_URL`` or redis://127.0.0.1:6379/0), on streams with a
unique prefix that are deleted afterwards. Exits 0 with a message when no
server answers. Runs in about a minute and a half.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import Any

import redis
from _peer import (
    ORDER_PLACED,
    OrderPlaced,
    Peer,
    Receipts,
    command_line,
    idle_cpu,
    raw_payload,
    raw_sent_at,
    unique_prefix,
)
from _timing import Comparison, alternate, paced, percentiles_ms, print_comparison

from eventspype import EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker

PACED_RATE = 2000
PACED_SECONDS = 3.0
WORK_SECONDS = 0.0002
ROUNDS = 3
GROUP = "bench"
MAXLEN = 1_000_000


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
    finished = threading.Event()
    on_event = Receipts(scenario, count, finished.set, WORK_SECONDS)

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
                    latency = scenario == "latency"
                    on_event(raw_sent_at(fields[b"event"]) if latency else 0)
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
        publisher = EventPublisher(ORDER_PLACED, broker=broker)
        publisher.add_subscriber(subscriber)
        print("READY", flush=True)
        if scenario == "idle":
            print(json.dumps({"cpu": idle_cpu(None)}))
            publisher.remove_subscriber(subscriber)  # idle: it never got one
            broker.close()
            return
        if scenario == "work":
            sys.stdin.read()  # until the parent closes our stdin
        else:
            finished.wait(300)
        broker.close()
    print(on_event.report())


# --- the parent ---------------------------------------------------------------


def start_consumer(mode: str, url: str, prefix: str, count: int) -> Peer:
    """A consumer subprocess (see :func:`child`)."""
    return Peer(__file__, mode, url, prefix, count)


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
    prefix = unique_prefix("bench-streams")
    peer = start_consumer(f"{impl}-count", url, prefix, events)
    publisher = Publisher(url, impl, prefix)
    items = [OrderPlaced(i, 49.99, 0.0) for i in range(events)]
    payloads = [raw_payload(item) for item in items]
    start = time.time()
    for item, payload in zip(items, payloads, strict=True):
        publisher.send(item, payload)
    done = float(peer.result()["done"])
    publisher.close()
    return events / (done - start)


def latency(url: str, impl: str) -> tuple[float, float]:
    prefix = unique_prefix("bench-streams")
    count = int(PACED_RATE * PACED_SECONDS)
    peer = start_consumer(f"{impl}-latency", url, prefix, count)
    publisher = Publisher(url, impl, prefix)
    for i in paced(count, PACED_RATE):
        publisher.send(OrderPlaced(i, 49.99, time.time()))
    latencies = peer.result()["latencies"]
    publisher.close()
    return percentiles_ms(latencies)


def idle(url: str, impl: str) -> float:
    prefix = unique_prefix("bench-streams")
    cpu = float(start_consumer(f"{impl}-idle", url, prefix, 0).result()["cpu"]) * 100
    client = redis.Redis.from_url(url)
    client.delete(f"{prefix}{{ORDER_PLACED}}")
    client.close()
    return cpu


def group_rate(url: str, consumers: int, events: int) -> float:
    """Events/s through ``consumers`` processes of one group (simulated I/O)."""
    prefix = unique_prefix("bench-streams")
    stream = f"{prefix}{{ORDER_PLACED}}"
    started = [
        start_consumer("eventspype-work", url, prefix, 0) for _ in range(consumers)
    ]
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
    for peer in started:
        handled += int(peer.result()["count"])
    assert handled >= events, (handled, events)
    publisher.close()
    admin.close()
    return events / elapsed


def run(url: str, events: int) -> list[dict[str, Any]]:
    """Every scenario, raw and eventspype alternating round by round (the
    machine's load drifts: alternating shares it fairly)."""
    table = Comparison()

    def rounds(function: Any, *args: Any) -> dict[str, list[Any]]:
        return alternate(lambda impl: function(url, impl, *args), ROUNDS)

    table.add_best(f"burst, {events} events (best of {ROUNDS})", "events/s",
                   rounds(burst, events), ">= 1.3x")  # fmt: skip
    table.add_percentiles(f"latency {{}} at {PACED_RATE}/s (median of {ROUNDS})",
                          rounds(latency), ("<= 0.9x", ""))  # fmt: skip
    table.add("idle consumer CPU", "% of a core",
              idle(url, "raw"), idle(url, "eventspype"), "~0%")  # fmt: skip
    for consumers in (1, 2, 4):
        rate = group_rate(url, consumers, events)
        table.add(f"group of {consumers}, 0.2 ms I/O per event", "events/s",
                  None, rate, "")  # fmt: skip
    return table.rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print_comparison(rows, width=38)


def main() -> int:
    return command_line("streams", __doc__ or "", 20_000, run, print_table)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main())
