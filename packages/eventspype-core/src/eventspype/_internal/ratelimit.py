"""A warning that is logged at most once per interval, with a count of the rest.

The one rate-limited logger of eventspype: core's queue and coroutine
subscribers, and the Redis brokers' drop and lost-publish warnings, use it.
"""

from __future__ import annotations

import logging
import time

__all__ = ["RateLimitedWarning"]


class RateLimitedWarning:
    """Logs the first occurrence at once, then at most one line per ``interval``
    seconds saying how many occurrences were not logged in between.

    Meant for per-event problems (a dropped event) that can happen thousands of
    times a second: the counter that goes with it says how many there were, the
    log says that it happens. One instance per kind of problem (a drop reason
    has its own, so a flood of one reason never hides another). Races between
    threads may log one line more than the interval allows or miscount the
    number not logged; none is ever lost from the counters, which live with
    the caller.
    """

    __slots__ = ("_interval", "_last", "_logger", "_suppressed")

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last = float("-inf")
        self._suppressed = 0

    def warning(self, message: str, *args: object, count: int = 1) -> None:
        """Log ``message % args`` unless one was logged less than ``interval`` ago.

        ``count`` is how many occurrences this call reports (a failed batch
        of 100 events is one call with ``count=100``): the next line logged
        says how many were not.
        """
        self._log(logging.WARNING, message, args, count)

    def error(self, message: str, *args: object, count: int = 1) -> None:
        """As :meth:`warning`, at level ERROR (same interval and count)."""
        self._log(logging.ERROR, message, args, count)

    def _log(
        self, level: int, message: str, args: tuple[object, ...], count: int
    ) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._suppressed += count
            return
        suppressed, self._suppressed, self._last = self._suppressed, 0, now
        if suppressed:
            self._logger.log(
                level,
                message + " (%d more since the last such message)",
                *args,
                suppressed,
            )
        else:
            self._logger.log(level, message, *args)
