"""A coroutine subscriber whose event loop is closed (issue 16, item 3).

Every event delivered to it afterwards is counted in ``abandoned``; before,
each one also logged an ERROR line (1,000 events, 1,000 lines). Now the first
is logged and then at most one line per 10 s, saying how many were not.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from eventspype import AsyncFunctionalEventSubscriber
from eventspype._internal import ratelimit as _ratelimit


async def handle(event: object) -> None:
    pass


def test_events_after_the_loop_closed_are_counted_and_logged_rate_limited(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(_ratelimit.time, "monotonic", lambda: clock[0])
    loop = asyncio.new_event_loop()
    subscriber = AsyncFunctionalEventSubscriber(handle, False, loop=loop)
    loop.close()
    with caplog.at_level(logging.ERROR, logger="eventspype.sub.asynchronous"):
        for i in range(1000):
            subscriber.call(i, "TAG", None)
        clock[0] += 10.0
        subscriber.call(1000, "TAG", None)
    assert subscriber.abandoned == 1001
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "1 event(s) not handled because its event loop is closed" in messages[0]
    assert messages[1].endswith("(999 more since the last such message)")
    assert all(r.levelno == logging.ERROR for r in caplog.records)
