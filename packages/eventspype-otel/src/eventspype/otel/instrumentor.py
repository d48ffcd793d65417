"""``EventspypeInstrumentor``: OpenTelemetry traces and metrics for eventspype.

The shape of the opentelemetry-python-contrib instrumentations::

    from eventspype.otel import EventspypeInstrumentor

    EventspypeInstrumentor().instrument()      # global tracer and meter providers
    ...
    EventspypeInstrumentor().uninstrument()    # as before

``opentelemetry-instrument`` finds it through the ``opentelemetry_instrumentor``
entry point. What it records is described in :mod:`eventspype.otel.hook` and
:mod:`eventspype.otel.brokers`; the names are in
:mod:`eventspype.otel.attributes`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from eventspype.hooks import add_hook, remove_hook
from eventspype.otel import attributes as a
from eventspype.otel._version import __version__
from eventspype.otel.brokers import BrokerWatch
from eventspype.otel.hook import TelemetryHook

__all__ = ["EventspypeInstrumentor"]

_INSTRUMENTS = ("eventspype-core >= 1.1",)


class EventspypeInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces and metrics for every eventspype publish and delivery.

    A singleton (as every ``BaseInstrumentor``): ``EventspypeInstrumentor()``
    is the same object each time, so ``uninstrument()`` may be called on a
    new one. ``instrument()`` a second time, without ``uninstrument()``
    between, does nothing (OpenTelemetry logs a warning).

    ``instrument()`` keyword arguments:

    * ``tracer_provider``, ``meter_provider``: default to the global ones;
    * ``in_process_spans`` (default ``True``): spans for publishes delivered
      in-process (no broker or ``LocalBroker``); counters count them anyway;
    * ``brokers``: brokers whose ``stats()`` feed the broker metrics from the
      start. A broker is also watched from its first publish or delivery;
      name the ones that only consume (a stream reader) here, or later with
      :meth:`watch`.
    """

    _hook: TelemetryHook | None = None
    _watch: BrokerWatch | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """The distributions this instrumentation applies to."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(
            __name__,
            __version__,
            kwargs.get("tracer_provider"),
            schema_url=a.SCHEMA_URL,
        )
        meter = metrics.get_meter(
            __name__,
            __version__,
            kwargs.get("meter_provider"),
            schema_url=a.SCHEMA_URL,
        )
        watch = BrokerWatch()
        watch.register(meter)
        brokers: Iterable[object] = kwargs.get("brokers") or ()
        for broker in brokers:
            watch.saw(broker)
        self._watch = watch
        self._hook = TelemetryHook(
            tracer,
            meter.create_counter(
                a.SENT_MESSAGES,
                unit="{message}",
                description="Events published (one per publish call).",
            ),
            meter.create_counter(
                a.CONSUMED_MESSAGES,
                unit="{message}",
                description="Events handed to a subscriber (one per subscriber call).",
            ),
            meter.create_histogram(
                a.PROCESS_DURATION,
                unit="s",
                description="How long a subscriber took to handle an event.",
            ),
            watch,
            in_process_spans=bool(kwargs.get("in_process_spans", True)),
        )
        add_hook(self._hook)

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._hook is not None:
            remove_hook(self._hook)
            self._hook = None
        if self._watch is not None:
            # Instruments cannot be unregistered: they observe nothing now.
            self._watch.active = False
            self._watch = None

    def watch(self, broker: object) -> None:
        """Read ``broker.stats()`` for the broker metrics (while instrumented)."""
        if self._watch is not None:
            self._watch.saw(broker)
