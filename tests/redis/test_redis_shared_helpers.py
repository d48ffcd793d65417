"""The redis leaf uses core's shared helpers (``eventspype._internal``), not
copies of its own: one fork registry, one rate-limited warning."""

from __future__ import annotations

import logging

import pytest

from eventspype._internal import fork
from eventspype._internal import ratelimit as _ratelimit
from eventspype.broker.redis._wire.stats import Counters


def test_the_leaf_s_objects_are_in_core_s_fork_registry() -> None:
    # Running the whole child hook here would reset every live object of this
    # process: call what it would call for this one only.
    counters = Counters()
    counters.add_delivered()
    counters.add_published(3)
    lock = counters._lock
    registered = fork._holders[id(counters)]()
    assert registered is counters
    registered._after_fork_in_child()
    assert (counters.delivered, counters.published) == (0, 0)
    assert counters._lock is not lock


def test_drop_warnings_are_rate_limited_per_reason(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [50.0]
    monkeypatch.setattr(_ratelimit.time, "monotonic", lambda: clock[0])
    counters = Counters()
    with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
        for _ in range(3):
            counters.drop("oversized", "c", "too big")
        counters.drop("invalid_json", "c", "not JSON")  # its own limit
        clock[0] += 1.0
        counters.drop("oversized", "c", "too big")
    assert [r.getMessage() for r in caplog.records] == [
        "Dropped a message on channel 'c' (oversized): too big",
        "Dropped a message on channel 'c' (invalid_json): not JSON",
        "Dropped a message on channel 'c' (oversized): too big"
        " (2 more since the last such message)",
    ]
    assert counters.dropped["oversized"] == 4
