"""AsyncRedisBroker on a local Redis Cluster: sharded Pub/Sub from asyncio.

redis-py's asyncio cluster client has no sharded Pub/Sub before 8.0: the
broker opens one connection per master itself, one listener task per shard,
driven by the same protocol core as the threads. Real ``redis-server``
processes started by the fixtures of ``conftest.py`` (see ``_cluster.py``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
from _cluster import LocalCluster
from _redis_support import (
    OrderPlaced,
    close_client,
    publisher_for,
    run_bounded,
    unique_prefix,
)
from test_async_broker import Inbox
from test_cluster_pubsub import shard_subscribers, tags_on_every_master

from eventspype.broker.redis import AsyncRedisBroker, RedisBroker

pytestmark = pytest.mark.slow


def async_client(cluster: LocalCluster) -> redis.asyncio.cluster.RedisCluster:
    startup = [redis.asyncio.cluster.ClusterNode("127.0.0.1", p) for p in cluster.ports]
    return redis.asyncio.cluster.RedisCluster(
        startup_nodes=startup, socket_timeout=5, socket_connect_timeout=2
    )


async def eventually(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{condition}: not met within {timeout} s")
        await asyncio.sleep(0.05)


def test_events_of_every_shard_arrive_one_task_per_master(
    redis_cluster: LocalCluster,
) -> None:
    prefix = unique_prefix()
    tags = tags_on_every_master(redis_cluster, prefix)

    async def scenario() -> None:
        rx_client, tx_client = async_client(redis_cluster), async_client(redis_cluster)
        receiver = AsyncRedisBroker(rx_client, channel_prefix=prefix)
        sender = AsyncRedisBroker(tx_client, channel_prefix=prefix)
        receiver.register_event_class(OrderPlaced)
        inbox = Inbox()
        for tag in tags.values():
            publisher_for(receiver, tag, OrderPlaced).add_subscriber(inbox.subscriber)
        await receiver.wait_until_subscribed(10)
        for port, tag in tags.items():  # SSUBSCRIBE on the master owning it
            assert shard_subscribers(redis_cluster, port, prefix + tag) == 1
        assert len(receiver._listener.shards) == len(tags)
        publishers = [publisher_for(sender, tag, OrderPlaced) for tag in tags.values()]
        for order_id in range(5):
            for publisher in publishers:
                await publisher.publish_async(OrderPlaced(order_id, 1.0))
        publishers[0].publish(OrderPlaced(5, 1.0))  # queued, SPUBLISH in a batch
        await sender.flush()
        events = await inbox.wait_for(5 * len(tags) + 1)
        assert sorted(e.order_id for e in events) == sorted(
            [*(i for i in range(5) for _ in tags), 5]
        )
        stats = receiver.stats()
        assert stats.connected
        assert stats.subscribed == len(tags)
        await sender.aclose()
        await receiver.aclose()
        for port, tag in tags.items():
            assert shard_subscribers(redis_cluster, port, prefix + tag) == 0
        await close_client(rx_client)
        await close_client(tx_client)

    run_bounded(scenario, 60)


def test_async_and_threaded_cluster_brokers_hear_each_other(
    redis_cluster: LocalCluster,
) -> None:
    prefix = unique_prefix()
    tag = next(iter(tags_on_every_master(redis_cluster, prefix).values()))
    sync_client = redis_cluster.client()
    threaded = RedisBroker(sync_client, channel_prefix=prefix)
    threaded.register_event_class(OrderPlaced)

    async def scenario() -> None:
        client = async_client(redis_cluster)
        broker = AsyncRedisBroker(client, channel_prefix=prefix)
        broker.register_event_class(OrderPlaced)
        heard_async, heard_threaded = Inbox(), Inbox()
        publisher_for(broker, tag, OrderPlaced).add_subscriber(heard_async.subscriber)
        await broker.wait_until_subscribed(10)
        publisher_for(threaded, tag, OrderPlaced).add_subscriber(
            heard_threaded.subscriber
        )
        publisher_for(threaded, tag, OrderPlaced).publish(OrderPlaced(1, 1.0))
        await publisher_for(broker, tag, OrderPlaced).publish_async(OrderPlaced(2, 1.0))
        assert [e.order_id for e in await heard_async.wait_for(2)] == [1, 2]
        await eventually(lambda: len(heard_threaded.events) >= 2)
        assert [e.order_id for e in heard_threaded.events] == [1, 2]
        await broker.aclose()
        await close_client(client)

    try:
        run_bounded(scenario, 60)
    finally:
        threaded.close()
        sync_client.close()


def test_delivery_resumes_after_a_failover_without_a_second_listener(
    redis_cluster_with_replicas: LocalCluster,
) -> None:
    cluster = redis_cluster_with_replicas
    prefix = unique_prefix()
    tags = tags_on_every_master(cluster, prefix)
    victim = next(iter(tags))
    victim_tag = tags[victim]

    async def scenario() -> None:
        rx_client, tx_client = async_client(cluster), async_client(cluster)
        receiver = AsyncRedisBroker(
            rx_client, channel_prefix=prefix, reconnect_delay=(0.05, 1.0)
        )
        sender = AsyncRedisBroker(tx_client, channel_prefix=prefix)
        receiver.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher_for(receiver, victim_tag, OrderPlaced).add_subscriber(
            inbox.subscriber
        )
        await receiver.wait_until_subscribed(10)
        publisher = publisher_for(sender, victim_tag, OrderPlaced)
        await publisher.publish_async(OrderPlaced(0, 1.0))
        await inbox.wait_for(1)
        (shard,) = receiver._listener.shards

        cluster.node(victim).kill()
        order_id = 0
        deadline = time.monotonic() + 90
        while not any(e.order_id > 0 for e in inbox.events):
            assert time.monotonic() < deadline, "delivery did not resume"
            order_id += 1
            try:
                await publisher.publish_async(OrderPlaced(order_id, 1.0))
            except (redis.RedisError, OSError):
                await tx_client.nodes_manager.initialize()
            await asyncio.sleep(0.2)
        # The listener that reconnected serves the promoted replica now: a
        # new channel of that node goes to it, not to a second listener.
        new_tag = next(
            name[len(prefix) :]
            for port, name in cluster.channels_on_distinct_masters(f"{prefix}G").items()
            if port == cluster.master_of(prefix + victim_tag)
        )
        later = Inbox()
        publisher_for(receiver, new_tag, OrderPlaced).add_subscriber(later.subscriber)
        await receiver.wait_until_subscribed(30)
        assert receiver._listener.shards == (shard,)
        assert receiver.stats().reconnects >= 1
        await sender.aclose()
        await receiver.aclose()
        await close_client(rx_client)
        await close_client(tx_client)

    run_bounded(scenario, 150)
