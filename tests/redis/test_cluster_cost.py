"""What an event costs the cluster: SPUBLISH stays on one shard, PUBLISH does not.

Read from each node's ``INFO commandstats`` (the commands it executed) and
``CLUSTER INFO`` (the Pub/Sub messages it received over the cluster bus). A
classic PUBLISH is executed by one node and relayed by the bus to every other
node; an SPUBLISH is executed by the master owning the channel's slot and
relayed only to that master's replicas (this cluster has none).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from _cluster import LocalCluster
from _redis_support import Inbox, OrderPlaced, publisher_for, unique_prefix, wait_until
from redis.cluster import RedisCluster

from eventspype.broker.redis import RedisBroker

pytestmark = pytest.mark.slow

EVENTS = 20


def node_work(cluster: LocalCluster) -> dict[int, dict[str, int]]:
    """Per node: Pub/Sub commands executed and bus messages received, so far."""
    work: dict[int, dict[str, int]] = {}
    for node in cluster.nodes:
        commands = node.info("commandstats")
        client = node.client()
        try:
            info = client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        bus = dict(re.findall(r"cluster_stats_messages_(\w+?)_received:(\d+)", text))
        work[node.port] = {
            "publish": int(commands.get("cmdstat_publish", {}).get("calls", 0)),
            "spublish": int(commands.get("cmdstat_spublish", {}).get("calls", 0)),
            "publish_relayed": int(bus.get("publish", 0)),
            "publishshard_relayed": int(bus.get("publishshard", 0)),
        }
    return work


def delta(
    after: dict[int, dict[str, int]], before: dict[int, dict[str, int]]
) -> dict[int, dict[str, int]]:
    return {
        port: {key: after[port][key] - before[port][key] for key in after[port]}
        for port in after
    }


@pytest.fixture
def clients(redis_cluster: LocalCluster) -> Iterator[list[RedisCluster]]:
    made = [redis_cluster.client() for _ in range(4)]
    yield made
    for client in made:
        client.close()


def test_a_sharded_event_costs_one_shard_and_a_classic_one_every_node(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    prefix = unique_prefix()
    tag = "COST"
    owner = redis_cluster.master_of(prefix + tag)
    before = node_work(redis_cluster)

    with (
        RedisBroker(clients[0], channel_prefix=prefix) as receiver,
        RedisBroker(clients[1], channel_prefix=prefix) as sender,
        RedisBroker(clients[2], channel_prefix=prefix, sharded_pubsub=False) as old_rx,
        RedisBroker(clients[3], channel_prefix=prefix, sharded_pubsub=False) as old_tx,
    ):
        for broker in (receiver, old_rx):
            broker.register_event_class(OrderPlaced)
        sharded, classic = Inbox(), Inbox()
        publisher_for(receiver, tag, OrderPlaced).add_subscriber(sharded.subscriber)
        publisher_for(old_rx, tag, OrderPlaced).add_subscriber(classic.subscriber)

        # Sharded first: its bus traffic, if there were any, would arrive
        # before the classic traffic that the test waits for below.
        sharded_publisher = publisher_for(sender, tag, OrderPlaced)
        for order_id in range(EVENTS):
            sharded_publisher.publish(OrderPlaced(order_id, 1.0))
        assert len(sharded.wait_for(EVENTS)) == EVENTS
        classic_publisher = publisher_for(old_tx, tag, OrderPlaced)
        for order_id in range(EVENTS):
            classic_publisher.publish(OrderPlaced(order_id, 1.0))
        assert len(classic.wait_for(EVENTS)) == EVENTS

        def relayed_everywhere() -> bool:
            work = delta(node_work(redis_cluster), before)
            return all(
                w["publish"] + w["publish_relayed"] >= EVENTS for w in work.values()
            )

        wait_until(relayed_everywhere, timeout=30)
        work = delta(node_work(redis_cluster), before)

    # Each event was delivered once to each broker (no duplicate through the bus).
    assert receiver.stats().delivered == EVENTS
    assert old_rx.stats().delivered == EVENTS
    # Sharded: SPUBLISH ran on the owner only and crossed no cluster bus link.
    for port, w in work.items():
        expected = EVENTS if port == owner else 0
        assert (port, w["spublish"]) == (port, expected)
        assert (port, w["publishshard_relayed"]) == (port, 0)
    # Classic: one node ran each PUBLISH and every node got each one.
    assert sum(w["publish"] for w in work.values()) == EVENTS
    for port, w in work.items():
        assert (port, w["publish"] + w["publish_relayed"]) == (port, EVENTS)
