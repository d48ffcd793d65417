"""What the thread listener and the asyncio listener decide the same way (no I/O).

``Listener`` (a thread) and ``AsyncListener`` (a task) drive one Pub/Sub
connection each; what to send and what a reply means is their
:class:`~pubsub.channel_book.ChannelBook`'s, backoff is their
:class:`~pubsub.outage.Outage`'s. :class:`ListenerCore` holds what remains common:
the connection state reported by ``stats()``, the answer to "is every wanted
channel confirmed?", and how a refused command is counted and logged.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from eventspype.broker.redis._wire.stats import ConnectionState, Counters
from eventspype.broker.redis.pubsub.channel_book import ChannelBook
from eventspype.broker.redis.pubsub.outage import Outage

__all__ = ["ListenerCore", "check_health_check_interval"]

_logger = logging.getLogger("eventspype.broker.redis")


def check_health_check_interval(health_check_interval: float) -> None:
    """Raise ``ValueError`` unless ``health_check_interval`` is positive."""
    if not health_check_interval > 0:
        raise ValueError(
            f"health_check_interval must be > 0, got {health_check_interval}"
        )


class ListenerCore:
    """The shared state of a listener (see the module docs).

    ``_lock`` guards the book and the connection state, from any thread; a
    listener sets these attributes itself (and again after a fork).
    """

    _lock: threading.Lock
    _book: ChannelBook
    _outage: Outage
    _counters: Counters
    #: Whether Redis answered on the current connection.
    _connected: bool
    #: ``time.time()`` of the last change of ``_connected``.
    _state_since: float | None

    @property
    def _live(self) -> bool:
        """Whether a connection is subscribed (confirmations count only on one)."""
        raise NotImplementedError

    def state(self) -> ConnectionState:
        """Connected or not, since when, the last error, what is subscribed."""
        with self._lock:
            book = self._book
            return ConnectionState(
                connected=self._connected,
                since=self._state_since,
                last_error=self._outage.last_error,
                subscribed=book.subscribed() if self._connected else 0,
                refused={book.name(c): r for c, r in book.refused.items()},
            )

    def _all_confirmed(self, timeout: float, expired: bool) -> bool:
        """Whether Redis confirmed every wanted channel on a live connection.

        Raises:
            SubscriptionRefused: Redis refused a channel (the first one).
            TimeoutError: some are not confirmed and ``expired``; the message
                names them (``timeout`` is the caller's) and the last
                connection error.
        """
        with self._lock:
            book = self._book
            refused = next(iter(book.refused), None)
            missing = book.missing() if self._live else list(book.wanted)
        if refused is not None:
            raise book.refusal(refused)
        if not missing:
            return True
        if not expired:
            return False
        names = ", ".join(repr(book.name(c)) for c in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise TimeoutError(
            f"Redis has not confirmed the subscription to {names}{more} "
            f"within {timeout} s (last connection error: "
            f"{self._outage.last_error or 'none'})"
        )

    def _mark_connected(self) -> None:
        """Redis answered on a new connection: connected, backoff reset."""
        with self._lock:
            count = len(self._book.wanted)
            self._connected = True
            self._state_since = time.time()
        self._outage.recovered(count)

    def _mark_disconnected(self) -> None:
        """The connection is gone (caller holds ``_lock``)."""
        if self._connected or self._state_since is None:
            self._connected = False
            self._state_since = time.time()

    def _report_refusal(
        self, kind: bytes, channel: bytes | None, reason: str | None, error: Any
    ) -> None:
        """Count and log an error reply to ``kind`` (a refused PING is ignored)."""
        if kind == b"subscribe" and channel is not None:
            self._counters.add("subscribe_refusals")
            _logger.error(
                "Redis refused to subscribe to %r: %s; the other channels are "
                "not affected",
                self._book.name(channel),
                reason,
            )
        elif kind != b"ping":
            _logger.error(
                "Redis refused a Pub/Sub command (%s %r): %s: %s",
                kind.decode() or "unknown",
                channel,
                type(error).__name__,
                error,
            )
