"""Counters of a RedisBroker, the snapshot users read, and drop logging."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

from eventspype._internal.fork import register_for_fork
from eventspype._internal.ratelimit import RateLimitedWarning
from eventspype.broker.redis._wire.printable import Printable

__all__ = [
    "DROP_REASONS",
    "ConnectionState",
    "CounterName",
    "Counters",
    "DropReason",
    "RedisBrokerStats",
]

_logger = logging.getLogger("eventspype.broker.redis")

#: At most one drop warning per reason per this many seconds: a hostile or
#: broken publisher must not flood the log (the counters stay exact).
_DROP_LOG_INTERVAL = 1.0

#: Why the listener dropped a message instead of delivering it.
DropReason = Literal[
    "oversized",
    "invalid_json",
    "invalid_envelope",
    "too_deep",
    "tag_mismatch",
    "unregistered_class",
    "invalid_payload",
    "class_mismatch",
]

#: Every drop reason, in the order a message is checked.
DROP_REASONS: Final[tuple[DropReason, ...]] = get_args(DropReason)

#: The counts :meth:`Counters.add` bumps (``delivered``, ``published`` and
#: drops have their own methods).
CounterName = Literal[
    "reconnects", "listener_errors", "listener_restarts", "subscribe_refusals"
]


@dataclass(frozen=True)
class RedisBrokerStats:
    """A consistent-enough snapshot of a broker's counters (see ``RedisBroker.stats``).

    Counts start at zero when the broker is created (or, in a forked child,
    at the fork) and only grow.

    Attributes:
        published: Events Redis acknowledged (a batch counts once it is sent).
        publish_errors: ``publish()`` calls (or batches) that raised because
            Redis could not be reached or refused the command.
        delivered: Messages decoded and handed to this process's subscribers.
        dropped: Messages dropped by the listener, by reason (every reason is
            present, possibly with 0).
        subscriber_errors: Subscriber calls that raised while handling a
            delivered event (each is logged and isolated).
        headers_dropped: Messages delivered without their headers, because
            the headers broke the envelope's bounds (count, size, strings).
        reconnects: Times the listener re-established its Pub/Sub connection
            and re-subscribed after losing it.
        listener_errors: Exceptions of any kind (a bug of ours, a
            ``SystemExit`` raised while handling a message) that the listener
            caught, logged with their traceback, and survived.
        listener_restarts: Times the listener started over after such an
            exception (in its thread, or with a new thread if it had died).
        subscribe_refusals: SUBSCRIBE commands Redis refused (an ACL that
            forbids the channel); each concerns that channel only.
        connected: Whether the listener holds a Pub/Sub connection on which
            Redis has answered (``False`` before the first ``subscribe()``).
        connected_since: Since when (``time.time()``) it has been connected,
            or, when not connected, since when it has not been.
        last_connection_error: The last error that broke or prevented the
            Pub/Sub connection (``"ConnectionError: ..."``), ``None`` if none.
        subscribed: Channels Redis has confirmed on the live connection now.
        refused_channels: Channels (names on the server) whose last SUBSCRIBE
            Redis refused, with its reason; they are not subscribed.
    """

    published: int = 0
    publish_errors: int = 0
    delivered: int = 0
    dropped: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(DROP_REASONS, 0))
    )
    subscriber_errors: int = 0
    headers_dropped: int = 0
    reconnects: int = 0
    listener_errors: int = 0
    listener_restarts: int = 0
    subscribe_refusals: int = 0
    connected: bool = False
    connected_since: float | None = None
    last_connection_error: str | None = None
    subscribed: int = 0
    refused_channels: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def dropped_total(self) -> int:
        """All dropped messages, whatever the reason."""
        return sum(self.dropped.values())


class Counters:
    """The live counters behind :class:`RedisBrokerStats`.

    Read them as attributes; change them only through the methods. Several
    threads write them (every thread that publishes; one listener or reader
    thread per cluster node), and ``+=`` on an attribute is not atomic across
    threads: an update could be lost. Every method takes the counters' lock,
    about 0.1 us uncontended (``benchmarks/bench_redis.py`` shows no change
    beyond its noise).
    """

    __slots__ = (
        "__weakref__",  # for register_for_fork
        "_drop_logs",
        "_headers_log",
        "_lock",
        "delivered",
        "dropped",
        "headers_dropped",
        "listener_errors",
        "listener_restarts",
        "publish_errors",
        "published",
        "reconnects",
        "subscribe_refusals",
    )

    def __init__(self) -> None:
        self._reset()
        register_for_fork(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self.published = 0
        self.publish_errors = 0
        self.delivered = 0
        self.reconnects = 0
        self.listener_errors = 0
        self.listener_restarts = 0
        self.subscribe_refusals = 0
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.headers_dropped = 0
        # One per reason: a flood of one reason never hides another.
        self._drop_logs = {
            reason: RateLimitedWarning(_logger, _DROP_LOG_INTERVAL)
            for reason in DROP_REASONS
        }
        self._headers_log = RateLimitedWarning(_logger, _DROP_LOG_INTERVAL)

    def _after_fork_in_child(self) -> None:
        # A forked child is a new process: its counts start at zero (and the
        # lock may have been held by a parent thread at the fork).
        self._reset()

    def drop(self, reason: DropReason, channel: str, detail: object) -> None:
        """Count a dropped message and log it with its channel and reason.

        Repeats of one reason within a second are counted but not logged;
        the next warning says how many.
        ``detail`` quotes the sender's text: it is escaped (see
        ``_wire.printable``).
        """
        self._drop_logs[reason].warning(
            "Dropped a message on channel %r (%s): %s",
            channel,
            reason,
            Printable(detail),
        )
        # Counted after the warning: whoever sees the count sees the log line.
        with self._lock:
            self.dropped[reason] += 1

    def drop_headers(self, channel: str, detail: str) -> None:
        """Count a message whose headers were dropped (it is still delivered).

        Listener only; logged like :meth:`drop`, at most once a second.
        """
        self._headers_log.warning(
            "Dropped the headers of a message on channel %r: %s; the event is "
            "delivered without them",
            channel,
            detail,
        )
        with self._lock:
            self.headers_dropped += 1

    def add_delivered(self) -> None:
        """Count one message handed to subscribers."""
        with self._lock:
            self.delivered += 1

    def add(self, name: CounterName, count: int = 1) -> None:
        """Add ``count`` to the counter ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def add_published(self, count: int) -> None:
        """Count ``count`` events acknowledged by Redis."""
        with self._lock:
            self.published += count

    def add_publish_error(self) -> None:
        """Count one failed publish (or batch)."""
        with self._lock:
            self.publish_errors += 1

    def snapshot(
        self, subscriber_errors: int, connection: ConnectionState
    ) -> RedisBrokerStats:
        """Copy the counters into an immutable :class:`RedisBrokerStats`."""
        with self._lock:
            return RedisBrokerStats(
                published=self.published,
                publish_errors=self.publish_errors,
                delivered=self.delivered,
                dropped=MappingProxyType(dict(self.dropped)),
                subscriber_errors=subscriber_errors,
                headers_dropped=self.headers_dropped,
                reconnects=self.reconnects,
                listener_errors=self.listener_errors,
                listener_restarts=self.listener_restarts,
                subscribe_refusals=self.subscribe_refusals,
                connected=connection.connected,
                connected_since=connection.since,
                last_connection_error=connection.last_error,
                subscribed=connection.subscribed,
                refused_channels=MappingProxyType(dict(connection.refused)),
            )


@dataclass(frozen=True)
class ConnectionState:
    """What the listener reports about its Pub/Sub connection right now."""

    connected: bool = False
    since: float | None = None
    last_error: str | None = None
    subscribed: int = 0
    refused: Mapping[str, str] = field(default_factory=dict)
