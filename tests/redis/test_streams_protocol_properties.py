"""Property tests of the Streams protocol core against the in-memory model.

Random interleavings of publishes, handler outcomes (at any time later, as a
coroutine subscriber finishes), time, outages, crashes and restarts (under
the same name or a new one), malformed entries and trimming; a scheduler
steps every live consumer whenever its core asks to be woken, as a live
driver does. The invariants of durable delivery hold after every step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventspype._internal.backoff import Backoff
from eventspype.broker.redis.streams.held import ConsumerOptions, Delivery
from eventspype.broker.redis.streams.memory import ManualClock, MemoryRedis
from eventspype.broker.redis.streams.memory_driver import HandleResult, MemoryConsumer
from eventspype.broker.redis.streams.protocol import StreamProtocol

STREAM = b"p{orders}"
GROUP = b"g"
CLAIM_IDLE = 10.0
PREFETCH = 4
MAX_DELIVERIES = 4


@dataclass
class Process:
    """One consumer process (one incarnation of a consumer name)."""

    name: bytes
    incarnation: int
    consumer: MemoryConsumer
    #: Entry ids this incarnation's subscribers finished "ok".
    ok: set[bytes] = field(default_factory=set)
    #: Start time of each running delivery.
    started: dict[bytes, float] = field(default_factory=dict)
    #: Subscriber ids reported as succeeded per entry (for the retry rule).
    succeeded: dict[bytes, frozenset[object]] = field(default_factory=dict)


class World:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.redis = MemoryRedis(self.clock)
        self.procs: list[Process | None] = [None, None]
        self.incarnations = 0
        self.published: list[bytes] = []
        self.handled_ok: dict[bytes, list[tuple[int, float]]] = {}
        self.deliveries: dict[bytes, list[tuple[int, float]]] = {}
        #: Entries excused from "no duplicate": their holder crashed or an
        #: outage happened while they were held.
        self.excused: set[bytes] = set()
        #: (entry, incarnation) held during an outage: another consumer may
        #: claim it once its lease ran out (not the same one again).
        self.moved: set[tuple[bytes, int]] = set()
        #: (entry, incarnation) of every delivery that failed.
        self.failed: set[tuple[bytes, int]] = set()
        self.acks_seen = 0
        for slot in range(2):
            self.start(slot, new_name=True)

    def start(self, slot: int, new_name: bool) -> None:
        old = self.procs[slot]
        if old is not None:  # a crash: what it held may be delivered again
            self.excused.update(h.entry_id for h in old.consumer.proto.held())
            self.excused.update(e for _, e in old.consumer.running)
        self.incarnations += 1
        name = b"c%d" % self.incarnations if new_name or old is None else old.name
        options = ConsumerOptions(
            group=GROUP,
            consumer=name,
            start="all",
            prefetch=PREFETCH,
            claim_idle=CLAIM_IDLE,
            claim_interval=3.0,
            max_deliveries=MAX_DELIVERIES,
            max_entry_bytes=64,
            retry=Backoff(0.5, 4.0),
            reconnect=Backoff(0.1, 1.0),
        )
        proto = StreamProtocol(options, rand=lambda: 0.5)
        proto.set_streams({STREAM: "orders"})
        incarnation = self.incarnations
        proc = Process(name, incarnation, None)  # type: ignore[arg-type]

        def handle(delivery: Delivery) -> HandleResult:
            entry = delivery.entry_id
            if delivery.last_error:  # a retry of an entry still in hand
                known = proc.succeeded.get(entry, frozenset())
                assert known <= delivery.succeeded, "a retry called one again"
            else:  # a first delivery to this hand: every subscriber is called
                assert delivery.succeeded == frozenset()
                proc.succeeded.pop(entry, None)
            proc.started[entry] = self.clock.now
            self.deliveries.setdefault(entry, []).append((incarnation, self.clock.now))
            return None  # finished later, like a coroutine subscriber

        proc.consumer = MemoryConsumer(self.redis, proto, handle, self.clock)
        self.procs[slot] = proc

    def step(self, slot: int, once: bool = False) -> None:
        proc = self.procs[slot]
        assert proc is not None
        if once:
            proc.consumer.step()
        else:
            proc.consumer.run_until_idle(50)
        self.check(proc)

    def check(self, proc: Process) -> None:
        assert not self.redis.violations, self.redis.violations
        assert proc.consumer.proto.held_count <= PREFETCH
        for _, entry_id, consumer in self.redis.acked[self.acks_seen :]:
            assert consumer == proc.name
            dead = self.dead_ids()
            assert entry_id in proc.ok or entry_id in dead, (
                f"{entry_id!r} acknowledged before its subscribers returned"
            )
        self.acks_seen = len(self.redis.acked)

    def dead_ids(self) -> set[bytes]:
        dead = self.redis.keys.get(STREAM + b":dead")
        if dead is None or isinstance(dead, bytes):
            return set()
        return {fields[b"id"] for fields in dead.entries.values()}

    def finish(self, slot: int, pick: int, verdict: str) -> None:
        proc = self.procs[slot]
        if proc is None or not proc.consumer.running:
            return
        keys = sorted(proc.consumer.running)
        key = keys[pick % len(keys)]
        delivery = proc.consumer.running[key]
        entry = delivery.entry_id
        if verdict == "ok":
            proc.ok.add(entry)
            self.handled_ok.setdefault(entry, []).append(
                (proc.incarnation, self.clock.now)
            )
            result: HandleResult = ("ok", "", frozenset({"a", "b"}))
        else:
            self.failed.add((entry, proc.incarnation))
            proc.succeeded[entry] = proc.succeeded.get(entry, frozenset()) | {"a"}
            result = ("failed", "boom", frozenset({"a"}))
        proc.consumer.finish(delivery, result)

    def advance(self, seconds: float, second_first: bool = False) -> None:
        """Move time, stepping each live consumer (one batch at a time)
        whenever it is due; ``second_first`` breaks ties the other way."""
        target = self.clock.now + seconds
        for _ in range(10_000):
            due = [
                (
                    p.consumer.proto.next_wakeup(self.clock.now),
                    slot != second_first,
                    slot,
                )
                for slot, p in enumerate(self.procs)
                if p is not None
            ]
            when, _, slot = min(due)
            if when > target:
                break
            self.clock.now = max(self.clock.now, when)
            self.step(slot, once=True)
        self.clock.now = target

    def outage(self, seconds: float, second_first: bool) -> None:
        for proc in self.procs:
            if proc is not None:
                held = proc.consumer.proto.held()
                self.moved.update((h.entry_id, proc.incarnation) for h in held)
        self.redis.down = True
        self.advance(seconds)
        self.redis.down = False
        self.advance(0.0, second_first)


actions = st.one_of(
    st.tuples(st.just("publish"), st.integers(1, 6)),
    st.tuples(st.just("malformed"), st.just(0)),
    st.tuples(st.just("step"), st.integers(0, 1)),
    st.tuples(
        st.just("advance"), st.sampled_from([0.1, 1.0, 2.6, 5.0, 12.0]), st.booleans()
    ),
    st.tuples(st.just("ok"), st.integers(0, 1), st.integers(0, 7)),
    st.tuples(st.just("fail"), st.integers(0, 1), st.integers(0, 7)),
    st.tuples(st.just("crash"), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("outage"), st.sampled_from([0.5, 3.0, 15.0]), st.booleans()),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(actions, max_size=40))
def test_durable_delivery_invariants(program: list[tuple[object, ...]]) -> None:
    world = World()
    for action in program:
        kind = action[0]
        if kind == "publish":
            for _ in range(int(action[1])):  # type: ignore[call-overload]
                world.published.append(world.redis.xadd(STREAM, {b"event": b"e"}))
        elif kind == "malformed":
            world.published.append(world.redis.xadd(STREAM, {b"other": b"x"}))
        elif kind == "step":
            world.step(int(action[1]))  # type: ignore[call-overload]
        elif kind == "advance":
            world.advance(float(action[1]), bool(action[2]))  # type: ignore[arg-type]
        elif kind in ("ok", "fail"):
            world.finish(int(action[1]), int(action[2]), str(kind))  # type: ignore[call-overload]
        elif kind == "crash":
            world.start(int(action[1]), new_name=bool(action[2]))  # type: ignore[call-overload]
        elif kind == "outage":
            world.outage(float(action[1]), bool(action[2]))  # type: ignore[arg-type]
    # Heal: every handler now succeeds; run long enough for every claim.
    for _ in range(60):
        for slot in range(2):
            while True:
                proc = world.procs[slot]
                if proc is None or not proc.consumer.running:
                    break
                world.finish(slot, 0, "ok")
        world.advance(2.0)
    dead = world.dead_ids()
    for entry in world.published:
        assert entry in world.handled_ok or entry in dead, f"{entry!r} lost"
    assert world.redis.pel(STREAM, GROUP) == {}
    # No duplicate of an entry handled without error, unless its holder
    # crashed or an outage happened while it was held.
    # An entry is delivered again only after a failed delivery, or when its
    # holder crashed, or (to another consumer) after an outage.
    for entry, deliveries in world.deliveries.items():
        for (who, _), (then, _) in itertools.pairwise(deliveries):
            excused = (
                (entry, who) in world.failed
                or entry in world.excused
                or ((entry, who) in world.moved and then != who)
            )
            assert excused, f"{entry!r} delivered again without a failure"
