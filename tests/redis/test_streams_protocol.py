"""The Streams protocol core on the in-memory model: one decision per test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eventspype._internal.backoff import Backoff
from eventspype.broker.redis.streams.held import ConsumerOptions, Delivery
from eventspype.broker.redis.streams.memory import ManualClock, MemoryRedis
from eventspype.broker.redis.streams.memory_driver import HandleResult, MemoryConsumer
from eventspype.broker.redis.streams.protocol import StreamProtocol

S1, S2 = b"p{a}", b"p{b}"


def consumer(
    redis: MemoryRedis,
    clock: ManualClock,
    handle: Callable[[Delivery], HandleResult],
    name: bytes = b"c1",
    **options: object,
) -> MemoryConsumer:
    settings: dict[str, object] = {
        "start": "all",
        "prefetch": 10,
        "claim_idle": 10.0,
        "claim_interval": 2.0,
        "max_deliveries": 3,
        "max_entry_bytes": 100,
        "retry": Backoff(1.0, 1.0),
    }
    settings.update(options)
    proto = StreamProtocol(
        ConsumerOptions(group=b"g", consumer=name, **settings),  # type: ignore[arg-type]
        rand=lambda: 0.0,
    )
    proto.set_streams({S1: "a", S2: "b"})
    return MemoryConsumer(redis, proto, handle, clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def redis(clock: ManualClock) -> MemoryRedis:
    return MemoryRedis(clock)


def test_failing_entry_is_retried_after_backoff_then_dead_lettered(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    seen: list[int] = []

    def handle(d: Delivery) -> HandleResult:
        seen.append(d.delivery_count)
        return ("failed", "boom")

    c = consumer(redis, clock, handle)
    entry = redis.xadd(S1, {b"event": b"x"})
    c.run_until_idle()
    assert seen == [1]
    for _ in range(3):
        clock.advance(1.0)
        c.run_until_idle()
    assert seen == [1, 2, 3]  # Redis's count: each retry an XCLAIM
    (dead,) = redis.keys[S1 + b":dead"].entries.values()  # type: ignore[union-attr]
    assert dead[b"id"] == entry
    assert dead[b"event"] == b"x"
    assert dead[b"error"] == b"boom"
    assert dead[b"deliveries"] == b"3"
    assert redis.pel(S1, b"g") == {}
    assert c.proto.counters.dead_lettered == 1


def test_dead_letter_move_is_atomic(redis: MemoryRedis, clock: ManualClock) -> None:
    c = consumer(redis, clock, lambda d: ("refused", "bad"))
    redis.set_string(S1 + b":dead", b"not a stream")
    entry = redis.xadd(S1, {b"event": b"x"})
    c.run_until_idle()
    assert entry in redis.pel(S1, b"g")  # not acknowledged, not lost
    assert c.proto.counters.key_errors == 1
    redis.keys.pop(S1 + b":dead")
    clock.advance(1.0)
    c.run_until_idle()
    assert redis.pel(S1, b"g") == {}
    assert c.proto.counters.dead_lettered == 1


def test_malformed_and_oversized_entries_are_dead_lettered_without_a_copy(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    calls: list[Delivery] = []
    c = consumer(redis, clock, lambda d: calls.append(d) or "ok")  # type: ignore[func-returns-value]
    redis.xadd(S1, {b"other": b"x"})
    redis.xadd(S1, {b"event": b"y" * 500})
    c.run_until_idle()
    assert calls == []
    dead = list(redis.keys[S1 + b":dead"].entries.values())  # type: ignore[union-attr]
    assert [d[b"reason"] for d in dead] == [b"malformed", b"oversized"]
    assert all(b"event" not in d for d in dead)
    assert dead[1][b"size"] == b"500"
    assert (c.proto.counters.malformed, c.proto.counters.oversized) == (1, 1)


def test_restart_under_same_name_resumes_its_entries_at_once(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    first = consumer(redis, clock, lambda d: None)  # crashes mid-handling
    redis.xadd(S1, {b"event": b"x"})
    first.run_until_idle()
    seen: list[int] = []
    again = consumer(redis, clock, lambda d: seen.append(d.delivery_count) or "ok")  # type: ignore[func-returns-value]
    again.run_until_idle()  # no time passes: no claim_idle wait
    assert seen == [2]
    assert redis.pel(S1, b"g") == {}


def test_stop_hands_back_what_was_not_started(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    held: list[Delivery] = []
    a = consumer(redis, clock, lambda d: held.append(d) or None, prefetch=6)  # type: ignore[func-returns-value]
    for _ in range(3):
        redis.xadd(S1, {b"event": b"x"})
    a.run_until_idle()
    assert len(held) == 3
    a.finish(held[0], "ok")
    a.proto.hand_back_rest()
    a.run_until_idle()
    assert a.proto.finished_all
    got: list[bytes] = []
    b = consumer(redis, clock, lambda d: got.append(d.entry_id) or "ok", b"c2")  # type: ignore[func-returns-value]
    b.run_until_idle()  # its first sweep takes it: no claim_idle wait
    assert got == [held[1].entry_id, held[2].entry_id]


def test_a_broken_stream_key_does_not_stop_the_others(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    got: list[bytes] = []
    c = consumer(redis, clock, lambda d: got.append(d.stream) or "ok")  # type: ignore[func-returns-value]
    c.run_until_idle()
    redis.set_string(S1, b"oops")
    redis.xadd(S2, {b"event": b"x"})
    c.run_until_idle()
    assert got == [S2]
    assert c.proto.health(clock.now).broken_streams == (S1,)
    assert c.proto.counters.key_errors >= 1


def test_a_vanished_group_is_made_again_from_the_start(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    got: list[bytes] = []
    c = consumer(redis, clock, lambda d: got.append(d.entry_id) or "ok")  # type: ignore[func-returns-value]
    c.run_until_idle()
    redis.destroy_group(S1, b"g")
    entry = redis.xadd(S1, {b"event": b"x"})
    clock.advance(1.0)
    c.run_until_idle()
    assert got == [entry]
    assert c.proto.counters.groups_recreated == 1


def test_failing_entries_fill_prefetch_and_reading_pauses(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    c = consumer(redis, clock, lambda d: ("failed", "x"), prefetch=2, max_deliveries=9)
    for _ in range(5):
        redis.xadd(S1, {b"event": b"x"})
    c.run_until_idle()
    for _ in range(4):
        clock.advance(1.0)
        c.run_until_idle()
        assert c.proto.held_count <= 2
        assert len(redis.pel(S1, b"g")) <= 2
    assert c.proto.counters.reads_paused >= 1


def test_a_pending_entry_trimmed_away_is_counted(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    c = consumer(redis, clock, lambda d: ("failed", "x"))
    entry = redis.xadd(S1, {b"event": b"x"})
    c.run_until_idle()
    redis.delete_entry(S1, entry)
    clock.advance(1.0)
    c.run_until_idle()
    assert c.proto.counters.trimmed == 1
    assert c.proto.held_count == 0
    assert redis.pel(S1, b"g") == {}


def test_a_held_entry_keeps_its_lease_while_another_consumer_sweeps(
    redis: MemoryRedis, clock: ManualClock
) -> None:
    slow = consumer(redis, clock, lambda d: None)  # a long coroutine
    redis.xadd(S1, {b"event": b"x"})
    slow.run_until_idle()
    other = consumer(redis, clock, lambda d: "ok", b"c2")
    for _ in range(30):  # 30 s, three times claim_idle
        clock.advance(1.0)
        slow.run_until_idle()
        other.run_until_idle()
    assert other.proto.counters.delivered == 0
    assert slow.proto.counters.leases_renewed >= 3
