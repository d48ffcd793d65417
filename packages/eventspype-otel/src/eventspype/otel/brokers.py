"""Metrics read from the brokers' own counters (their ``stats()``).

Brokers keep exact counters of what never reaches a hook: messages dropped
by reason, dead letters, reconnects, a stream group's lag and pending
entries. :class:`BrokerWatch` remembers the brokers it is told about (held
weakly: a broker that is garbage-collected is forgotten) and reads their
``stats()`` when the metric reader collects. Any broker with a ``stats()``
whose snapshot has some of these attributes is read, duck-typed, so this
package imports no transport:

* ``dropped``: mapping reason -> count; ``headers_dropped``: count;
* ``dead_lettered``: count; ``reconnects``: count;
* ``channels``: mapping channel -> object with ``lag`` (``None`` when the
  server cannot tell) and ``pending``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from eventspype.otel import attributes as a

__all__ = ["BrokerWatch"]

_logger = logging.getLogger(__name__)

#: One collection calls every callback: the snapshots are read once for all
#: of them (a stream broker's stats() asks Redis).
_REUSE_SECONDS = 0.5


class BrokerWatch:
    """The brokers whose ``stats()`` feed the observable instruments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._brokers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._ids: set[int] = set()
        self._cache: tuple[float, list[tuple[Any, dict[str, Any]]]] = (0.0, [])
        #: Cleared by ``uninstrument``: collecting then observes nothing.
        self.active = True

    def saw(self, broker: object) -> None:
        """Remember ``broker`` if it has a ``stats()`` (cheap when known)."""
        if id(broker) in self._ids or not callable(getattr(broker, "stats", None)):
            return
        with self._lock:
            try:
                self._brokers.add(broker)
            except TypeError:  # not weakly referenceable: not watched
                return
            self._ids.add(id(broker))
            weakref.finalize(broker, self._ids.discard, id(broker))

    def register(self, meter: Meter) -> None:
        """Create the observable instruments on ``meter``."""
        meter.create_observable_counter(
            a.DROPPED,
            [self._dropped],
            unit="{message}",
            description="Messages a broker dropped instead of delivering, by reason.",
        )
        meter.create_observable_counter(
            a.HEADERS_DROPPED,
            [self._counter("headers_dropped")],
            unit="{message}",
            description="Messages delivered without their headers (over the bounds).",
        )
        meter.create_observable_counter(
            a.DEAD_LETTERS,
            [self._counter("dead_lettered")],
            unit="{message}",
            description="Stream entries moved to a dead-letter stream.",
        )
        meter.create_observable_counter(
            a.RECONNECTS,
            [self._counter("reconnects")],
            unit="{reconnect}",
            description="Times a broker's receiving connection was re-established.",
        )
        meter.create_observable_gauge(
            a.STREAM_LAG,
            [self._backlog("lag")],
            unit="{message}",
            description="Stream entries the consumer group has not read yet.",
        )
        meter.create_observable_gauge(
            a.STREAM_PENDING,
            [self._backlog("pending")],
            unit="{message}",
            description="Stream entries delivered to the group, not yet acknowledged.",
        )

    # -- reading ----------------------------------------------------------

    def _snapshots(self) -> list[tuple[Any, dict[str, Any]]]:
        if not self.active:
            return []
        now = time.monotonic()
        with self._lock:
            taken, cached = self._cache
            if now - taken < _REUSE_SECONDS:
                return cached
            brokers = list(self._brokers)
        snapshots = list(self._read(brokers))
        with self._lock:
            self._cache = (now, snapshots)
        return snapshots

    def _read(self, brokers: list[Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
        for broker in brokers:
            try:
                stats = broker.stats()
            except Exception:  # closed, or its server unreachable right now
                _logger.debug("stats() of %r failed", broker, exc_info=True)
                continue
            system = str(getattr(broker, "messaging_system", a.IN_PROCESS))
            yield stats, {a.SYSTEM: system, "eventspype.broker": type(broker).__name__}

    def _dropped(self, options: CallbackOptions) -> Iterable[Observation]:
        for stats, labels in self._snapshots():
            for reason, count in dict(getattr(stats, "dropped", {})).items():
                yield Observation(count, {**labels, a.DROP_REASON: reason})

    def _counter(self, name: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for stats, labels in self._snapshots():
                value = getattr(stats, name, None)
                if isinstance(value, int):
                    yield Observation(value, labels)

        return observe

    def _backlog(self, name: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for stats, labels in self._snapshots():
                for channel, backlog in dict(getattr(stats, "channels", {})).items():
                    value = getattr(backlog, name, None)
                    if isinstance(value, int):
                        yield Observation(value, {**labels, a.DESTINATION: channel})

        return observe
