"""The cost of tracing: ns per event with and without eventspype-otel.

    python benchmarks/bench_otel.py [--redis-url URL] [--json PATH]

Rows, each measured without instrumentation, with a hook that does nothing
(the cost of the hooks themselves), with ``EventspypeInstrumentor`` and
``in_process_spans=False`` (counters only for in-process events), and fully
instrumented onto the OpenTelemetry SDK (a ``TracerProvider`` whose spans go
to a processor that drops them, a ``MeterProvider`` with a reader):

- ``in-process``: ``publish()`` to one subscriber, no broker;
- ``redis receive``: one Pub/Sub message through the receiving path of the
  Redis brokers (decode, checks, delivery to one subscriber; no socket), the
  envelope carrying a ``traceparent`` when instrumented;
- ``redis publish``: ``publish()`` through a ``RedisBroker`` to the server at
  ``--redis-url`` (skipped when none answers), a round trip per event.

Best of 7; the numbers are only as steady as the machine is idle.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from _peer import unique_prefix
from _timing import best_ns, write_results
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from eventspype import EventPublication, EventPublisher, EventSubscriber
from eventspype.broker.redis import RedisBroker
from eventspype.broker.redis._wire.envelope import encode
from eventspype.broker.redis._wire.fanout import Fanout
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.receive import receive
from eventspype.broker.redis._wire.registry import ClassRegistry
from eventspype.broker.redis._wire.stats import Counters
from eventspype.hooks import Hook, add_hook, outgoing_headers, remove_hook
from eventspype.otel import EventspypeInstrumentor
from eventspype.serializers import JsonEventSerializer


@dataclass
class OrderPlaced:
    order_id: int
    amount: float


PLACED = EventPublication("order_placed", OrderPlaced)
EVENT = OrderPlaced(1, 49.99)


class Counting(EventSubscriber):
    def __init__(self) -> None:
        self.received = 0

    def call(self, arg: Any, current_event_tag: Any, current_event_caller: Any) -> None:
        self.received += 1


class Dropping(SpanProcessor):
    """Spans are made, ended and dropped: the cost of tracing, not of export."""


@contextmanager
def mode(name: str) -> Iterator[None]:
    if name == "none":
        yield
        return
    if name == "no-op hook":
        hook = Hook()
        add_hook(hook)
        try:
            yield
        finally:
            remove_hook(hook)
        return
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(Dropping())
    meter_provider = MeterProvider([InMemoryMetricReader()])
    EventspypeInstrumentor().instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        in_process_spans=name != "otel, no in-process spans",
    )
    try:
        yield
    finally:
        EventspypeInstrumentor().uninstrument()


MODES = ["none", "no-op hook", "otel, no in-process spans", "otel"]


def in_process() -> Callable[[], object]:
    publisher = EventPublisher(PLACED)
    subscriber = Counting()
    publisher.add_subscriber(subscriber)
    in_process.keep = subscriber  # type: ignore[attr-defined]
    return lambda: publisher.publish(EVENT)


def redis_receive() -> Callable[[], object]:
    registry = ClassRegistry()
    registry.register(OrderPlaced)
    inbound = Inbound(JsonEventSerializer(), registry, max_bytes=1 << 20)
    fanout, counters = Fanout(), Counters()
    subscriber = Counting()
    fanout.add("ORDER_PLACED", subscriber, PLACED)
    redis_receive.keep = subscriber  # type: ignore[attr-defined]
    # What the publishing side sends in this mode (a traceparent when traced).
    sent: list[bytes] = []

    class Capture(RedisBroker):
        def __init__(self) -> None:
            pass

        def publish(self, channel: str, event: Any, tag: Any, caller: Any) -> None:
            event_tag = tag
            headers = outgoing_headers()
            payload = JsonEventSerializer().serialize(event)
            sent.append(encode(event_tag, type(event), payload, headers))

    EventPublisher(PLACED, broker=Capture()).publish(EVENT)
    data = sent[0]
    return lambda: receive(
        inbound, fanout, counters, "ORDER_PLACED", data, None, "ORDER_PLACED"
    )


def redis_publish(url: str) -> Callable[[], object] | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return None
    broker = RedisBroker(client, channel_prefix=unique_prefix("bench-otel"))
    publisher = EventPublisher(PLACED, broker=broker)
    redis_publish.keep = broker  # type: ignore[attr-defined]
    return lambda: publisher.publish(EVENT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("EVENTSPYPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument("--json", help="where to write results")
    args = parser.parse_args()
    scenarios: list[tuple[str, Callable[[], Callable[[], object] | None], int]] = [
        ("in-process", in_process, 100_000),
        ("redis receive", redis_receive, 20_000),
        ("redis publish", lambda: redis_publish(args.redis_url), 2_000),
    ]
    rows: list[dict[str, Any]] = []
    for scenario, make, number in scenarios:
        row: dict[str, Any] = {"scenario": scenario}
        for name in MODES:
            with mode(name):
                run = make()
                # Spans cost microseconds: fewer rounds, the same precision.
                rounds = number if name in ("none", "no-op hook") else number // 10
                row[name] = None if run is None else round(best_ns(run, rounds), 1)
        rows.append(row)
    print(f"{'ns per event':>14} " + " ".join(f"{m:>26}" for m in MODES))
    for row in rows:
        cells = [
            "skipped"
            if row[m] is None
            else f"{row[m]:.0f} ({row[m] / row['none']:.2f}x)"
            for m in MODES
        ]
        print(f"{row['scenario']:>14} " + " ".join(f"{c:>26}" for c in cells))
    print("results:", write_results("otel", rows, args.json))


if __name__ == "__main__":
    main()
