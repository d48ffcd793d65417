"""The eventspype hook that makes spans and counts events.

One :class:`TelemetryHook` is installed by ``EventspypeInstrumentor.instrument``
(see :mod:`eventspype.hooks` for when it runs):

* **publish**: a PRODUCER span ``send <channel>``; for a broker that carries
  headers (Redis), the span's context is injected into the outgoing headers
  with the global propagator (W3C ``traceparent``/``tracestate`` and
  ``baggage`` by default);
* **delivery**: a CONSUMER span ``process <channel>`` per subscriber call,
  the child of the producer span: extracted from the headers of a remote
  delivery, the current span for an in-process one (a coroutine subscriber's
  handler runs later on its loop: the context it was handed the event in is
  kept for it). A subscriber that raises gets the exception recorded on its
  span, status ``ERROR`` and ``error.type``.

In-process spans (``messaging.system`` = ``eventspype``) can be switched off
(``in_process_spans=False``): the counters still count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from eventspype.hooks import DeliveryInfo, Hook, PublishInfo
from eventspype.otel import attributes as a

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.metrics import Counter, Histogram
    from opentelemetry.util.types import AttributeValue

    from eventspype.otel.brokers import BrokerWatch

__all__ = ["TelemetryHook"]


class TelemetryHook(Hook):
    """Spans and per-event metrics for every publish and delivery.

    Args:
        tracer: Where spans go.
        sent: The ``messaging.client.sent.messages`` counter.
        consumed: The ``messaging.client.consumed.messages`` counter.
        duration: The ``messaging.process.duration`` histogram (seconds).
        brokers: Told about every broker seen, for the broker metrics.
        in_process_spans: Whether in-process publishes get spans.
    """

    def __init__(
        self,
        tracer: trace.Tracer,
        sent: Counter,
        consumed: Counter,
        duration: Histogram,
        brokers: BrokerWatch,
        *,
        in_process_spans: bool = True,
    ) -> None:
        self._tracer = tracer
        self._sent = sent
        self._consumed = consumed
        self._duration = duration
        self._brokers = brokers
        self._in_process_spans = in_process_spans

    # -- publish ----------------------------------------------------------

    def publish_started(self, info: PublishInfo) -> object:
        remote = info.system != a.IN_PROCESS
        if remote:
            self._brokers.saw(info.broker)
        elif not self._in_process_spans:
            return None
        span = self._tracer.start_span(
            f"send {info.channel}",
            kind=SpanKind.PRODUCER,
            attributes={
                a.SYSTEM: info.system,
                a.DESTINATION: info.channel,
                a.OPERATION_TYPE: "send",
                a.OPERATION_NAME: "send",
                a.EVENT_CLASS: _class_name(info.event),
            },
        )
        current = trace.set_span_in_context(span)
        if remote:
            propagate.inject(info.headers, context=current)
        return span, otel_context.attach(current)

    def publish_finished(
        self,
        info: PublishInfo,
        state: object,
        error: BaseException | None,
        duration_ns: int,
    ) -> None:
        labels: dict[str, AttributeValue] = {
            a.SYSTEM: info.system,
            a.DESTINATION: info.channel,
            a.OPERATION_NAME: "send",
        }
        if error is not None:
            labels[a.ERROR_TYPE] = type(error).__qualname__
        self._sent.add(1, labels)
        _end(state, error)

    # -- delivery ---------------------------------------------------------

    def delivery_started(self, info: DeliveryInfo) -> object:
        delivery = info.delivery
        if delivery is None:
            if not self._in_process_spans:
                return None
            # In-process: the publisher's span, where the event was handed over.
            parent = None if info.context is None else info.context.run(_current)
            attributes: dict[str, AttributeValue] = {}
        else:
            self._brokers.saw(info.caller)
            parent = propagate.extract(delivery.headers) if delivery.headers else None
            if parent is None and info.context is not None:
                parent = info.context.run(_current)
            attributes = {a.DELIVERY_COUNT: delivery.delivery_count}
            if delivery.message_id is not None:
                attributes[a.MESSAGE_ID] = delivery.message_id
            if delivery.group is not None:
                attributes[a.CONSUMER_GROUP] = delivery.group
        attributes[a.SYSTEM] = info.system
        attributes[a.DESTINATION] = info.channel
        attributes[a.OPERATION_TYPE] = "process"
        attributes[a.OPERATION_NAME] = "process"
        attributes[a.EVENT_CLASS] = _class_name(info.event)
        span = self._tracer.start_span(
            f"process {info.channel}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        current = trace.set_span_in_context(span, parent)
        return span, otel_context.attach(current)

    def delivery_finished(
        self,
        info: DeliveryInfo,
        state: object,
        error: BaseException | None,
        duration_ns: int,
    ) -> None:
        labels: dict[str, AttributeValue] = {
            a.SYSTEM: info.system,
            a.DESTINATION: info.channel,
            a.OPERATION_NAME: "process",
        }
        if info.delivery is not None and info.delivery.group is not None:
            labels[a.CONSUMER_GROUP] = info.delivery.group
        self._consumed.add(1, labels)
        if error is not None:
            labels[a.ERROR_TYPE] = type(error).__qualname__
        self._duration.record(duration_ns / 1e9, labels)
        _end(state, error)


def _current() -> otel_context.Context:
    return otel_context.get_current()


def _class_name(event: Any) -> str:
    kind = type(event)
    return f"{kind.__module__}.{kind.__qualname__}"


def _end(state: object, error: BaseException | None) -> None:
    """Detach the span's context and end it, recording ``error`` if any."""
    if state is None:
        return
    span, token = cast("tuple[trace.Span, Token[otel_context.Context]]", state)
    otel_context.detach(token)
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.set_attribute(a.ERROR_TYPE, type(error).__qualname__)
    span.end()
