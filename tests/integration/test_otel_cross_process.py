"""One trace across two processes over the real Redis (eventspype-otel, issue 18).

This process publishes under a span of its own; a peer process
(``redis_support/otel_peer.py``) subscribes with a synchronous and a coroutine
subscriber. The peer's ``process`` spans must be in this process's trace, each
the child of the ``send`` span of its event, for Pub/Sub and Streams alike
(the peer reading Streams through ``RedisStreamBroker`` or
``AsyncRedisStreamBroker``). Over Streams, each ``process`` span also names the
stream entry (``messaging.message.id``), the consumer group and the delivery
count, the entry ids being those the publisher's XADDs returned.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from redis_helpers import (
    HERE,
    finish,
    numsub,
    reap,
    shared_redis_url,
    unique_prefix,
    wait_ready,
    wait_until,
)
from redis_peer_events import ShipmentEvent, make_event

from eventspype import EventPublication, EventPublisher
from eventspype.broker.redis import RedisBroker, RedisStreamBroker
from eventspype.otel import EventspypeInstrumentor

COUNT = 3
#: The consumer group of the peer (``otel_peer.GROUP``).
GROUP = "billing"
STREAM_ENTRY_ID = re.compile(r"[0-9]+-[0-9]+")


@pytest.fixture
def traced() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    EventspypeInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter, provider
    finally:
        EventspypeInstrumentor().uninstrument()


def start_peer(mode: str, url: str, prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "otel_peer.py"), mode, url, prefix, str(COUNT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )


@pytest.mark.parametrize("mode", ["pubsub", "streams", "astreams"])
def test_the_consumer_span_is_the_child_of_the_producer_span_in_another_process(
    traced: tuple[InMemorySpanExporter, TracerProvider], mode: str
) -> None:
    exporter, provider = traced
    url, prefix = shared_redis_url(), unique_prefix()
    process = start_peer(mode, url, prefix)
    try:
        wait_ready(process)
        if mode == "pubsub":
            admin = redis.Redis.from_url(url)
            try:
                wait_until(lambda: numsub(admin, f"{prefix}SHIPPED") >= 1)
            finally:
                admin.close()
        client = redis.Redis.from_url(url)
        broker: Any = (
            RedisStreamBroker(client, channel_prefix=prefix)
            if mode != "pubsub"
            else RedisBroker(client, channel_prefix=prefix)
        )
        with broker:
            publisher = EventPublisher(
                EventPublication("shipped", ShipmentEvent), broker=broker
            )
            tracer = provider.get_tracer("test")
            with tracer.start_as_current_span("POST /shipments"):
                for index in range(COUNT):
                    publisher.publish(make_event(index))
        entry_ids = (
            set()
            if mode == "pubsub"
            else {
                entry_id.decode()
                for entry_id, _ in client.xrange(broker.stream_key("SHIPPED"))
            }
        )
        client.close()
        out = finish(process)
    finally:
        reap(process)
    sends = {
        f"{s.context.span_id:016x}": s
        for s in exporter.get_finished_spans()
        if s.name == "send SHIPPED" and s.context is not None
    }
    [request] = [
        s for s in exporter.get_finished_spans() if s.name == "POST /shipments"
    ]
    assert request.context is not None
    assert len(sends) == COUNT
    for send in sends.values():
        assert send.attributes is not None
        assert send.attributes["messaging.system"] == "redis"
        assert send.attributes["messaging.destination.name"] == "SHIPPED"
    spans = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    processes = [s for s in spans if s["name"] == "process SHIPPED"]
    # Two subscribers in the peer: one span each per event.
    assert len(processes) == 2 * COUNT
    trace_id = f"{request.context.trace_id:032x}"
    for span in processes:
        assert span["kind"] == "CONSUMER"
        assert span["trace_id"] == trace_id
        assert span["parent_span_id"] in sends
        attributes = span["attributes"]
        assert attributes["messaging.system"] == "redis"
        assert attributes["messaging.destination.name"] == "SHIPPED"
        assert attributes["messaging.operation.type"] == "process"
        if mode == "pubsub":
            assert attributes["eventspype.delivery_count"] == 1
            assert "messaging.message.id" not in attributes
            assert "messaging.consumer.group.name" not in attributes
        else:
            # Each event is delivered once: the peer's retry delay outlasts it.
            assert attributes["eventspype.delivery_count"] == 1
            assert STREAM_ENTRY_ID.fullmatch(attributes["messaging.message.id"])
            assert attributes["messaging.message.id"] in entry_ids
            assert attributes["messaging.consumer.group.name"] == GROUP
    if mode != "pubsub":
        # Both subscribers of one event name the same entry; one entry per event.
        assert len(entry_ids) == COUNT
        assert {s["attributes"]["messaging.message.id"] for s in processes} == (
            entry_ids
        )
    # Each event's two process spans hang under that event's own send span.
    by_parent: dict[str, int] = {}
    for span in processes:
        by_parent[span["parent_span_id"]] = by_parent.get(span["parent_span_id"], 0) + 1
    assert set(by_parent.values()) == {2}
    # The coroutine subscriber raised for order 1: exactly one error span.
    assert [s["status"] for s in processes].count("ERROR") == 1
