"""RedisBroker against raw redis-py, end to end, on a loopback Redis server.

    python benchmarks/bench_redis.py [--redis-url URL] [--events 50000] [--json PATH]

In each scenario a subscriber runs in a subprocess and this process publishes,
once through raw redis-py (pre-encoded bytes, ``client.publish``, a plain
``PubSub.get_message`` loop) and once through eventspype (``EventPublisher``
with a ``RedisBroker``, a subscriber on the other side's ``RedisBroker``):

- throughput: ``--events`` events, first publish to last receipt (best of 3);
- latency: events paced at 2,000/s for 3 s, p50/p99 publish-to-receipt
  (median of 3 runs);
- batched publish: 50k events sent 1,000 at a time (``with broker.batch()``
  against a redis-py pipeline), publisher side, best of 3;
- idle CPU of a subscriber doing nothing for 5 s;
- packing one PUBLISH and one XADD: redis-py's ``Connection.pack_command``
  against the brokers' hand-written packer, ``_io.resp`` (which is kept only
  while it wins).

Only loopback traffic, to the server at ``--redis-url`` (default
``EVENTSPYPE_TEST_REDIS_URL`` or redis://127.0.0.1:6379/0), on channels with a
unique prefix. Exits 0 with a message when no server answers. Runs in about a
minute and a half. The numbers are only as steady as the machine is idle:
load from other processes shows up mostly in the p99 latencies.
"""

from __future__ import annotations

import json
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
from _timing import (
    Comparison,
    alternate,
    best_ns,
    paced,
    percentiles_ms,
    print_comparison,
)

from eventspype import EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker

PACED_RATE = 2000
PACED_SECONDS = 3.0
BATCH_SIZE = 1000
BATCH_EVENTS = 50_000
ROUNDS = 3


# --- the subscriber subprocess ----------------------------------------------


def child(mode: str, url: str, prefix: str, count: int) -> None:
    """Subscribe, print READY, then print one JSON result line and exit.

    ``mode`` is ``<impl>-<scenario>``: impl ``raw`` or ``eventspype``; scenario
    ``count`` (when the last of ``count`` events arrived), ``latency`` (the
    latency of each of ``count`` events) or ``idle`` (CPU use while idle).
    """
    impl, scenario = mode.split("-")
    client = redis.Redis.from_url(url)
    finished = threading.Event()
    on_event = Receipts(scenario, count, finished.set)

    if impl == "raw":
        pubsub = client.pubsub()
        pubsub.subscribe(f"{prefix}ORDER_PLACED")
        while (pubsub.get_message(timeout=1.0) or {}).get("type") != "subscribe":
            pass
        print("READY", flush=True)
        if scenario == "idle":
            cpu = idle_cpu(lambda: pubsub.get_message(timeout=1.0))
            print(json.dumps({"cpu": cpu}))
            return
        while not finished.is_set():
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            on_event(raw_sent_at(message["data"]) if scenario == "latency" else 0)
    else:
        broker = RedisBroker(client, channel_prefix=prefix)
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
        finished.wait(300)
        broker.close()
    print(on_event.report())


# --- the parent ---------------------------------------------------------------


def start_subscriber(mode: str, url: str, prefix: str, count: int) -> Peer:
    """A subscriber subprocess (see :func:`child`)."""
    return Peer(__file__, mode, url, prefix, count)


def publishers(url: str, prefix: str) -> tuple[Any, Any, Any]:
    """(raw publish function, eventspype publisher, broker) on fresh clients."""
    raw_client = redis.Redis.from_url(url)
    channel = f"{prefix}ORDER_PLACED"
    broker = RedisBroker(redis.Redis.from_url(url), channel_prefix=prefix)
    publisher = EventPublisher(ORDER_PLACED, broker=broker)
    return (lambda payload: raw_client.publish(channel, payload)), publisher, broker


def throughput(url: str, impl: str, events: int) -> float:
    prefix = unique_prefix()
    raw_publish, publisher, broker = publishers(url, prefix)
    items = [OrderPlaced(i, 49.99, 0.0) for i in range(events)]
    payloads = [raw_payload(item) for item in items] if impl == "raw" else []
    peer = start_subscriber(f"{impl}-count", url, prefix, events)
    start = time.time()
    if impl == "raw":
        for payload in payloads:
            raw_publish(payload)
    else:
        for item in items:
            publisher.publish(item)
    done = float(peer.result()["done"])
    broker.close()
    return events / (done - start)


