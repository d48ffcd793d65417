"""The Pub/Sub protocol of one connection, without I/O: every decision, once.

:class:`PubSubProtocol` knows which channels are wanted, sent, confirmed and
refused; which reply answers which command; when a quiet connection is PINGed
and when it is declared dead; how long to wait before the next connection
attempt; and what the listener counters and connection state say. It is fed
replies, errors, connection events and the clock (``now``, monotonic
seconds), and returns the commands to send and the verdicts to act on. The
drivers (a thread, an asyncio task, one per cluster shard) only move bytes and
time, so they behave the same because the policy is not theirs.

Not thread-safe: its owner serializes every call (a lock, or one event loop).
The channel tables are its base class's,
:class:`~pubsub.channel_table.ChannelTable`.

Reply matching. Redis answers commands in the order they were sent. Every
SUBSCRIBE and UNSUBSCRIBE names one channel and is recorded in order, so an
error reply (an ACL that forbids a channel: ``-NOPERM``) is known to concern
that one channel: a refusal of that channel, never a reason to drop the
connection. A refused channel is not wanted any more (never sent again) until
it is asked for again; once its subscriber gave it up (:meth:`unwant`), the
refusal no longer fails :meth:`first_refusal` (``wait_until_subscribed``),
though ``stats()`` still lists it.

The health rule. A connection quiet for ``health_check_interval`` seconds is
PINGed; if nothing at all arrives within ``ping_timeout`` seconds after that
(``max(health_check_interval, 1)``), it is dead. Any reply proves the
connection alive. A new connection is healthy (and the backoff reset) only
once Redis answers a command on it: a server that accepts connections but
refuses commands (``LOADING``) keeps the backoff growing.

Channels are names on the server, as bytes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Literal

from eventspype._internal.backoff import Backoff
from eventspype.broker.redis._wire.stats import ConnectionState, Counters
from eventspype.broker.redis.pubsub.channel_table import ChannelTable, Command, Waiter

__all__ = ["Command", "PubSubProtocol", "Verdict", "Waiter", "describe"]

_logger = logging.getLogger("eventspype.broker.redis")

#: What :meth:`PubSubProtocol.tick` asks of the driver.
Verdict = Literal["ping", "dead"] | None


def describe(error: BaseException) -> str:
    """``"<ExceptionType>: <message>"``, as errors are reported and counted."""
    return f"{type(error).__name__}: {error}"


class PubSubProtocol(ChannelTable):
    """The state machine of one Pub/Sub connection (see the module docs).

    Attributes:
        wanted: Channels that should be subscribed, in the order asked.
        refused: Channel -> the server's reason, for channels whose last
            SUBSCRIBE was refused (for ``stats()``).
        live: A connection is open and subscribed to (what was sent on it).
        connected: Redis answered on the current connection.
        failures: Failed attempts since the last healthy connection.
        last_error: ``"<ExceptionType>: <message>"`` of the last failure.

    Raises:
        ValueError: ``health_check_interval`` is not positive, or
            ``reconnect_delay`` is not ``(first, longest)`` with
            ``0 < first <= longest``.
    """

    def __init__(
        self,
        counters: Counters,
        *,
        health_check_interval: float,
        reconnect_delay: tuple[float, float],
        encoding: str = "utf-8",
        rand: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not health_check_interval > 0:
            raise ValueError(
                f"health_check_interval must be > 0, got {health_check_interval}"
            )
        first, longest = reconnect_delay
        if not 0 < first <= longest:
            raise ValueError(
                "reconnect_delay must be (first, longest) with 0 < first <= "
                f"longest, got {reconnect_delay}"
            )
        self.counters = counters
        self.health_check_interval = health_check_interval
        self.ping_timeout = max(health_check_interval, 1.0)
        self._backoff = Backoff(first, longest)
        self._set_encoding(encoding)
        self._rand = rand
        self._wall_clock = wall_clock
        self.reset()

    def reset(self) -> None:
        """As new: nothing wanted, no connection, no failure (also after a fork)."""
        self._reset_channels()
        self.connected = False
        self._since: float | None = None  # wall clock of the last change
        self._recovering = False
        self.failures = 0
        self.last_error: str | None = None
        self._down_since: float | None = None
        self._ever_connected = False
        self._last_heard = 0.0
        self._heard = False
        self._ping_sent: float | None = None

    @property
    def down(self) -> bool:
        """Whether Redis is known to be unreachable right now."""
        return self._down_since is not None

    # -- the connection ---------------------------------------------------------

    def opened(self, now: float) -> list[Command]:
        """A new connection is open: what to send on it (every wanted channel)."""
        self._forget_connection()
        self.live = True
        self._recovering = True
        self._last_heard = now
        self._heard = False
        self._ping_sent = None
        return self.commands()

    def open_failed(self, error: BaseException) -> None:
        """A connection attempt failed: back off, release whoever waits."""
        self._failed(
            error, "Cannot reach Redis for Pub/Sub (%s); retrying with backoff"
        )
        self.closed()

    def lost(self, error: BaseException) -> None:
        """The connection in use broke (or was declared dead)."""
        self.closed()
        self._failed(
            error,
            "Redis Pub/Sub connection lost (%s); reconnecting with backoff to "
            f"re-subscribe {len(self.wanted)} channel(s)",
        )

    def failed_internally(self, error: BaseException) -> None:
        """The driver's loop raised (a bug of ours): counted, started over."""
        self.counters.add("listener_errors")
        self.counters.add("listener_restarts")
        _logger.error("Redis listener failed; starting over", exc_info=error)
        self.closed()
        self._failed(error, "Redis listener failed (%s); starting over")

    def replaced(self, what: str) -> None:
        """The driver's thread or task had ended by itself and is replaced."""
        self.counters.add("listener_restarts")
        _logger.error("Redis listener %s had ended; starting a new one", what)
        self.closed()

    def closed(self) -> None:
        """The connection is gone (or there was none); waiters are released."""
        self._forget_connection()
        if self.connected or self._since is None:
            self.connected = False
            self._since = self._wall_clock()
        self._release_waiters()  # nobody should wait minutes for a confirmation

    def _forget_connection(self) -> None:
        self._forget_sent()
        self._recovering = False
        self._ping_sent = None

    def _failed(self, error: BaseException, first_warning: str) -> None:
        self.failures += 1
        self.last_error = describe(error)
        if self._down_since is None:
            self._down_since = self._wall_clock()
            _logger.warning(first_warning, self.last_error)
        else:
            _logger.debug("Redis still unreachable (%s)", self.last_error)

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt (0 after no failure)."""
        return self._backoff.delay(self.failures, self._rand())

    # -- what came back -----------------------------------------------------------

    def heard(self) -> None:
        """A message arrived (cheap: the clock is read at the next :meth:`tick`)."""
        self._heard = True

    def answered(self, kind: bytes, channel: bytes | None, now: float) -> bool:
        """A ``subscribe``, ``unsubscribe`` or ``pong`` reply arrived.

        Settles the waiters of a confirmed SUBSCRIBE. Returns whether the
        connection is unused now (nothing wanted, sent or awaited after an
        UNSUBSCRIBE): the driver may close it.
        """
        self._alive(now)
        return self._matched(kind, channel)

    def error_reply(self, error: BaseException, now: float) -> None:
        """An error reply arrived: it answers the oldest command in flight.

        A refused SUBSCRIBE refuses that channel only (counted, logged, its
        waiters settled with the refusal); a refused PING is an answer all
        the same.
        """
        self._alive(now)
        reason = describe(error)
        kind, channel = self._refused(reason)
        if kind == b"subscribe" and channel is not None:
            self.counters.add("subscribe_refusals")
            _logger.error(
                "Redis refused to subscribe to %r: %s; the other channels are "
                "not affected",
                self.name(channel),
                reason,
            )
        elif kind != b"ping":
            _logger.error(
                "Redis refused a Pub/Sub command (%s %r): %s",
                kind.decode() or "unknown",
                channel,
                reason,
            )

    def undecodable(self, error: BaseException) -> None:
        """A message could not be read at all (the connection is given up)."""
        self.counters.drop("invalid_json", "(unknown)", error)

    def delivery_failed(self, channel: bytes | None) -> None:
        """Handing a message to the broker raised (its handler never should)."""
        self.counters.add("listener_errors")
        _logger.exception("Handling a Redis message on %r failed; going on", channel)

    def _alive(self, now: float) -> None:
        self._last_heard = now
        self._heard = False
        self._ping_sent = None
        if self._recovering:
            self._recovering = False
            self._healthy()

    def _healthy(self) -> None:
        self.connected = True
        self._since = self._wall_clock()
        self.failures = 0
        down_since, self._down_since = self._down_since, None
        if down_since is not None:
            away = max(0.0, self._wall_clock() - down_since)
            if self._ever_connected:
                self.counters.add("reconnects")
                _logger.warning(
                    "Redis Pub/Sub connection back after %.1f s; re-subscribed "
                    "%d channel(s). Events published in between were lost.",
                    away,
                    len(self.wanted),
                )
            else:
                _logger.warning(
                    "Redis reachable after %.1f s; subscribed %d channel(s)",
                    away,
                    len(self.wanted),
                )
        self._ever_connected = True

    # -- health -------------------------------------------------------------------

    def tick(self, now: float) -> Verdict:
        """The health rule at ``now`` (see the module docs).

        ``"ping"``: send :meth:`ping` now (recorded as sent at ``now``);
        ``"dead"``: the connection is dead, call :meth:`lost`.
        """
        if self._heard:
            self._heard = False
            self._last_heard = now
            self._ping_sent = None
        if not self.live:
            return None
        if self._ping_sent is not None:
            return "dead" if now - self._ping_sent >= self.ping_timeout else None
        if now - self._last_heard >= self.health_check_interval:
            self._ping_sent = now
            return "ping"
        return None

    def wait_time(self, now: float) -> float:
        """Seconds until :meth:`tick` may have something to say (>= 0)."""
        if self._ping_sent is not None:
            due = self._ping_sent + self.ping_timeout
        else:
            due = self._last_heard + self.health_check_interval
        return max(0.0, due - now)

    # -- what is true now -----------------------------------------------------------

    def state(self) -> ConnectionState:
        """Connected or not, since when, the last error, what is subscribed."""
        return ConnectionState(
            connected=self.connected,
            since=self._since,
            last_error=self.last_error,
            subscribed=self.subscribed() if self.connected else 0,
            refused={self.name(c): r for c, r in self.refused.items()},
        )
