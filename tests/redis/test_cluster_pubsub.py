"""RedisBroker on a local Redis Cluster: sharded Pub/Sub (SPUBLISH/SSUBSCRIBE).

Every test runs on real ``redis-server`` processes that the fixtures of
``conftest.py`` start (see ``_cluster.py``); channels are chosen so that they
hash to different masters.
"""

from __future__ import annotations

import gc
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cluster import LocalCluster
from _redis_support import (
    LISTENER_THREAD,
    Inbox,
    OrderPlaced,
    publisher_for,
    unique_prefix,
    wait_until,
)
from redis.cluster import RedisCluster

from eventspype import FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker, SubscriptionRefused

pytestmark = pytest.mark.slow

PEER = Path(__file__).resolve().parent / "_cluster_peer.py"


@pytest.fixture
def clients(redis_cluster: LocalCluster) -> Iterator[list[RedisCluster]]:
    """Two cluster clients (one per broker, as two processes would have)."""
    made = [redis_cluster.client(), redis_cluster.client()]
    yield made
    for client in made:
        client.close()


def tags_on_every_master(cluster: LocalCluster, prefix: str) -> dict[int, str]:
    """Master port -> a tag whose channel ``<prefix><TAG>`` that master owns.

    Tags are upper-cased by ``EventPublication``, so the names are upper-case.
    """
    channels = cluster.channels_on_distinct_masters(f"{prefix}SHARD")
    return {port: name[len(prefix) :] for port, name in channels.items()}


def shard_subscribers(cluster: LocalCluster, port: int, channel: str) -> int:
    """``PUBSUB SHARDNUMSUB`` of ``channel`` on the node at ``port``."""
    client = cluster.node(port).client()
    try:
        reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
    finally:
        client.close()
    return int(reply[1])


