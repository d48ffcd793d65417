"""Reading what the in-memory exporters got (eventspype-otel tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from eventspype.otel import EventspypeInstrumentor


@dataclass
class Telemetry:
    instrumentor: EventspypeInstrumentor
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: Any

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """``(attributes, point)`` of every data point of ``metric``."""
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found += [(dict(p.attributes), p) for p in m.data.data_points]
        return found


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    """Whether ``child`` is in ``parent``'s trace and its direct child."""
    assert child.context is not None
    assert parent.context is not None
    return (
        child.context.trace_id == parent.context.trace_id
        and child.parent is not None
        and child.parent.span_id == parent.context.span_id
    )