def latency(url: str, impl: str) -> tuple[float, float]:
    prefix = unique_prefix()
    raw_publish, publisher, broker = publishers(url, prefix)
    count = int(PACED_RATE * PACED_SECONDS)
    peer = start_subscriber(f"{impl}-latency", url, prefix, count)
    for i in paced(count, PACED_RATE):
        event = OrderPlaced(i, 49.99, time.time())
        if impl == "raw":
            raw_publish(raw_payload(event))
        else:
            publisher.publish(event)
    latencies = peer.result()["latencies"]
    broker.close()
    return percentiles_ms(latencies)


def batched(url: str, impl: str) -> float:
    prefix = unique_prefix()
    client = redis.Redis.from_url(url)
    channel = f"{prefix}ORDER_PLACED"
    broker = RedisBroker(redis.Redis.from_url(url), channel_prefix=prefix)
    publisher = EventPublisher(ORDER_PLACED, broker=broker)
    items = [OrderPlaced(i, 49.99, 0.0) for i in range(BATCH_SIZE)]
    payloads = [raw_payload(item) for item in items]
    start = time.perf_counter()
    for _ in range(BATCH_EVENTS // BATCH_SIZE):
        if impl == "raw":
            pipeline = client.pipeline(transaction=False)
            for payload in payloads:
                pipeline.publish(channel, payload)
            pipeline.execute()
        else:
            with broker.batch():
                for item in items:
                    publisher.publish(item)
    elapsed = time.perf_counter() - start
    broker.close()
    client.close()
    return BATCH_EVENTS / elapsed


def idle(url: str, impl: str) -> float:
    prefix = unique_prefix()
    return float(start_subscriber(f"{impl}-idle", url, prefix, 0).result()["cpu"]) * 100


def run(url: str, events: int) -> list[dict[str, Any]]:
    """Every scenario, raw and eventspype alternating round by round (the
    machine's load drifts: alternating shares it fairly)."""
    table = Comparison()

    def rounds(function: Any, *args: Any) -> dict[str, list[Any]]:
        return alternate(lambda impl: function(url, impl, *args), ROUNDS)

    table.add_best(f"throughput, {events} events", "events/s",
                   rounds(throughput, events), ">= 1.0x")  # fmt: skip
    table.add_percentiles(f"latency {{}} at {PACED_RATE}/s (median)",
                          rounds(latency), ("", "<= 1.5x"))  # fmt: skip
    table.add_best(f"batched publish, {BATCH_SIZE}/batch", "events/s",
                   rounds(batched), ">= 0.9x")  # fmt: skip
    table.add("idle subscriber CPU", "% of a core",
              idle(url, "raw"), idle(url, "eventspype"), "~0%")  # fmt: skip
    for command, (raw_ns, ours_ns) in pack_timings().items():
        table.add(f"pack one {command} (speed)", "M/s", 1e3 / raw_ns,
                  1e3 / ours_ns, "keep ours if > 1x")  # fmt: skip
    return table.rows


def pack_timings() -> dict[str, tuple[float, float]]:
    """ns to pack one PUBLISH and one XADD: ``Connection.pack_command``, ours.

    The justification of the hand-written packer in ``_io.resp`` (issue 8:
    keep a hand-written piece only where a benchmark shows the gain).
    """
    from eventspype.broker.redis._io.resp import CommandPacker, pack_publish
    from eventspype.broker.redis._wire.envelope import encode

    connection = redis.Connection()
    key = b"eventspype:ORDER_PLACED"
    message = encode("ORDER_PLACED", OrderPlaced, b'{"order_id":1,"amount":4.5}')
    xadd = ("XADD", key, "MAXLEN", "~", 100_000, "*", "event", message)
    packer = CommandPacker((b"XADD",), (b"MAXLEN", b"~", b"100000", b"*", b"event"))
    commands: dict[str, tuple[tuple[Any, ...], Any]] = {
        "PUBLISH": (("PUBLISH", key, message), lambda: pack_publish(key, message)),
        "XADD": (xadd, lambda: packer.pack(key, message)),
    }
    timings = {}
    for name, (arguments, ours) in commands.items():
        assert b"".join(connection.pack_command(*arguments)) == ours()
        raw_ns = best_ns(lambda a=arguments: connection.pack_command(*a), 20000)
        timings[name] = (raw_ns, best_ns(ours, 20000))
    return timings


def main() -> int:
    return command_line("redis", __doc__ or "", 50_000, run, print_comparison)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main())
