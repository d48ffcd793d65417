"""Which shard listener serves a channel, after failovers and reshardings (no server).

A fake cluster client says which node owns each channel and holds the
listener threads where they connect, so that a failover or a resharding
happens exactly between two steps. Regression tests
of issue 16: after a failover a second listener (and connection) was made for
the promoted node; a resharding settled a pending ``subscribe()`` as done
before the channel was subscribed anywhere.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from _redis_support import wait_until

from eventspype.broker.redis._wire.stats import Counters
from eventspype.broker.redis.pubsub.listener import Listener
from eventspype.broker.redis.pubsub.shard_routes import ShardRoutes
from eventspype.broker.redis.pubsub.sharded import ShardedListener, moves_finished


class FakeCluster:
    """``get_node_from_key`` from a table; connecting blocks until released."""

    def __init__(self) -> None:
        self.owner: dict[bytes, str] = {}
        self.attempts: list[str] = []  # nodes the listeners tried to connect to
        self.gates: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.nodes_manager = SimpleNamespace(initialize=lambda: None)

    def get_node_from_key(self, channel: bytes) -> Any:
        return SimpleNamespace(name=self.owner[channel])

    def get_primaries(self) -> list[Any]:
        return [SimpleNamespace(name=name) for name in sorted(set(self.owner.values()))]

    def get_redis_connection(self, node: Any) -> Any:
        self.attempts.append(node.name)
        self.gates[node.name].wait(10)
        raise redis.ConnectionError(f"test: node {node.name} is not there")

    def release_all(self) -> None:
        for gate in list(self.gates.values()):
            gate.set()


@pytest.fixture
def cluster() -> Iterator[tuple[FakeCluster, ShardedListener]]:
    fake = FakeCluster()
    holder = Holder()  # the listener holds its handlers weakly
    listener = ShardedListener(
        fake,
        holder.deliver,
        holder.tidy,
        Counters(),
        idle_timeout=0.1,
        health_check_interval=5.0,
        reconnect_delay=(0.01, 0.02),
    )
    yield fake, listener
    fake.release_all()
    listener.request_stop()
    assert listener.join(10)


class Holder:
    """The broker's side: handlers that do nothing."""

    def deliver(self, channel: bytes, data: Any) -> None:
        del channel, data

    def tidy(self) -> None:
        pass


def test_after_a_failover_the_listener_serves_the_promoted_node(
    cluster: tuple[FakeCluster, ShardedListener],
) -> None:
    fake, listener = cluster
    fake.owner = {b"x": "A", b"y": "B"}
    listener.add(b"x")
    wait_until(lambda: fake.attempts == ["A"])
    (shard,) = listener.shards

    fake.owner[b"x"] = "B"  # A died, its replica B took over its slots
    fake.gates["A"].set()  # the connection to A fails; the listener goes to B
    wait_until(lambda: fake.attempts[-1:] == ["B"])

    listener.add(b"y")  # a channel of B: the listener already there takes it
    assert listener.shards == (shard,)
    assert set(shard._proto.wanted) == {b"x", b"y"}


def test_a_failed_over_listener_hands_its_channels_over_and_retires(
    cluster: tuple[FakeCluster, ShardedListener],
) -> None:
    fake, listener = cluster
    fake.owner = {b"x": "A", b"y": "B"}
    listener.add(b"x")
    listener.add(b"y")
    wait_until(lambda: sorted(fake.attempts) == ["A", "B"])
    first, second = listener.shards  # made for A, then for B

    fake.owner[b"x"] = "B"  # A died, B took over its slots
    fake.gates["A"].set()
    wait_until(lambda: listener.shards == (second,))
    assert set(second._proto.wanted) == {b"x", b"y"}
    assert first.join(10)  # its thread ended: one connection to B, not two


def test_a_channel_moved_by_a_resharding_keeps_its_subscriber_waiting(
    cluster: tuple[FakeCluster, ShardedListener], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, listener = cluster
    fake.owner = {b"x1": "A", b"x2": "A", b"y": "A"}
    with monkeypatch.context() as patched:
        # Threads start once all three are routed (to A's listener).
        patched.setattr(Listener, "_start_thread", lambda self: None)
        listener.add(b"x1")
        listener.add(b"x2")
        waiting = listener.add(b"y")
    assert waiting is not None
    (first,) = listener.shards

    fake.owner[b"y"] = "B"  # resharded before the listener subscribed
    listener.ensure_running()
    wait_until(lambda: "B" in fake.attempts)  # y's new listener connects
    second = listener.shards[1]
    assert listener.channels_of(second) == [b"y"]
    assert sorted(listener.channels_of(first)) == [b"x1", b"x2"]
    # Not subscribed anywhere yet: subscribe() must keep waiting (it returned).
    assert not waiting._done.is_set()
    fake.release_all()  # the connection to B fails: now the waiter is released
    wait_until(lambda: waiting._done.is_set())
    assert waiting.ok is False


class _Shard:
    """A shard listener reduced to what the sharded wait asks of it."""

    def __init__(self, *wanted: bytes) -> None:
        self.wanted = set(wanted)
        self.waited = 0

    def wants(self, channel: bytes) -> bool:
        return channel in self.wanted

    def wait_until_subscribed(self, timeout: float) -> None:
        self.waited += 1


def test_a_move_in_flight_is_not_finished() -> None:
    # A move changes the route first, the shards' wanted channels after.
    old, new = _Shard(b"a"), _Shard()
    assert moves_finished({b"a": old})
    assert not moves_finished({b"a": new})
    new.wanted.add(b"a")
    assert moves_finished({b"a": new})


def test_the_wait_waits_again_for_a_shard_that_appeared_during_the_pass() -> None:
    # Regression: wait_until_subscribed() waited for the shards it saw when it
    # started; a channel moved meanwhile (MOVED, a failover) went to a shard it
    # never waited for, and the wait returned before the channel was subscribed.
    first, second = _Shard(b"a"), _Shard()
    listener = ShardedListener.__new__(ShardedListener)
    table: ShardRoutes[Any] = ShardRoutes(None, _Shard)
    table._all = (first,)
    table._routes = {b"a": first}
    listener._table = table

    def moved(timeout: float) -> None:
        # While the first shard is waited for, "a" moves to a new shard.
        first.waited += 1
        if first.waited == 1:
            table._all = (first, second)
            table._routes = {b"a": second}
            second.wanted.add(b"a")

    first.wait_until_subscribed = moved  # type: ignore[method-assign]
    listener.wait_until_subscribed(5)
    assert second.waited >= 1
    assert first.waited == 2
