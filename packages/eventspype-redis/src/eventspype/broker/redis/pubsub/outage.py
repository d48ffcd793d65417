"""The listener's view of Redis being down: backoff, warnings, the reconnect count.

One warning when the connection is lost (or cannot be made), debug lines while
it stays down, one warning with the duration when it is back; never one per
attempt, so a long outage does not flood the log. The waits come from
redis-py's ``EqualJitterBackoff`` (doubling, capped, half of it random: no
thundering herd). Used by the listener thread only, except the read-only
properties, which any thread may read.
"""

from __future__ import annotations

import logging
import time

from redis.backoff import EqualJitterBackoff

from eventspype.broker.redis._wire.stats import Counters

__all__ = ["Outage"]

_logger = logging.getLogger("eventspype.broker.redis")


class Outage:
    """Failures since the last healthy connection, and what to wait before the next."""

    def __init__(
        self, counters: Counters, reconnect_delay: tuple[float, float]
    ) -> None:
        first, longest = reconnect_delay
        if not 0 < first <= longest:
            raise ValueError(
                "reconnect_delay must be (first, longest) with 0 < first <= "
                f"longest, got {reconnect_delay}"
            )
        self._counters = counters
        # compute(n): between half and all of min(longest, first * 2**n) seconds.
        self._backoff = EqualJitterBackoff(cap=longest, base=first)
        self.reset()

    def reset(self) -> None:
        """As if never connected (a new broker, or a forked child)."""
        self._down_since: float | None = None
        self._ever_connected = False
        #: Failed attempts since the last healthy connection.
        self.failures = 0
        #: ``"<ExceptionType>: <message>"`` of the last failure, if any.
        self.last_error: str | None = None

    @property
    def down(self) -> bool:
        """Whether Redis is known to be unreachable right now."""
        return self._down_since is not None

    def lost(self, error: BaseException, channels: int) -> None:
        """The connection in use broke."""
        self.failures += 1
        self.last_error = _describe(error)
        if self._down_since is None:
            self._down_since = time.monotonic()
            _logger.warning(
                "Redis Pub/Sub connection lost (%s); reconnecting with "
                "backoff to re-subscribe %d channel(s)",
                self.last_error,
                channels,
            )

    def failed(self, error: BaseException) -> None:
        """A connection attempt failed."""
        self.failures += 1
        self.last_error = _describe(error)
        if self._down_since is None:
            self._down_since = time.monotonic()
            _logger.warning(
                "Cannot reach Redis for Pub/Sub (%s); retrying with backoff",
                self.last_error,
            )
        else:
            _logger.debug("Redis still unreachable (%s)", error)

    def recovered(self, channels: int) -> None:
        """Redis answered a command on a new connection: healthy again."""
        self.failures = 0
        if self._down_since is not None:
            away = time.monotonic() - self._down_since
            self._down_since = None
            if self._ever_connected:
                self._counters.add("reconnects")
                _logger.warning(
                    "Redis Pub/Sub connection back after %.1f s; re-subscribed "
                    "%d channel(s). Events published in between were lost.",
                    away,
                    channels,
                )
            else:
                _logger.warning(
                    "Redis reachable after %.1f s; subscribed %d channel(s)",
                    away,
                    channels,
                )
        self._ever_connected = True

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt: doubling, capped, jittered."""
        return self._backoff.compute(min(max(self.failures - 1, 0), 30))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
