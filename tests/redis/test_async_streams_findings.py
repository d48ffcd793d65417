"""The durable-delivery findings of ``test_streams_findings.py``, for
AsyncRedisStreamBroker: the same core decides, and this checks that the
asyncio driver carries its decisions out the same way. Real Redis only."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
import weakref
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

import pytest
import redis
from _redis_support import (
    REDIS_URL,
    OrderPlaced,
    eventually,
    publisher_for,
    run_bounded,
)

from eventspype import AsyncFunctionalEventSubscriber, EventPublication
from eventspype.broker.redis import AsyncRedisStreamBroker, SubscriptionRefused

Scenario = Callable[..., Coroutine[Any, Any, None]]


def run(real: tuple[redis.Redis, str], scenario: Scenario) -> None:
    """``scenario(make)`` in a new loop; ``make(**options)`` opens a broker
    (closed after) with the test's prefix and quick retries."""
    _, prefix = real

    async def main() -> None:
        async with AsyncExitStack() as stack:

            async def make(**options: Any) -> AsyncRedisStreamBroker:
                options.setdefault("channel_prefix", prefix)
                options.setdefault("group", "g")
                options.setdefault("claim_interval", 0.2)
                options.setdefault("retry_delay", (0.05, 0.2))
                broker = AsyncRedisStreamBroker.from_url(REDIS_URL, **options)
                broker.register_event_class(OrderPlaced)
                stack.push_async_callback(broker.aclose, 0.0)
                return broker

            await scenario(make)

    run_bounded(main, 60.0)


def subscriber(handle: Callable[[Any], Any], **options: Any) -> Any:
    async def call(event: Any) -> None:
        result = handle(event)
        if asyncio.iscoroutine(result):
            await result

    return AsyncFunctionalEventSubscriber(call, with_event_info=False, **options)


def _key(prefix: str, channel: str) -> str:
    return f"{prefix}{{{channel}}}"


async def _publish(broker: AsyncRedisStreamBroker, tag: str, count: int) -> None:
    publisher = publisher_for(broker, tag, OrderPlaced)
    for index in range(count):
        await publisher.publish_async(OrderPlaced(index, 0.0))


def test_entries_waiting_for_a_coroutine_are_not_claimed_by_another_consumer(
    real: tuple[redis.Redis, str],
) -> None:
    # One coroutine at a time, 0.25 s each, 16 entries in one consumer's
    # hand: the last waits 4 s, past claim_idle; its lease is renewed.
    handled: list[int] = []

    async def scenario(make: Any) -> None:
        first = await make(claim_idle=2.0, prefetch=16, consumer="a")
        second = await make(claim_idle=2.0, prefetch=16, consumer="b")

        async def slow(event: Any) -> None:
            await asyncio.sleep(0.25)
            handled.append(event.order_id)

        subs = [subscriber(slow), subscriber(slow)]
        first.subscribe("ORDERS", subs[0])
        await first.wait_until_subscribed()
        await _publish(first, "orders", 16)
        await eventually(lambda: first.stats().delivered >= 1)
        second.subscribe("ORDERS", subs[1])
        await eventually(lambda: len(handled) >= 16, timeout=30)
        await asyncio.sleep(0.5)  # not a timing assertion: room for a duplicate
        assert sorted(handled) == list(range(16)), "an entry was handled twice"
        assert first.stats().leases_lost == 0

    run(real, scenario)


