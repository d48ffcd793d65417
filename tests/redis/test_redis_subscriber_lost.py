"""``SubscriberLostWarning`` through every broker (issue 16, item 3).

docs/differences.md promises the warning for a subscriber collected while
subscribed, before its first event. Before, it came only without a broker or
with ``LocalBroker``: through RedisBroker, AsyncRedisBroker and
RedisStreamBroker such a subscriber vanished silently.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from _redis_support import Inbox, OrderPlaced, publisher_for, run_bounded, unique_prefix

from eventspype import FunctionalEventSubscriber, SubscriberLostWarning
from eventspype.broker.redis import AsyncRedisBroker, RedisBroker, RedisStreamBroker
from eventspype.broker.redis._wire.fanout import Fanout


def handler(event: Any) -> None:
    pass


@pytest.fixture
def lost() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def lost_messages(
    caught: list[warnings.WarningMessage], channel: str = "'orders'"
) -> list[str]:
    """The warnings about ``channel`` (garbage of earlier tests may warn too)."""
    gc.collect()
    return [
        str(w.message)
        for w in caught
        if w.category is SubscriberLostWarning
        and f"channel {channel}" in str(w.message)
    ]


# -- the fan-out every Redis broker delivers through (no I/O) ---------------------


def test_a_subscriber_dropped_before_its_first_event_warns(
    lost: list[warnings.WarningMessage],
) -> None:
    fanout = Fanout()
    fanout.add("orders", FunctionalEventSubscriber(handler, False))
    (message,) = lost_messages(lost)
    assert "FunctionalEventSubscriber subscribed to channel 'orders'" in message
    assert "keep a reference" in message
    (warning,) = [
        w
        for w in lost
        if w.category is SubscriberLostWarning and "'orders'" in str(w.message)
    ]
    assert warning.filename == __file__  # the line that dropped it


def test_one_given_an_event_or_removed_first_is_dropped_silently(
    lost: list[warnings.WarningMessage],
) -> None:
    fanout = Fanout()
    served = FunctionalEventSubscriber(handler, False)
    removed = FunctionalEventSubscriber(handler, False)
    fanout.add("orders", served)
    fanout.add("orders", removed)
    fanout.remove("orders", removed)
    fanout.deliver("orders", OrderPlaced(1, 1.0), "orders", None)
    del served, removed
    assert lost_messages(lost) == []


def test_one_given_an_event_by_a_stream_broker_is_dropped_silently(
    lost: list[warnings.WarningMessage],
) -> None:
    # The Streams brokers call the subscribers themselves, from matching()
    # (to await coroutine subscribers): being matched is being given it.
    fanout = Fanout()
    served = FunctionalEventSubscriber(handler, False)
    fanout.add("orders", served)
    accepted, _ = fanout.matching("orders", OrderPlaced(1, 1.0), "orders")
    assert accepted == [served]
    del served, accepted
    assert lost_messages(lost) == []


def test_one_whose_events_were_all_refused_still_warns(
    lost: list[warnings.WarningMessage],
) -> None:
    # Through a publication of another class: it never got an event.
    fanout = Fanout()
    subscriber = FunctionalEventSubscriber(handler, False)
    publication = publisher_for(None, "orders", int).publication
    fanout.add("orders", subscriber, publication)
    fanout.deliver("orders", OrderPlaced(1, 1.0), "orders", None)
    del subscriber
    assert len(lost_messages(lost)) == 1


# -- the brokers ------------------------------------------------------------------


def sync_brokers() -> dict[str, Callable[[fakeredis.FakeRedis], Any]]:
    return {
        "RedisBroker": lambda c: RedisBroker(c, channel_prefix=unique_prefix()),
        "RedisStreamBroker": lambda c: RedisStreamBroker(
            c, channel_prefix=unique_prefix(), group="g"
        ),
    }


@pytest.mark.parametrize("kind", list(sync_brokers()))
def test_sync_redis_brokers_warn(
    kind: str, lost: list[warnings.WarningMessage]
) -> None:
    broker = sync_brokers()[kind](fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    try:
        broker.register_event_class(OrderPlaced)
        publisher = publisher_for(broker, "lost_sync", OrderPlaced)
        publisher.add_subscriber(FunctionalEventSubscriber(handler, False))
        kept = Inbox()
        publisher.add_subscriber(kept.subscriber)
        (message,) = lost_messages(lost, "'LOST_SYNC'")  # the tag
        assert "FunctionalEventSubscriber" in message
    finally:
        broker.close()


def test_async_redis_broker_warns(lost: list[warnings.WarningMessage]) -> None:
    async def scenario() -> list[str]:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        broker = AsyncRedisBroker(client, channel_prefix=unique_prefix())
        try:
            broker.register_event_class(OrderPlaced)
            publisher = publisher_for(broker, "lost_async", OrderPlaced)
            publisher.add_subscriber(FunctionalEventSubscriber(handler, False))
            await asyncio.sleep(0)
            return lost_messages(lost, "'LOST_ASYNC'")
        finally:
            await broker.aclose()

    (message,) = run_bounded(scenario, 30)
    assert "FunctionalEventSubscriber" in message
