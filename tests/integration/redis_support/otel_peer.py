"""A peer process for the cross-process tracing tests (eventspype-otel).

    python otel_peer.py pubsub|streams|astreams URL PREFIX COUNT

Instruments eventspype onto an SDK with an in-memory exporter, subscribes
(``astreams``: through ``AsyncRedisStreamBroker``) to
``ShipmentEvent`` on tag ``shipped`` with a synchronous subscriber and a
coroutine one (which raises for ``order_id == 1``), prints ``READY``, waits
for COUNT events in both, then prints every finished span as one JSON line
and exits (status 3 if the events do not all come within 30 s).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

import redis
import redis.asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from redis_peer_events import ShipmentEvent

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.broker.redis import (
    AsyncRedisStreamBroker,
    RedisBroker,
    RedisStreamBroker,
)
from eventspype.otel import EventspypeInstrumentor

GROUP = "billing"
#: The failed entry (order 1) is not retried before the peer exits, so each
#: event has exactly one span per subscriber, with a delivery count of 1.
RETRY_DELAY = (120.0, 120.0)


def as_json(span: ReadableSpan) -> str:
    assert span.context is not None
    return json.dumps(
        {
            "name": span.name,
            "kind": span.kind.name,
            "trace_id": f"{span.context.trace_id:032x}",
            "span_id": f"{span.context.span_id:016x}",
            "parent_span_id": None
            if span.parent is None
            else f"{span.parent.span_id:016x}",
            "status": span.status.status_code.name,
            "attributes": dict(span.attributes or {}),
        }
    )


async def main(mode: str, url: str, prefix: str, count: int) -> int:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    EventspypeInstrumentor().instrument(tracer_provider=provider)
    client: Any
    broker: Any
    if mode == "astreams":
        client = redis.asyncio.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=5
        )
        broker = AsyncRedisStreamBroker(
            client, channel_prefix=prefix, group=GROUP, retry_delay=RETRY_DELAY
        )
    else:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    if mode == "streams":
        broker = RedisStreamBroker(
            client, channel_prefix=prefix, group=GROUP, retry_delay=RETRY_DELAY
        )
    elif mode == "pubsub":
        broker = RedisBroker(client, channel_prefix=prefix)
    broker.register_event_class(ShipmentEvent)
    publisher = EventPublisher(
        EventPublication("shipped", ShipmentEvent), broker=broker
    )
    synced = threading.Event()
    seen: list[int] = []

    def record(event: ShipmentEvent) -> None:
        seen.append(event.order_id)
        if len(seen) >= count:
            synced.set()

    # Counted here: over Streams, the broker awaits the handler and takes its
    # error (the subscriber's own ``errors`` counts only errors nobody awaited).
    attempts: list[int] = []

    async def handle(event: ShipmentEvent) -> None:
        attempts.append(event.order_id)
        await asyncio.sleep(0)
        if event.order_id == 1:
            raise ValueError("cannot ship order 1")

    sync_subscriber = FunctionalEventSubscriber(record, with_event_info=False)
    async_subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
    publisher.add_subscriber(sync_subscriber)
    publisher.add_subscriber(async_subscriber)
    if mode == "astreams":
        await broker.wait_until_subscribed()
    print("READY", flush=True)
    status = 0
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, synced.wait, 30):
        status = 3

    async def all_handled() -> None:
        while len(attempts) < count:
            await asyncio.sleep(0.01)
        await async_subscriber.drain()

    if status == 0:
        try:
            await asyncio.wait_for(all_handled(), 30)
        except asyncio.TimeoutError:
            status = 3
    if mode == "astreams":
        await broker.aclose()
        await client.aclose()
    else:
        broker.close()
        client.close()
    for span in exporter.get_finished_spans():
        print(as_json(span), flush=True)
    return status


if __name__ == "__main__":
    mode, url, prefix, count = sys.argv[1:5]
    sys.exit(asyncio.run(main(mode, url, prefix, int(count))))
