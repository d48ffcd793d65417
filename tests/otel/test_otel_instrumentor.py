"""EventspypeInstrumentor in one process: spans, context, metrics, uninstrument."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pytest
from _otel_support import Telemetry, is_child
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublication,
    EventPublisher,
    EventSubscriber,
    FunctionalEventSubscriber,
    LocalBroker,
    MessageBroker,
)
from eventspype.hooks import installed_hooks, outgoing_headers
from eventspype.otel import EventspypeInstrumentor


@dataclass(frozen=True)
class Placed:
    order_id: int


PLACED = EventPublication("order_placed", Placed)


class Keep(EventSubscriber):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def call(self, arg: Any, current_event_tag: Any, current_event_caller: Any) -> None:
        self.events.append(arg)


class WireBroker(MessageBroker):
    """A remote-like broker: records the headers it would send, delivers nothing."""

    messaging_system = "wire"

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def publish(self, channel: str, event: Any, event_tag: Any, caller: Any) -> None:
        self.sent.append(dict(outgoing_headers() or {}))

    def subscribe(self, channel: str, subscriber: Any) -> None:
        pass

    def unsubscribe(self, channel: str, subscriber: Any) -> None:
        pass


@pytest.mark.parametrize("broker", [None, LocalBroker()], ids=["direct", "local"])
def test_an_in_process_publish_is_a_send_span_with_a_process_child(
    telemetry: Telemetry, broker: LocalBroker | None
) -> None:
    publisher = EventPublisher(PLACED, broker=broker)
    keep = Keep()
    publisher.add_subscriber(keep)
    publisher.publish(Placed(1))
    [send] = telemetry.named("send ORDER_PLACED")
    [process] = telemetry.named("process ORDER_PLACED")
    assert send.kind is SpanKind.PRODUCER
    assert process.kind is SpanKind.CONSUMER
    assert is_child(process, send)
    for span, operation in ((send, "send"), (process, "process")):
        assert span.attributes is not None
        assert span.attributes["messaging.system"] == "eventspype"
        assert span.attributes["messaging.destination.name"] == "ORDER_PLACED"
        assert span.attributes["messaging.operation.type"] == operation
        assert span.attributes["eventspype.event.class"].endswith("Placed")  # type: ignore[union-attr]
    assert keep.events == [Placed(1)]


def test_the_send_span_is_a_child_of_the_callers_span(telemetry: Telemetry) -> None:
    publisher = EventPublisher(PLACED)
    tracer = trace.get_tracer("test", tracer_provider=telemetry.tracer_provider)
    with tracer.start_as_current_span("http request") as request:
        publisher.publish(Placed(2))
    [send] = telemetry.named("send ORDER_PLACED")
    assert send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id


def test_trace_context_and_baggage_go_into_the_headers_of_a_remote_publish(
    telemetry: Telemetry,
) -> None:
    broker = WireBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        publisher.publish(Placed(3))
    finally:
        context.detach(token)
    [headers] = broker.sent
    [send] = telemetry.named("send ORDER_PLACED")
    assert send.context is not None
    assert send.attributes is not None
    assert send.attributes["messaging.system"] == "wire"
    trace_id, span_id = f"{send.context.trace_id:032x}", f"{send.context.span_id:016x}"
    assert headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
    assert headers["baggage"] == "tenant=acme"
    extracted = trace.get_current_span(propagate.extract(headers))
    assert extracted.get_span_context().span_id == send.context.span_id


def test_no_headers_for_in_process_delivery(telemetry: Telemetry) -> None:
    seen: list[Any] = []
    publisher = EventPublisher(PLACED)
    subscriber = FunctionalEventSubscriber(
        lambda e: seen.append(outgoing_headers()), False
    )
    publisher.add_subscriber(subscriber)
    publisher.publish(Placed(4))
    assert seen == [None]


def test_a_failing_subscriber_marks_its_span_and_not_the_others(
    telemetry: Telemetry,
) -> None:
    def fail(event: Placed) -> None:
        raise ValueError(f"cannot bill {event.order_id}")

    failing = FunctionalEventSubscriber(fail, with_event_info=False)
    keep = Keep()
    publisher = EventPublisher(PLACED)
    publisher.add_subscriber(failing)
    publisher.add_subscriber(keep)
    publisher.publish(Placed(5))
    bad, good = telemetry.named("process ORDER_PLACED")
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.attributes is not None
    assert bad.attributes["error.type"] == "ValueError"
    [exception] = [e for e in bad.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.message"] == "cannot bill 5"
    assert good.status.status_code is StatusCode.UNSET
    [send] = telemetry.named("send ORDER_PLACED")
    assert send.status.status_code is StatusCode.UNSET
    assert keep.events == [Placed(5)]


def test_coroutine_subscribers_get_a_child_span_when_they_run(
    telemetry: Telemetry,
) -> None:
    async def scenario() -> None:
        async def handle(event: Placed) -> None:
            await asyncio.sleep(0)
            if event.order_id == 7:
                raise KeyError("seven")

        subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
        publisher = EventPublisher(PLACED)
        publisher.add_subscriber(subscriber)
        publisher.publish(Placed(6))
        publisher.publish(Placed(7))
        await subscriber.drain()
        await publisher.publish_async(Placed(8))

    asyncio.run(scenario())
    sends = telemetry.named("send ORDER_PLACED")
    processes = telemetry.named("process ORDER_PLACED")
    assert len(sends) == len(processes) == 3
    # Each handler run is the child of its own publish, wherever it ran.
    by_trace = {s.context.trace_id: s for s in sends if s.context}
    for process in processes:
        assert process.context is not None
        assert is_child(process, by_trace[process.context.trace_id])
    assert [p.status.status_code for p in processes] == [
        StatusCode.UNSET,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]


def test_in_process_spans_can_be_switched_off_counts_stay(sdk: Any) -> None:
    instrumentor = EventspypeInstrumentor()
    instrumentor.instrument(
        tracer_provider=sdk.tracer_provider,
        meter_provider=sdk.meter_provider,
        in_process_spans=False,
    )
    try:
        publisher = EventPublisher(PLACED)
        keep = Keep()
        publisher.add_subscriber(keep)
        publisher.publish(Placed(9))
        remote = EventPublisher(PLACED, broker=WireBroker())
        remote.publish(Placed(10))
    finally:
        instrumentor.uninstrument()
    assert [s.name for s in sdk.spans.get_finished_spans()] == ["send ORDER_PLACED"]
    telemetry = Telemetry(instrumentor, sdk.spans, sdk.metrics, sdk.tracer_provider)
    sent = telemetry.points("messaging.client.sent.messages")
    assert sorted((a["messaging.system"], p.value) for a, p in sent) == [
        ("eventspype", 1),
        ("wire", 1),
    ]


def test_uninstrument_restores_everything(telemetry: Telemetry) -> None:
    broker = WireBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    publisher.publish(Placed(11))
    telemetry.instrumentor.uninstrument()
    assert installed_hooks() == ()
    telemetry.exporter.clear()
    publisher.publish(Placed(12))
    direct = EventPublisher(PLACED)
    keep = Keep()
    direct.add_subscriber(keep)
    direct.publish(Placed(13))
    assert telemetry.spans() == []
    assert broker.sent[1] == {}  # nothing injected any more
    assert keep.events == [Placed(13)]
    # And it can be instrumented again (the fixture uninstruments once more).
    telemetry.instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    direct.publish(Placed(14))
    assert [s.name for s in telemetry.spans()] == [
        "process ORDER_PLACED",  # ended first: the child
        "send ORDER_PLACED",
    ]


def test_sent_consumed_and_handler_duration_are_counted(
    telemetry: Telemetry,
) -> None:
    publisher = EventPublisher(PLACED)
    keep = Keep()

    def fail(event: Placed) -> None:
        raise ValueError

    failing = FunctionalEventSubscriber(fail, with_event_info=False)
    publisher.add_subscriber(keep)
    publisher.add_subscriber(failing)
    for order_id in range(3):
        publisher.publish(Placed(order_id))
    [(labels, sent)] = telemetry.points("messaging.client.sent.messages")
    assert sent.value == 3
    assert labels == {
        "messaging.system": "eventspype",
        "messaging.destination.name": "ORDER_PLACED",
        "messaging.operation.name": "send",
    }
    [(_, consumed)] = telemetry.points("messaging.client.consumed.messages")
    assert consumed.value == 6  # one per subscriber call
    durations = telemetry.points("messaging.process.duration")
    by_error = {labels.get("error.type"): point.count for labels, point in durations}
    assert by_error == {None: 3, "ValueError": 3}


@dataclass(frozen=True)
class _Backlog:
    pending: int
    lag: int | None


@dataclass(frozen=True)
class _Stats:
    dropped: dict[str, int] = field(default_factory=lambda: {"oversized": 2})
    headers_dropped: int = 1
    dead_lettered: int = 4
    reconnects: int = 5
    channels: dict[str, _Backlog] = field(
        default_factory=lambda: {"ORDER_PLACED": _Backlog(3, 7), "B": _Backlog(0, None)}
    )


class StatsBroker(WireBroker):
    def stats(self) -> _Stats:
        return _Stats()


class OtherStatsBroker(StatsBroker):
    """Another class: brokers of one class are summed into one series."""


def test_broker_metrics_read_the_brokers_stats(telemetry: Telemetry) -> None:
    watched = StatsBroker()
    telemetry.instrumentor.watch(watched)
    seen_by_publishing = OtherStatsBroker()
    EventPublisher(PLACED, broker=seen_by_publishing).publish(Placed(1))

    def values(metric: str) -> list[tuple[Any, ...]]:
        return sorted(
            (
                *(
                    a.get(k)
                    for k in ("eventspype.drop.reason", "messaging.destination.name")
                ),
                p.value,
            )
            for a, p in telemetry.points(metric)
        )

    assert values("eventspype.messages.dropped") == [("oversized", None, 2)] * 2
    assert values("eventspype.headers.dropped") == [(None, None, 1)] * 2
    assert values("eventspype.messages.dead_lettered") == [(None, None, 4)] * 2
    assert values("eventspype.reconnects") == [(None, None, 5)] * 2
    assert values("eventspype.stream.pending") == [
        (None, "B", 0),
        (None, "B", 0),
        (None, "ORDER_PLACED", 3),
        (None, "ORDER_PLACED", 3),
    ]
    # An unknown lag (None) is not reported as a number.
    assert values("eventspype.stream.lag") == [(None, "ORDER_PLACED", 7)] * 2


def test_found_by_opentelemetry_instrument() -> None:
    [entry] = [
        e
        for e in entry_points(group="opentelemetry_instrumentor")
        if e.name == "eventspype"
    ]
    assert entry.load() is EventspypeInstrumentor


def test_an_instrumentor_is_a_singleton_and_names_what_it_instruments() -> None:
    assert EventspypeInstrumentor() is EventspypeInstrumentor()
    assert EventspypeInstrumentor().instrumentation_dependencies() == (
        "eventspype-core >= 1.1",
    )
