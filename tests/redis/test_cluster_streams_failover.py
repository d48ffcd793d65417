"""RedisStreamBroker on a cluster whose master dies: the replica takes over the streams.

Three masters with one replica each (``redis_cluster_with_replicas``, a
cluster of this test alone). The test holds one event of the victim's stream
pending (its subscriber raises), waits until the replica has everything (a
write, then ``WAIT 1`` on the same connection: replication is asynchronous,
and what the replica never received is lost with the master; the docs say
so), kills the master by pid and keeps publishing on a stream of every
shard. Once the replica is promoted, the broker reads the victim's stream
there again: new events arrive, the pending one is claimed and delivered
again, and no event whose ``publish()`` returned is lost on any shard.
Generous polls, no timing asserts.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from _cluster import LocalCluster
from _redis_support import OrderPlaced, publisher_for, unique_prefix, wait_until
from redis.cluster import RedisCluster

from eventspype import FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker

pytestmark = pytest.mark.slow

HELD = 999  # the order id the subscriber refuses until the master is dead


@pytest.fixture
def clients(redis_cluster_with_replicas: LocalCluster) -> Iterator[list[RedisCluster]]:
    made = [redis_cluster_with_replicas.client() for _ in range(2)]
    yield made
    for client in made:
        client.close()


class Recorder:
    """Records ``(tag, order_id)``; raises on ``HELD`` while ``holding``."""

    def __init__(self) -> None:
        self.holding = True
        self._lock = threading.Lock()
        self.seen: dict[str, set[int]] = {}

    def __call__(self, event: Any, event_tag: Any, caller: Any) -> None:
        if event.order_id == HELD and self.holding:
            raise RuntimeError("not yet")
        with self._lock:
            self.seen.setdefault(str(event_tag), set()).add(event.order_id)

    def of(self, tag: str) -> set[int]:
        with self._lock:
            return set(self.seen.get(tag, ()))


def _diagnosis(rx: Any, port: int, prefix: str, tag: str) -> str:
    """What the promoted replica and the reader hold (for a failure message)."""
    lines = []
    node = redis.Redis(port=port, socket_timeout=5)
    try:
        for key in node.keys(f"{prefix}*"):
            if node.type(key) != b"stream":
                continue
            lines.append(
                f"{key!r} XPENDING {node.xpending_range(key, 'g', '-', '+', 10)}"
            )
            lines.append(f"{key!r} XINFO CONSUMERS {node.xinfo_consumers(key, 'g')}")
            lines.append(f"{key!r} XINFO GROUPS {node.xinfo_groups(key)}")
            lines.append(f"{key!r} first entries {node.xrange(key, count=3)}")
    except redis.RedisError as error:
        lines.append(f"port {port}: {error!r}")
    finally:
        node.close()
    reader = rx._reader
    for name, shard in list(getattr(reader, "_shards", {}).items()):
        lines.append(f"shard {name} node={shard.node} connects={shard.connects}")
    for one in reader.readers():
        lines.append(
            f"reader streams={list(one.streams)} running={one.running} "
            f"health={one.health()} held={one.proto.held()}"
        )
    lines.append(f"stats {rx.stats()}")
    return "\n".join(lines)


def test_the_promoted_replica_s_streams_are_read_and_pending_entries_redelivered(
    redis_cluster_with_replicas: LocalCluster,
    clients: list[RedisCluster],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = redis_cluster_with_replicas
    prefix = unique_prefix()
    tags = cluster.channels_on_distinct_masters(f"F{uuid.uuid4().hex[:8].upper()}")
    victim = next(iter(tags))
    victim_tag = tags[victim]
    replica = int(cluster.node(victim).info("replication")["slave0"]["port"])
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    recorder = Recorder()
    subscriber = FunctionalEventSubscriber(recorder)

    with (
        RedisStreamBroker(
            clients[0],
            channel_prefix=prefix,
            group="g",
            claim_idle=1.0,
            max_deliveries=1000,
            reconnect_delay=(0.05, 1.0),
        ) as rx,
        RedisStreamBroker(clients[1], channel_prefix=prefix) as tx,
    ):
        rx.register_event_class(OrderPlaced)
        publishers = {}
        for tag in tags.values():
            publisher_for(rx, tag, OrderPlaced).add_subscriber(subscriber)
            publishers[tag] = publisher_for(tx, tag, OrderPlaced)
        sent: dict[str, set[int]] = {tag: {0} for tag in tags.values()}
        for publisher in publishers.values():
            publisher.publish(OrderPlaced(0, 1.0))
        wait_until(lambda: all(recorder.of(t) == {0} for t in tags.values()), 30)

        publishers[victim_tag].publish(OrderPlaced(HELD, 1.0))
        wait_until(lambda: rx.stats().channels[victim_tag].pending == 1, 30)
        master = cluster.node(victim).client()
        try:  # the replica has the entry and the group's pending list
            # WAIT waits for this connection's own writes only (a connection
            # that wrote nothing gets the count of replicas at once): write in
            # the stream's slot first; the replication stream is in order.
            master.set(f"{prefix}{{{victim_tag}}}:replicated", b"1")
            assert int(master.execute_command("WAIT", 1, 10_000)) == 1
        finally:
            master.close()

        cluster.node(victim).kill()
        recorder.holding = False

        order_id = 0

        def new_events_arrive_on_every_shard() -> bool:
            nonlocal order_id
            order_id += 1
            for tag, publisher in publishers.items():
                try:
                    publisher.publish(OrderPlaced(order_id, 1.0))
                except (redis.RedisError, OSError):
                    continue  # the dead master's shard refuses until the failover
                sent[tag].add(order_id)
            time.sleep(0.05)
            return HELD in recorder.of(victim_tag) and all(
                max(recorder.of(tag)) > 0 for tag in tags.values()
            )

        try:
            wait_until(new_events_arrive_on_every_shard, timeout=90, interval=0.2)
        except AssertionError as error:
            raise AssertionError(
                f"{error}\n{_diagnosis(rx, replica, prefix, victim_tag)}"
            ) from None

        # The replica serves the stream now, with every entry published.
        assert cluster.master_of(victim_tag) == replica
        # No event whose publish() returned is lost, on any shard.
        for tag in tags.values():
            wait_until(lambda t=tag: sent[t] <= recorder.of(t), timeout=30)
        wait_until(
            lambda: all(rx.stats().channels[t].pending == 0 for t in tags.values()),
            timeout=30,
        )
        stats = rx.stats()
        assert stats.reconnects >= 1
        assert stats.redelivered >= 1
    assert "reconnected" in caplog.text
