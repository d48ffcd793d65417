"""The rate-limited warning behind the drop logs of the queue and coroutine
subscribers: the first occurrence at once, then one line per interval that
says how many were not logged."""

from __future__ import annotations

import logging

import pytest

from eventspype._internal import ratelimit as _ratelimit
from eventspype._internal.ratelimit import RateLimitedWarning

LOGGER = "test.eventspype.ratelimit"


def test_first_logged_then_one_line_per_interval_with_the_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(_ratelimit.time, "monotonic", lambda: clock[0])
    warning = RateLimitedWarning(logging.getLogger(LOGGER), interval=10.0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for i in range(5):  # within one interval: only the first is logged
            warning.warning("dropped %d", i)
        clock[0] += 10.0
        warning.warning("dropped %d", 5)  # the next interval: logged, with 4
        warning.warning("dropped %d", 6)
        clock[0] += 10.0
        warning.warning("dropped %d", 7)
    assert [r.getMessage() for r in caplog.records] == [
        "dropped 0",
        "dropped 5 (4 more since the last such message)",
        "dropped 7 (1 more since the last such message)",
    ]


def test_a_call_may_report_many_occurrences(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failed batch is one call for many events: the count says how many.
    clock = [100.0]
    monkeypatch.setattr(_ratelimit.time, "monotonic", lambda: clock[0])
    warning = RateLimitedWarning(logging.getLogger(LOGGER), interval=1.0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        warning.warning("%d lost", 5, count=5)
        warning.warning("%d lost", 7, count=7)
        warning.warning("%d lost", 2, count=2)
        clock[0] += 1.0
        warning.warning("%d lost", 1)
    assert [r.getMessage() for r in caplog.records] == [
        "5 lost",
        "1 lost (9 more since the last such message)",
    ]
