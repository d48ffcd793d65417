"""RedisStreamBroker on Redis Cluster: one stream per channel, spread over the shards.

A local cluster of three masters (``redis_cluster``). Each test uses one tag
per master, so its channels' streams (``<prefix>{<TAG>}``) live on different
shards; the tests look at each master directly to check where every stream,
and every dead-letter stream, is. Waits are generous polls, no timing asserts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cluster import LocalCluster
from _redis_support import Inbox, OrderPlaced, publisher_for, unique_prefix, wait_until
from redis.cluster import RedisCluster
from redis.crc import key_slot

from eventspype import FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker

pytestmark = pytest.mark.slow

PEER = Path(__file__).resolve().parent / "_stream_cluster_peer.py"


def tags_on_every_master(cluster: LocalCluster) -> dict[int, str]:
    """Master port -> a new tag (upper case, as publications make it) it owns."""
    return cluster.channels_on_distinct_masters(f"S{uuid.uuid4().hex[:8].upper()}")


def master_holds(cluster: LocalCluster, port: int, key: str) -> int:
    """XLEN of ``key`` asked of the node ``port`` itself (0: not there)."""
    client = cluster.node(port).client()
    try:
        return int(client.xlen(key))
    finally:
        client.close()


@pytest.fixture
def client(redis_cluster: LocalCluster) -> Iterator[RedisCluster]:
    made = redis_cluster.client()
    yield made
    made.close()


def test_the_stream_key_keeps_the_channel_as_hash_tag(client: RedisCluster) -> None:
    broker = RedisStreamBroker(client, channel_prefix="shop:")
    try:
        assert broker.stream_key("ORDER_PLACED") == "shop:{ORDER_PLACED}"
        stream = broker.stream_key("ORDER_PLACED").encode()
        assert key_slot(stream) == key_slot(stream + b":dead")
        assert key_slot(stream) == key_slot(b"ORDER_PLACED")
    finally:
        broker.close()


def test_each_channel_has_its_stream_on_the_master_of_its_slot(
    redis_cluster: LocalCluster, client: RedisCluster
) -> None:
    prefix = unique_prefix()
    placed = list(tags_on_every_master(redis_cluster).items())
    # A second tag on the first master, in another slot: that master's reader
    # reads two slots (no one XREADGROUP may name both: CROSSSLOT).
    port, tag = placed[0]
    extra = next(
        f"{tag}X{n}"
        for n in range(10_000)
        if redis_cluster.master_of(f"{tag}X{n}") == port
        and key_slot(f"{tag}X{n}".encode()) != key_slot(tag.encode())
    )
    placed.append((port, extra))
    with RedisStreamBroker(client, channel_prefix=prefix, group="g") as broker:
        broker.register_event_class(OrderPlaced)
        inbox = Inbox()
        publishers = {}
        for _, tag in placed:
            publisher_for(broker, tag, OrderPlaced).add_subscriber(inbox.subscriber)
            publishers[tag] = publisher_for(broker, tag, OrderPlaced)
        for order_id, publisher in enumerate(publishers.values()):
            publisher.publish(OrderPlaced(order_id, 1.0))
        with broker.batch():  # one cluster pipeline over every shard
            for order_id, publisher in enumerate(publishers.values(), 10):
                publisher.publish(OrderPlaced(order_id, 1.0))

        received = inbox.wait_for(8, timeout=30)
        assert sorted(e.order_id for e in received) == [0, 1, 2, 3, 10, 11, 12, 13]
        for port, tag in placed:
            key = f"{prefix}{{{tag}}}"
            assert master_holds(redis_cluster, port, key) == 2
        wait_until(lambda: broker.stats().acknowledged == 8, timeout=30)
        stats = broker.stats()
        assert [stats.channels[tag].pending for _, tag in placed] == [0, 0, 0, 0]
        assert not any(stats.dropped.values())


def test_channels_on_every_shard_reach_one_group_across_processes(
    redis_cluster: LocalCluster, client: RedisCluster
) -> None:
    prefix = unique_prefix()
    tags = tags_on_every_master(redis_cluster)
    ports = ",".join(map(str, redis_cluster.ports))
    peers = [
        subprocess.Popen(
            [sys.executable, str(PEER), ports, prefix, ",".join(tags.values()), "g"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    lines: list[list[str]] = [[], []]
    readers = [
        threading.Thread(target=_read_lines, args=(peer, out), daemon=True)
        for peer, out in zip(peers, lines, strict=True)
    ]
    for reader in readers:
        reader.start()
    try:
        wait_until(lambda: all("READY" in out for out in lines), timeout=60)
        count = 40
        with RedisStreamBroker(client, channel_prefix=prefix) as publishing:
            for order_id in range(count):
                for tag in tags.values():
                    publisher_for(publishing, tag, OrderPlaced).publish(
                        OrderPlaced(order_id, 1.0)
                    )
        keys = {port: f"{prefix}{{{tag}}}" for port, tag in tags.items()}

        def all_acknowledged() -> bool:
            for port, key in keys.items():
                node = redis_cluster.node(port).client()
                try:
                    [group] = node.xinfo_groups(key)
                finally:
                    node.close()
                if group["pending"] or group["lag"]:
                    return False
            return True

        wait_until(all_acknowledged, timeout=60, interval=0.1)
    finally:
        for peer in peers:
            assert peer.stdin is not None
            peer.stdin.close()
        for peer in peers:
            peer.wait(30)
        for reader in readers:
            reader.join(10)

    got = [json.loads(line) for out in lines for line in out if line != "READY"]
    expected = {(tag, order_id) for tag in tags.values() for order_id in range(count)}
    assert {(item["tag"], item["order_id"]) for item in got} == expected
    assert all(peer.returncode == 0 for peer in peers)


def _read_lines(peer: subprocess.Popen[str], out: list[str]) -> None:
    assert peer.stdout is not None
    for line in peer.stdout:
        out.append(line.strip())


class Flaky:
    """A subscriber that raises while ``failing`` is set."""

    def __init__(self) -> None:
        self.failing = True
        self.handled: list[Any] = []

    def __call__(self, event: Any) -> None:
        if self.failing:
            raise RuntimeError(f"cannot handle {event}")
        self.handled.append(event)


def test_dead_letters_and_republish_stay_on_each_stream_s_shard(
    redis_cluster: LocalCluster, client: RedisCluster
) -> None:
    prefix = unique_prefix()
    tags = tags_on_every_master(redis_cluster)
    flaky = Flaky()
    subscriber = FunctionalEventSubscriber(flaky, with_event_info=False)
    with RedisStreamBroker(
        client, channel_prefix=prefix, group="g", claim_idle=0.2, max_deliveries=2
    ) as broker:
        broker.register_event_class(OrderPlaced)
        for order_id, tag in enumerate(tags.values()):
            publisher = publisher_for(broker, tag, OrderPlaced)
            publisher.add_subscriber(subscriber)
            publisher.publish(OrderPlaced(order_id, 1.0))

        wait_until(
            lambda: all(len(broker.dead_letters(tag)) == 1 for tag in tags.values()),
            timeout=60,
            interval=0.1,
        )
        for port, tag in tags.items():
            [letter] = broker.dead_letters(tag)
            assert "RuntimeError: cannot handle" in letter.error
            assert letter.deliveries == 2
            stream = f"{prefix}{{{tag}}}"
            assert master_holds(redis_cluster, port, f"{stream}:dead") == 1
        wait_until(
            lambda: all(
                broker.stats().channels[tag].pending == 0 for tag in tags.values()
            ),
            timeout=30,
        )

        flaky.failing = False
        for tag in tags.values():
            assert broker.republish_dead_letters(tag) == 1
        wait_until(lambda: len(flaky.handled) >= 3, timeout=30)
        assert sorted(e.order_id for e in flaky.handled) == [0, 1, 2]
        for port, tag in tags.items():
            assert broker.dead_letters(tag) == []
            stream = f"{prefix}{{{tag}}}"
            assert master_holds(redis_cluster, port, f"{stream}:dead") == 0
            assert master_holds(redis_cluster, port, stream) == 2


def _node_id(cluster: LocalCluster, port: int) -> str:
    client = cluster.node(port).client()
    try:
        return str(client.execute_command("CLUSTER", "MYID").decode())
    finally:
        client.close()


def migrate_slot(cluster: LocalCluster, slot: int, source: int, target: int) -> None:
    """Move ``slot`` and its keys from master ``source`` to master ``target``.

    The resharding ``redis-cli --cluster reshard`` does: IMPORTING/MIGRATING,
    MIGRATE of every key (a stream keeps its groups and pending entries),
    then the new owner on every master.
    """
    source_id, target_id = _node_id(cluster, source), _node_id(cluster, target)
    src, dst = cluster.node(source).client(), cluster.node(target).client()
    try:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if keys:
            src.execute_command(
                "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys
            )
    finally:
        src.close()
        dst.close()
    for port in [target, source, *cluster.masters()]:
        client = cluster.node(port).client()
        try:
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        finally:
            client.close()
    wait_until(lambda: cluster.slot_owners()[slot] == target, timeout=30)


def test_a_stream_whose_slot_moves_is_read_on_its_new_master(
    redis_cluster: LocalCluster, client: RedisCluster
) -> None:
    prefix = unique_prefix()
    tags = tags_on_every_master(redis_cluster)
    source, target = list(tags)[:2]
    moving = tags[source]
    flaky = Flaky()
    flaky.failing = False
    held: list[Any] = []

    def handle(event: Any) -> None:
        if event.order_id == 99 and not held:
            held.append(event)
            raise RuntimeError("hold it pending")
        flaky(event)

    subscriber = FunctionalEventSubscriber(handle, with_event_info=False)
    with RedisStreamBroker(
        client, channel_prefix=prefix, group="g", claim_idle=1.0
    ) as broker:
        broker.register_event_class(OrderPlaced)
        publishers = {}
        for tag in tags.values():
            publishers[tag] = publisher_for(broker, tag, OrderPlaced)
            publishers[tag].add_subscriber(subscriber)
        publishers[moving].publish(OrderPlaced(99, 1.0))  # fails once: pending
        wait_until(lambda: held != [], timeout=30)

        migrate_slot(redis_cluster, key_slot(moving.encode()), source, target)
        for order_id, publisher in enumerate(publishers.values()):
            publisher.publish(OrderPlaced(order_id, 1.0))

        wait_until(lambda: len(flaky.handled) >= 4, timeout=60, interval=0.1)
        assert sorted(e.order_id for e in flaky.handled) == [0, 1, 2, 99]
        assert master_holds(redis_cluster, target, f"{prefix}{{{moving}}}") == 2
        old = redis_cluster.node(source).client()
        try:
            slot = key_slot(moving.encode())
            assert old.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        finally:
            old.close()
        wait_until(
            lambda: all(
                broker.stats().channels[tag].pending == 0 for tag in tags.values()
            ),
            timeout=30,
        )