def test_a_dead_letter_key_of_the_wrong_type_loses_nothing(
    real: tuple[redis.Redis, str],
) -> None:
    client, prefix = real
    handled: list[int] = []

    def handle(event: Any) -> None:
        if event.order_id == 0:
            raise ValueError("poison")
        handled.append(event.order_id)

    async def scenario(make: Any) -> None:
        broker = await make(claim_idle=5.0, max_deliveries=1)
        sub = subscriber(handle)
        broker.subscribe("ORDERS", sub)
        await broker.wait_until_subscribed()
        client.set(_key(prefix, "ORDERS") + ":dead", b"not a stream")
        await _publish(broker, "orders", 6)
        await eventually(lambda: sorted(handled) == [1, 2, 3, 4, 5])
        await eventually(lambda: broker.stats().key_errors >= 1)
        # The five are handled before their acknowledgements are sent: wait
        # for those (XPENDING read at once saw 3 once, under load).
        await eventually(lambda: broker.stats().acknowledged >= 5)
        key = _key(prefix, "ORDERS")
        pending = client.xpending_range(key, "g", "-", "+", 10)
        ((poison_id, _),) = client.xrange(key, count=1)  # order 0, first published
        # The poison entry only: not acknowledged, not lost.
        assert [entry["message_id"] for entry in pending] == [poison_id]
        assert broker.stats().dead_lettered == 0
        client.delete(_key(prefix, "ORDERS") + ":dead")
        await eventually(lambda: broker.stats().dead_lettered == 1, timeout=20)
        assert sorted(handled) == [1, 2, 3, 4, 5]

    run(real, scenario)


def test_a_broken_stream_key_stops_only_its_channel_and_subscribing_says_so(
    real: tuple[redis.Redis, str],
) -> None:
    client, prefix = real
    got: list[str] = []

    async def scenario(make: Any) -> None:
        broker = await make(claim_idle=5.0)
        client.set(_key(prefix, "A"), b"oops")
        subs = [
            subscriber(lambda e: got.append("A")),
            subscriber(lambda e: got.append("B")),
        ]
        broker.subscribe("A", subs[0])
        broker.subscribe("B", subs[1])
        with pytest.raises(SubscriptionRefused, match=r"\{A\}"):
            await broker.wait_until_subscribed()
        await _publish(broker, "b", 1)
        await eventually(lambda: got == ["B"])
        assert broker.stats().key_errors >= 1
        assert not broker.health().ready
        assert broker.health().live

    run(real, scenario)


def test_malformed_and_oversized_entries_are_counted_and_dead_lettered(
    real: tuple[redis.Redis, str],
) -> None:
    client, prefix = real

    async def scenario(make: Any) -> None:
        broker = await make(max_message_bytes=1000)
        sub = subscriber(lambda e: None)
        broker.subscribe("ORDERS", sub)
        await broker.wait_until_subscribed()
        key = _key(prefix, "ORDERS")
        client.xadd(key, {"not-event": "x"})
        client.xadd(key, {"event": b"x" * 5000})
        await eventually(lambda: broker.stats().dead_lettered == 2)
        stats = broker.stats()
        assert (stats.malformed, stats.oversized) == (1, 1)
        letters = await broker.dead_letters("ORDERS")
        assert [letter.reason for letter in letters] == ["malformed", "oversized"]
        assert letters[1].size == 5000
        assert letters[1].event == b""  # not copied
        assert await broker.republish_dead_letters("ORDERS") == 0
        assert len(await broker.dead_letters("ORDERS")) == 2

    run(real, scenario)


def test_the_dead_letter_stream_has_its_own_bound(
    real: tuple[redis.Redis, str],
) -> None:
    # As for RedisStreamBroker: only dead_letter_maxlen trims <stream>:dead.
    client, prefix = real

    async def scenario(make: Any) -> None:
        broker = await make(maxlen=None, dead_letter_maxlen=10)
        sub = subscriber(lambda e: None)
        broker.subscribe("ORDERS", sub)
        await broker.wait_until_subscribed()
        key = _key(prefix, "ORDERS")
        with client.pipeline(transaction=False) as pipe:
            for index in range(300):
                pipe.xadd(key, {"not-event": str(index)})
            pipe.execute()
        await eventually(lambda: broker.stats().dead_lettered == 300, timeout=30)
        assert 10 <= client.xlen(f"{key}:dead") <= 110

    run(real, scenario)


def test_failing_entries_never_exceed_prefetch(real: tuple[redis.Redis, str]) -> None:
    def fail(event: Any) -> None:
        raise RuntimeError("always")

    async def scenario(make: Any) -> None:
        broker = await make(prefetch=5, max_deliveries=100, claim_idle=5.0)
        sub = subscriber(fail, max_concurrency=10)
        broker.subscribe("ORDERS", sub)
        await broker.wait_until_subscribed()
        await _publish(broker, "orders", 50)
        await eventually(lambda: broker.stats().retried >= 20, timeout=30)
        [backlog] = (await broker.backlog()).values()
        assert backlog.pending == 5
        assert broker.stats().reads_paused >= 1
        assert broker.health().paused

    run(real, scenario)


