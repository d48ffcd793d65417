"""An instrumented test run sees TestBroker's deliveries (eventspype-otel,
eventspype-testing): one ``process`` span per subscriber call, the child of
the ``send`` span, with the emulated entry of ``durable=True`` on it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.otel import EventspypeInstrumentor
from eventspype.testing import TestBroker


@dataclass
class Refund:
    number: int


REFUNDED = EventPublication("refunded", Refund)
CHANNEL = str(REFUNDED.event_tag)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    EventspypeInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        EventspypeInstrumentor().uninstrument()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.context is not None
    assert parent.context is not None
    return (
        child.context.trace_id == parent.context.trace_id
        and child.parent is not None
        and child.parent.span_id == parent.context.span_id
    )


def test_each_subscriber_call_is_a_process_span_under_the_send_span(
    exporter: InMemorySpanExporter,
) -> None:
    def fail(event: Refund) -> None:
        raise ValueError("ledger closed")

    async def scenario() -> None:
        async def handle(event: Refund) -> None:
            await asyncio.sleep(0)

        broker = TestBroker(errors="collect")
        publisher = EventPublisher(REFUNDED, broker)
        good = FunctionalEventSubscriber(lambda e: None, with_event_info=False)
        bad = FunctionalEventSubscriber(fail, with_event_info=False)
        coroutine = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
        for subscriber in (good, bad, coroutine):
            publisher.add_subscriber(subscriber)
        publisher.publish(Refund(1))
        await broker.drain_async()

    with pytest.raises(ValueError, match="ledger closed"):
        asyncio.run(scenario())
    [send] = named(exporter, f"send {CHANNEL}")
    processes = named(exporter, f"process {CHANNEL}")
    assert len(processes) == 3
    for span in processes:
        assert span.kind is SpanKind.CONSUMER
        assert is_child(span, send)
        assert span.attributes is not None
        assert span.attributes["messaging.destination.name"] == CHANNEL
    statuses = [s.status.status_code for s in processes]
    assert statuses.count(StatusCode.ERROR) == 1


def test_the_durable_emulation_names_the_entry_group_and_delivery_count(
    exporter: InMemorySpanExporter,
) -> None:
    broker = TestBroker(durable=True, group="refunds", retry_delay=(1.0, 1.0))
    publisher = EventPublisher(REFUNDED, broker)
    calls: list[int] = []

    def once_failing(event: Refund) -> None:
        calls.append(event.number)
        if len(calls) == 1:
            raise RuntimeError("bank offline")

    subscriber = FunctionalEventSubscriber(once_failing, with_event_info=False)
    publisher.add_subscriber(subscriber)  # held weakly: keep it
    publisher.publish(Refund(7))
    broker.advance(5.0)  # the retry is due
    assert calls == [7, 7]
    first, second = named(exporter, f"process {CHANNEL}")
    [send] = named(exporter, f"send {CHANNEL}")
    for span, count in ((first, 1), (second, 2)):
        assert span.attributes is not None
        assert span.attributes["messaging.consumer.group.name"] == "refunds"
        assert span.attributes["eventspype.delivery_count"] == count
        assert re.fullmatch(
            r"[0-9]+-[0-9]+", str(span.attributes["messaging.message.id"])
        )
    assert first.attributes is not None
    assert second.attributes is not None
    assert (
        first.attributes["messaging.message.id"]
        == second.attributes["messaging.message.id"]
    )
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is StatusCode.UNSET
    assert is_child(first, send)
