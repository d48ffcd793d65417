"""The metrics scraped by Prometheus, through the OpenTelemetry Prometheus exporter."""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import dataclass

import pytest

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.otel import EventspypeInstrumentor

prometheus_client = pytest.importorskip("prometheus_client")
exporter = pytest.importorskip("opentelemetry.exporter.prometheus")


@dataclass(frozen=True)
class Paid:
    order_id: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_scrape_shows_sent_consumed_and_durations_per_channel() -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    reader = exporter.PrometheusMetricReader()
    provider = MeterProvider([reader])
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1")
    instrumentor = EventspypeInstrumentor()
    instrumentor.instrument(meter_provider=provider)
    try:
        publisher = EventPublisher(EventPublication("order_paid", Paid))
        got: list[Paid] = []
        subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
        publisher.add_subscriber(subscriber)
        for order_id in range(3):
            publisher.publish(Paid(order_id))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as page:
            text = page.read().decode()
    finally:
        instrumentor.uninstrument()
        server.shutdown()
        thread.join()
        provider.shutdown()
    assert got == [Paid(0), Paid(1), Paid(2)]
    lines = text.splitlines()
    sent = [line for line in lines if line.startswith("messaging_client_sent_messages")]
    assert len(sent) == 1
    assert 'messaging_destination_name="ORDER_PAID"' in sent[0]
    assert 'messaging_system="eventspype"' in sent[0]
    assert sent[0].endswith(" 3.0")
    consumed = [
        line for line in lines if line.startswith("messaging_client_consumed_messages")
    ]
    assert len(consumed) == 1
    assert consumed[0].endswith(" 3.0")
    counts = [
        line
        for line in lines
        if line.startswith("messaging_process_duration_seconds_count")
    ]
    assert len(counts) == 1
    assert counts[0].endswith(" 3.0")
