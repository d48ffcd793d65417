"""Shared set-up of the eventspype-otel tests: an SDK with in-memory exporters.

Needs eventspype-otel and its test extra (the OpenTelemetry SDK) only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _otel_support import Telemetry  # noqa: E402

from eventspype.hooks import installed_hooks  # noqa: E402
from eventspype.otel import EventspypeInstrumentor  # noqa: E402


@dataclass
class _Parts:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider


@pytest.fixture
def sdk() -> _Parts:
    """A tracer provider and a meter provider that keep everything in memory."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    return _Parts(spans, metrics, tracer_provider, MeterProvider([metrics]))


@pytest.fixture
def telemetry(sdk: _Parts) -> Iterator[Telemetry]:
    """eventspype instrumented onto ``sdk``; uninstrumented after the test."""
    instrumentor = EventspypeInstrumentor()
    instrumentor.instrument(
        tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
    )
    try:
        yield Telemetry(instrumentor, sdk.spans, sdk.metrics, sdk.tracer_provider)
    finally:
        instrumentor.uninstrument()
    assert installed_hooks() == ()
