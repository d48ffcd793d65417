"""A master of the cluster dies: its replica takes over and delivery resumes.

Three masters with one replica each; the test kills one master by pid
(SIGKILL) and keeps publishing on a channel of every shard. Events published
during the failover may be lost (Pub/Sub: at most once); the test checks that
new events on the dead master's channel are delivered again once its replica
is promoted, that the broker subscribed there by itself, and that the other
shards went on delivering. It polls with generous timeouts: no timing asserts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import redis
from _cluster import LocalCluster
from _redis_support import Inbox, OrderPlaced, publisher_for, unique_prefix, wait_until
from redis.cluster import RedisCluster

from eventspype.broker.redis import RedisBroker

pytestmark = pytest.mark.slow


@pytest.fixture
def clients(redis_cluster_with_replicas: LocalCluster) -> Iterator[list[RedisCluster]]:
    made = [redis_cluster_with_replicas.client() for _ in range(2)]
    yield made
    for client in made:
        client.close()


def replica_of(cluster: LocalCluster, port: int) -> int:
    info = cluster.node(port).info("replication")
    return int(info["slave0"]["port"])


def test_delivery_resumes_after_the_replica_takes_over(
    redis_cluster_with_replicas: LocalCluster,
    clients: list[RedisCluster],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = redis_cluster_with_replicas
    prefix = unique_prefix()
    tags = {
        port: name[len(prefix) :]
        for port, name in cluster.channels_on_distinct_masters(f"{prefix}F").items()
    }
    victim = next(iter(tags))
    replica = replica_of(cluster, victim)
    victim_tag = tags[victim]
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")

    with (
        RedisBroker(
            clients[0], channel_prefix=prefix, reconnect_delay=(0.05, 1.0)
        ) as rx,
        RedisBroker(clients[1], channel_prefix=prefix) as tx,
    ):
        rx.register_event_class(OrderPlaced)
        inboxes = {tag: Inbox() for tag in tags.values()}
        publishers = {}
        for tag, inbox in inboxes.items():
            publisher_for(rx, tag, OrderPlaced).add_subscriber(inbox.subscriber)
            publishers[tag] = publisher_for(tx, tag, OrderPlaced)
        for publisher in publishers.values():
            publisher.publish(OrderPlaced(0, 1.0))
        for inbox in inboxes.values():
            inbox.wait_for(1)

        cluster.node(victim).kill()

        order_id = 0
        sent: dict[str, list[int]] = {tag: [0] for tag in tags.values()}

        def new_events_arrive_on_every_shard() -> bool:
            nonlocal order_id
            order_id += 1
            for tag, publisher in publishers.items():
                try:
                    publisher.publish(OrderPlaced(order_id, 1.0))
                except (redis.RedisError, OSError):
                    continue  # the dead master's shard refuses until the failover
                sent[tag].append(order_id)
            time.sleep(0.05)
            return all(
                any(event.order_id > 0 for event in inbox.events)
                for inbox in inboxes.values()
            ) and any(event.order_id > 1 for event in inboxes[victim_tag].events)

        wait_until(new_events_arrive_on_every_shard, timeout=90, interval=0.2)

        # The replica serves the slot now, and the broker subscribed there.
        assert cluster.master_of(prefix + victim_tag) == replica
        shard_client = cluster.node(replica).client()
        try:
            reply = shard_client.execute_command(
                "PUBSUB", "SHARDNUMSUB", prefix + victim_tag
            )
        finally:
            shard_client.close()
        assert int(reply[1]) == 1
        # The other shards lost nothing meanwhile; the victim's lost at most
        # what was published while it was down; order held everywhere.
        for port, tag in tags.items():
            inbox = inboxes[tag]
            if port != victim:
                wait_until(lambda i=inbox, t=tag: len(i.events) >= len(sent[t]))
                assert [event.order_id for event in inbox.events] == sent[tag]
            ids = [event.order_id for event in inbox.events]
            assert ids == sorted(ids)
            assert set(ids) <= set(sent[tag])
        rx.wait_until_subscribed(30)
        stats = rx.stats()
        assert stats.reconnects >= 1
        assert stats.connected
        assert stats.subscribed == len(tags)
        assert stats.last_connection_error is not None
    assert "re-subscribed" in caplog.text
