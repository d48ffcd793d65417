"""Counters written by several threads at once (issue 16, item 3).

A sharded broker has one listener thread per cluster node and a cluster
stream broker one reader thread per node (its counts are per reader, summed
by stats()). Before, those counts were ``+=`` on attributes (not atomic across
threads: updates were lost). The switch interval is shortened so that threads
interleave inside an update; with the lock, no count is ever lost.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _redis_support import OrderPlaced

from eventspype import FunctionalEventSubscriber
from eventspype.broker.redis._wire.fanout import Fanout
from eventspype.broker.redis._wire.stats import ConnectionState, Counters

THREADS = 4
EACH = 20_000


@pytest.fixture(autouse=True)
def _interleave_often() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def hammer(work: Callable[[], None]) -> None:
    start = threading.Barrier(THREADS)

    def run() -> None:
        start.wait()
        for _ in range(EACH):
            work()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_no_listener_count_is_lost() -> None:
    counters = Counters()

    def count() -> None:
        counters.add_delivered()
        counters.add("reconnects")
        counters.add("listener_errors", 2)

    hammer(count)
    stats = counters.snapshot(0, ConnectionState())
    total = THREADS * EACH
    assert (stats.delivered, stats.reconnects, stats.listener_errors) == (
        total,
        total,
        2 * total,
    )


def test_no_drop_is_lost() -> None:
    counters = Counters()
    hammer(lambda: counters.drop("oversized", "c", "too big"))
    assert counters.snapshot(0, ConnectionState()).dropped["oversized"] == (
        THREADS * EACH
    )


def test_no_subscriber_error_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(event: Any) -> None:
        raise ValueError("handler bug")

    fanout = Fanout()
    failing = FunctionalEventSubscriber(fail, with_event_info=False)
    fanout.add("c", failing)
    event = OrderPlaced(1, 1.0)
    # The tracebacks of 80,000 failures are not what this test is about.
    monkeypatch.setattr("eventspype.broker.redis._wire.fanout._logger.disabled", True)

    def deliver() -> None:
        fanout.deliver("c", event, "c", None)

    hammer(deliver)
    assert fanout.subscriber_errors == THREADS * EACH
