"""A slot moves to another master while a broker is subscribed to a channel in it.

Redis ends the shard subscriptions of a slot that leaves a node (it sends an
``sunsubscribe`` nobody asked for). The broker must notice, subscribe the
channel on its new master, and keep the other channels of the old master
where they are, without a reconnection loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis
from _cluster import LocalCluster
from _redis_support import Inbox, OrderPlaced, publisher_for, unique_prefix, wait_until
from redis.cluster import RedisCluster
from redis.crc import key_slot

from eventspype.broker.redis import RedisBroker

pytestmark = pytest.mark.slow


@pytest.fixture
def clients(redis_cluster: LocalCluster) -> Iterator[list[RedisCluster]]:
    made = [redis_cluster.client() for _ in range(2)]
    yield made
    for client in made:
        client.close()


def shard_subscribers(cluster: LocalCluster, port: int, channel: str) -> int:
    client = cluster.node(port).client()
    try:
        return int(client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])
    finally:
        client.close()


def move_slot(cluster: LocalCluster, slot: int, to_port: int) -> None:
    """Assign the (empty) ``slot`` to the master at ``to_port``, on every node."""
    target = cluster.node(to_port).client()
    try:
        node_id = target.execute_command("CLUSTER", "MYID")
    finally:
        target.close()
    for node in cluster.nodes:
        client = node.client()
        try:
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", node_id)
        finally:
            client.close()
    wait_until(lambda: cluster.slot_owners()[slot] == to_port)


def test_a_moved_channel_follows_its_slot_and_the_others_stay(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    cluster = redis_cluster
    prefix = unique_prefix()
    old, new = cluster.masters()[:2]
    # Two channels on the old master (different slots), one on the new one.
    names: dict[str, int] = {}
    index = 0
    while sorted(names.values()) != sorted([old, old, new]):
        tag = f"R{index}"
        owner = cluster.master_of(prefix + tag)
        if owner in (old, new) and list(names.values()).count(owner) < (
            2 if owner == old else 1
        ):
            names[tag] = owner
        index += 1
    moving, staying = (tag for tag, owner in names.items() if owner == old)

    with (
        RedisBroker(clients[0], channel_prefix=prefix) as rx,
        RedisBroker(clients[1], channel_prefix=prefix) as tx,
    ):
        rx.register_event_class(OrderPlaced)
        inboxes = {tag: Inbox() for tag in names}
        publishers = {tag: publisher_for(tx, tag, OrderPlaced) for tag in names}
        for tag, inbox in inboxes.items():
            publisher_for(rx, tag, OrderPlaced).add_subscriber(inbox.subscriber)

        move_slot(cluster, key_slot((prefix + moving).encode()), new)

        order_id = 0

        def every_channel_delivers_again() -> bool:
            nonlocal order_id
            order_id += 1
            for publisher in publishers.values():
                # The publishing client learns the new owner by itself.
                with contextlib.suppress(redis.RedisError, OSError):
                    publisher.publish(OrderPlaced(order_id, 1.0))
            return all(inbox.events for inbox in inboxes.values())

        wait_until(every_channel_delivers_again, timeout=60, interval=0.2)
        assert shard_subscribers(cluster, new, prefix + moving) == 1
        assert shard_subscribers(cluster, old, prefix + moving) == 0
        assert shard_subscribers(cluster, old, prefix + staying) == 1

        # Settled: another round is delivered without any reconnection.
        reconnects = rx.stats().reconnects
        counts = {tag: len(inbox.events) for tag, inbox in inboxes.items()}
        for publisher in publishers.values():
            publisher.publish(OrderPlaced(10_000, 1.0))
        for tag, inbox in inboxes.items():
            inbox.wait_for(counts[tag] + 1)
        assert rx.stats().reconnects == reconnects
