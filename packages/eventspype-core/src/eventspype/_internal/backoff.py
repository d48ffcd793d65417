"""One backoff policy for every retry loop of eventspype (reconnects, retries).

Pure: the caller passes the failure count and a random number, so protocol
cores stay free of clocks and random generators and their tests are exact.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with equal jitter, capped.

    The wait after the ``n``-th consecutive failure (``n >= 1``) is between
    half and all of ``min(longest, first * 2 ** (n - 1))`` seconds: doubling,
    capped, half of it random, so a fleet that lost the same server does not
    come back in one herd.
    """

    first: float
    longest: float

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.longest:
            raise ValueError(
                "a backoff needs 0 < first <= longest, got "
                f"first={self.first!r}, longest={self.longest!r}"
            )

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` consecutive failures."""
        if failures <= 0:
            return 0.0
        # 2 ** 1074 overflows a float: past the cap the exponent no longer matters.
        exponent = min(failures - 1, 1023)
        return min(self.longest, self.first * 2.0**exponent)

    def delay(self, failures: int, rand: float | None = None) -> float:
        """The wait after ``failures`` consecutive failures (0 for none).

        ``rand`` in ``[0, 1)`` picks the point in the jitter range; ``None``
        draws one from :mod:`random`.
        """
        top = self.ceiling(failures)
        if top == 0.0:
            return 0.0
        r = _random.random() if rand is None else rand
        return top / 2 + r * top / 2