def test_mistakes_are_caught(real: tuple[redis.Redis, str]) -> None:
    async def scenario(make: Any) -> None:
        with pytest.raises(ValueError, match="group"):
            await make(group="")
        broker = await make(max_deliveries=1)
        sub = subscriber(lambda e: 1 / 0)
        publication = EventPublication("invoice_due", OrderPlaced)
        broker.subscribe_publication(publication, sub)
        await broker.wait_until_subscribed()
        await _publish(broker, "invoice_due", 1)
        await eventually(lambda: broker.stats().dead_lettered == 1)
        assert len(await broker.dead_letters("invoice_due")) == 1  # as written
        assert len(await broker.dead_letters(publication)) == 1

    run(real, scenario)


def test_a_second_live_consumer_with_the_same_name_is_warned_about(
    real: tuple[redis.Redis, str], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(make: Any) -> None:
        first = await make(consumer="worker-1")
        second = await make(consumer="worker-1")
        subs = [subscriber(lambda e: None), subscriber(lambda e: None)]
        first.subscribe("ORDERS", subs[0])
        await first.wait_until_subscribed()
        await eventually(lambda: first.health().connected)
        await asyncio.sleep(0.2)  # its lease taken: room for the first refresh
        with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
            second.subscribe("ORDERS", subs[1])
            await second.wait_until_subscribed()
            await eventually(
                lambda: any("consumer name" in r.getMessage() for r in caplog.records)
            )
        assert second.health().live  # warned, never refused

    run(real, scenario)


def test_a_dropped_broker_stops_its_consumer_hands_back_and_warns(
    real: tuple[redis.Redis, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Collected without ``aclose()``: its consumer task stops, what it held
    goes back to the group at once (another consumer takes it at its next
    sweep, not after ``claim_idle`` or the retry delay) and a
    ResourceWarning names the broker and the task it stopped."""
    taken: list[int] = []
    # A kept log record of the failure would hold the handler's frames, and
    # through them the broker (the caller of the delivery): no records.
    caplog.set_level(logging.CRITICAL, logger="eventspype")

    def fail(event: Any) -> None:
        raise RuntimeError("held for a retry")

    async def scenario(make: Any) -> None:
        _, prefix = real
        dropped = AsyncRedisStreamBroker.from_url(
            REDIS_URL,
            channel_prefix=prefix,
            group="g",
            consumer="dropped",
            retry_delay=(60.0, 60.0),
        )
        dropped.register_event_class(OrderPlaced)
        failing = subscriber(fail)
        dropped.subscribe("ORDERS", failing)
        await dropped.wait_until_subscribed()
        await _publish(dropped, "orders", 1)
        ref = weakref.ref(dropped)
        await eventually(lambda: _errors(ref) == 1)
        consumer = dropped._consumer
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del dropped
            await eventually(lambda: gc.collect() >= 0 and ref() is None)
            await eventually(lambda: not consumer.alive)
        messages = [str(w.message) for w in caught if w.category is ResourceWarning]
        ours = [m for m in messages if "AsyncRedisStreamBroker" in m]
        assert len(ours) == 1, messages
        assert f"channel_prefix={prefix!r}" in ours[0]
        assert "eventspype-redis-stream-consumer" in ours[0]
        # claim_idle 30 s, retry in 60 s: only the hand-back lets another
        # consumer take the entry within the wait below.
        other = await make(consumer="other", claim_idle=30.0)
        taker = subscriber(lambda e: taken.append(e.order_id))
        other.subscribe("ORDERS", taker)
        await eventually(lambda: taken == [0], timeout=15)

    run(real, scenario)


def _errors(ref: weakref.ref[AsyncRedisStreamBroker]) -> int:
    broker = ref()
    assert broker is not None
    return broker.stats().subscriber_errors