def peer(
    mode: str, cluster: LocalCluster, prefix: str, tags: list[str], count: int
) -> Any:
    ports = ",".join(str(port) for port in cluster.ports)
    return subprocess.Popen(
        [sys.executable, str(PEER), mode, ports, prefix, ",".join(tags), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(process: Any) -> None:
    readable, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if readable else ""
    if line.strip() != "READY":
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"peer did not get ready: {line!r}\n{err}")


# -- delivery ----------------------------------------------------------------


def test_events_on_channels_of_every_shard_arrive_in_order(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    prefix = unique_prefix()
    tags = tags_on_every_master(redis_cluster, prefix)
    with (
        RedisBroker(clients[0], channel_prefix=prefix) as receiver,
        RedisBroker(clients[1], channel_prefix=prefix) as sender,
    ):
        receiver.register_event_class(OrderPlaced)
        inbox = Inbox()
        for tag in tags.values():
            publisher_for(receiver, tag, OrderPlaced).add_subscriber(inbox.subscriber)
        # One connection per shard, each on the master owning its channel.
        for port, tag in tags.items():
            assert shard_subscribers(redis_cluster, port, prefix + tag) == 1
        publishers = [publisher_for(sender, tag, OrderPlaced) for tag in tags.values()]
        for order_id in range(5):
            for publisher in publishers:
                publisher.publish(OrderPlaced(order_id, 1.0))
        inbox.wait_for(15)
        by_tag: dict[str, list[int]] = {}
        for event, tag, caller in inbox.items:
            assert caller is receiver
            by_tag.setdefault(str(tag), []).append(event.order_id)
        assert by_tag == {tag: [0, 1, 2, 3, 4] for tag in tags.values()}
        assert sender.stats().published == 15
        assert receiver.stats().delivered == 15


def test_a_batch_reaches_every_shard(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    prefix = unique_prefix()
    tags = list(tags_on_every_master(redis_cluster, prefix).values())
    with (
        RedisBroker(clients[0], channel_prefix=prefix) as receiver,
        RedisBroker(clients[1], channel_prefix=prefix) as sender,
    ):
        receiver.register_event_class(OrderPlaced)
        inbox = Inbox()
        for tag in tags:
            publisher_for(receiver, tag, OrderPlaced).add_subscriber(inbox.subscriber)
        publishers = [publisher_for(sender, tag, OrderPlaced) for tag in tags]
        with sender.batch():
            for index, publisher in enumerate(publishers):
                publisher.publish(OrderPlaced(index, 2.0))
        assert sorted(e.order_id for e in inbox.wait_for(3)) == [0, 1, 2]
        assert sender.stats().published == 3


def test_the_last_unsubscribe_ends_the_shard_subscription(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    prefix = unique_prefix()
    port, tag = next(iter(tags_on_every_master(redis_cluster, prefix).items()))
    with RedisBroker(clients[0], channel_prefix=prefix) as broker:
        broker.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher = publisher_for(broker, tag, OrderPlaced)
        publisher.add_subscriber(inbox.subscriber)
        assert shard_subscribers(redis_cluster, port, prefix + tag) == 1
        publisher.remove_subscriber(inbox.subscriber)
        wait_until(lambda: shard_subscribers(redis_cluster, port, prefix + tag) == 0)
        # Subscribed again: the same channel, the same shard.
        publisher.add_subscriber(inbox.subscriber)
        assert shard_subscribers(redis_cluster, port, prefix + tag) == 1
        publisher.publish(OrderPlaced(7, 1.0))
        assert inbox.wait_for(1) == [OrderPlaced(7, 1.0)]


def test_classic_pubsub_stays_available_on_a_cluster(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    """``sharded_pubsub=False``: PUBLISH/SUBSCRIBE, as eventspype 1.4.2 does."""
    prefix = unique_prefix()
    with (
        RedisBroker(clients[0], channel_prefix=prefix, sharded_pubsub=False) as rx,
        RedisBroker(clients[1], channel_prefix=prefix, sharded_pubsub=False) as tx,
    ):
        rx.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher_for(rx, "classic", OrderPlaced).add_subscriber(inbox.subscriber)
        publisher_for(tx, "classic", OrderPlaced).publish(OrderPlaced(1, 1.0))
        assert inbox.wait_for(1) == [OrderPlaced(1, 1.0)]
        owner = redis_cluster.master_of(prefix + "CLASSIC")
        assert shard_subscribers(redis_cluster, owner, prefix + "CLASSIC") == 0


def test_stats_and_wait_until_subscribed_cover_every_shard(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    prefix = unique_prefix()
    tags = list(tags_on_every_master(redis_cluster, prefix).values())
    with RedisBroker(clients[0], channel_prefix=prefix) as broker:
        broker.register_event_class(OrderPlaced)
        assert broker.stats().subscribed == 0
        inbox = Inbox()
        publishers = [publisher_for(broker, tag, OrderPlaced) for tag in tags]
        for publisher in publishers:
            publisher.add_subscriber(inbox.subscriber)
        broker.wait_until_subscribed(10)
        stats = broker.stats()
        assert stats.connected
        assert stats.subscribed == len(tags)
        assert stats.last_connection_error is None
        publishers[0].remove_subscriber(inbox.subscriber)
        wait_until(lambda: broker.stats().subscribed == len(tags) - 1)


# -- across processes ----------------------------------------------------------


def test_events_cross_processes_in_both_directions(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    prefix = unique_prefix()
    tags = list(tags_on_every_master(redis_cluster, prefix).values())

    # A peer process subscribes; this one publishes.
    process = peer("subscribe", redis_cluster, prefix, tags, 3)
    try:
        wait_ready(process)
        with RedisBroker(clients[0], channel_prefix=prefix) as sender:
            for tag in tags:
                publisher = publisher_for(sender, tag, OrderPlaced)
                for order_id in range(3):
                    publisher.publish(OrderPlaced(order_id, 1.0))
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert sorted((line["tag"], line["order_id"]) for line in lines) == sorted(
        (tag, order_id) for tag in tags for order_id in range(3)
    )

    # This process subscribes; a peer process publishes.
    with RedisBroker(clients[1], channel_prefix=prefix) as receiver:
        receiver.register_event_class(OrderPlaced)
        inbox = Inbox()
        for tag in tags:
            publisher_for(receiver, tag, OrderPlaced).add_subscriber(inbox.subscriber)
        publishing = peer("publish", redis_cluster, prefix, tags, 3)
        _, err = publishing.communicate(timeout=60)
        assert publishing.returncode == 0, err
        inbox.wait_for(9, timeout=30)
        assert sorted((str(tag), e.order_id) for e, tag, _ in inbox.items) == sorted(
            (tag, order_id) for tag in tags for order_id in range(3)
        )


# -- lifecycle ------------------------------------------------------------------


def shard_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        thread
        for thread in set(threading.enumerate()) - before
        if thread.name == LISTENER_THREAD
    ]


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_close_from_a_subscriber_stops_every_shard_thread(
    redis_cluster: LocalCluster,
    clients: list[RedisCluster],
    caplog: pytest.LogCaptureFixture,
) -> None:
    prefix = unique_prefix()
    tags = list(tags_on_every_master(redis_cluster, prefix).values())
    before = set(threading.enumerate())
    broker = RedisBroker(clients[0], channel_prefix=prefix)
    broker.register_event_class(OrderPlaced)
    closed = threading.Event()

    def close_broker(event: Any) -> None:
        broker.close()
        closed.set()

    subscriber = FunctionalEventSubscriber(close_broker, with_event_info=False)
    publishers = [publisher_for(broker, tag, OrderPlaced) for tag in tags]
    for publisher in publishers:
        publisher.add_subscriber(subscriber)
    threads = shard_threads(before)
    assert len(threads) == len(tags)
    with RedisBroker(clients[1], channel_prefix=prefix) as sender:
        for tag in tags:  # every shard delivers at about the same time
            publisher_for(sender, tag, OrderPlaced).publish(OrderPlaced(1, 1.0))
        assert closed.wait(10)
    wait_until(lambda: not any(thread.is_alive() for thread in threads))
    assert "still running" not in caplog.text


def test_a_dropped_broker_stops_its_shard_threads(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    prefix = unique_prefix()
    tags = list(tags_on_every_master(redis_cluster, prefix).values())
    before = set(threading.enumerate())
    broker = RedisBroker(clients[0], channel_prefix=prefix)
    subscriber = FunctionalEventSubscriber(lambda event: None, with_event_info=False)
    publishers = [publisher_for(broker, tag, OrderPlaced) for tag in tags]
    for publisher in publishers:
        publisher.add_subscriber(subscriber)
    threads = shard_threads(before)
    assert len(threads) == len(tags)
    del broker, publishers, publisher
    gc.collect()
    wait_until(lambda: not any(thread.is_alive() for thread in threads))


@pytest.mark.parametrize(
    "options",
    [{"protocol": 3}, {"decode_responses": True}],
    ids=["resp3", "decode_responses"],
)
def test_clients_with_resp3_or_decoded_responses(
    redis_cluster: LocalCluster, options: dict[str, Any]
) -> None:
    prefix = unique_prefix()
    tags = list(tags_on_every_master(redis_cluster, prefix).values())
    receiving, sending = (
        redis_cluster.client(**options),
        redis_cluster.client(**options),
    )
    try:
        with (
            RedisBroker(receiving, channel_prefix=prefix) as receiver,
            RedisBroker(sending, channel_prefix=prefix) as sender,
        ):
            receiver.register_event_class(OrderPlaced)
            inbox = Inbox()
            for tag in tags:
                publisher_for(receiver, tag, OrderPlaced).add_subscriber(
                    inbox.subscriber
                )
            with sender.batch():
                for order_id, tag in enumerate(tags):
                    publisher_for(sender, tag, OrderPlaced).publish(
                        OrderPlaced(order_id, 1.0)
                    )
            assert sorted(e.order_id for e in inbox.wait_for(len(tags))) == list(
                range(len(tags))
            )
            assert receiver.stats().dropped_total == 0
    finally:
        receiving.close()
        sending.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork() (POSIX)")
@pytest.mark.filterwarnings("ignore:This process .* fork:DeprecationWarning")
def test_a_forked_child_subscribes_on_shard_connections_of_its_own(
    redis_cluster: LocalCluster, clients: list[RedisCluster]
) -> None:
    prefix = unique_prefix()
    tags = list(tags_on_every_master(redis_cluster, prefix).values())
    with RedisBroker(clients[0], channel_prefix=prefix) as broker:
        broker.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher_for(broker, tags[0], OrderPlaced).add_subscriber(inbox.subscriber)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return
            report = "failed"
            try:
                child_inbox = Inbox()
                for tag in tags:
                    publisher = publisher_for(broker, tag, OrderPlaced)
                    publisher.add_subscriber(child_inbox.subscriber)
                    publisher.publish(OrderPlaced(1, 1.0))
                child_inbox.wait_for(len(tags), timeout=10)
                threads = [
                    t for t in threading.enumerate() if t.name == LISTENER_THREAD
                ]
                broker.close()
                report = f"{len(child_inbox.events)} {len(threads)}"
            finally:
                os.write(write_end, report.encode())
                os._exit(0)
        os.close(write_end)
        wait_until(lambda: os.waitpid(pid, os.WNOHANG) != (0, 0), timeout=30)
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read().decode()
        # One listener thread per shard in the child, none of the parent's.
        assert report == f"{len(tags)} {len(tags)}"
        # The parent's shard subscription carried on, untouched by the child.
        assert (
            shard_subscribers(
                redis_cluster,
                redis_cluster.master_of(prefix + tags[0]),
                prefix + tags[0],
            )
            == 1
        )
        publisher_for(broker, tags[0], OrderPlaced).publish(OrderPlaced(2, 1.0))
        wait_until(lambda: OrderPlaced(2, 1.0) in inbox.events)
        # The child's events on tags[0] reached the parent too (one Redis).
        assert inbox.events.count(OrderPlaced(1, 1.0)) == 1


def test_a_shard_channel_refused_by_an_acl_concerns_that_channel_only(
    redis_cluster: LocalCluster,
) -> None:
    prefix = unique_prefix()
    user = f"limited-{prefix.split(':')[1]}"
    for node in redis_cluster.nodes:
        admin = node.client()
        try:
            admin.execute_command(
                "ACL", "SETUSER", user, "on", ">pw", "~*", "resetchannels",
                f"&{prefix}OK*", "+@all",
            )  # fmt: skip
        finally:
            admin.close()
    tags = list(tags_on_every_master(redis_cluster, f"{prefix}OK").values())
    receiving = redis_cluster.client(username=user, password="pw")
    sending = redis_cluster.client()
    try:
        with (
            RedisBroker(receiving, channel_prefix=prefix) as receiver,
            RedisBroker(sending, channel_prefix=prefix) as sender,
        ):
            receiver.register_event_class(OrderPlaced)
            inbox = Inbox()
            for tag in tags:
                publisher_for(receiver, f"OK{tag}", OrderPlaced).add_subscriber(
                    inbox.subscriber
                )
            with pytest.raises(SubscriptionRefused, match=r"NOPERM|[Pp]ermission"):
                publisher_for(receiver, "FORBIDDEN", OrderPlaced).add_subscriber(
                    inbox.subscriber
                )
            for order_id, tag in enumerate(tags):
                publisher_for(sender, f"OK{tag}", OrderPlaced).publish(
                    OrderPlaced(order_id, 1.0)
                )
            assert len(inbox.wait_for(len(tags))) == len(tags)
            stats = receiver.stats()
            assert stats.reconnects == 0
            assert stats.subscribed == len(tags)
    finally:
        receiving.close()
        sending.close()
