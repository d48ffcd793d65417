"""A ``RedisCluster`` client: no connection pool, so the broker uses its methods.

The cluster is one private ``redis-server`` in cluster mode owning every slot;
the broker uses sharded Pub/Sub on it (the default) or classic Pub/Sub
(``sharded_pubsub=False``). Multi-node clusters, failover and resharding are
tested in ``tests/redis/test_cluster_*.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import RedisCluster
from redis_helpers import (
    PrivateRedis,
    private_redis,
    unique_prefix,
    wait_until,
)

from eventspype import (
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.broker.redis import RedisBroker

pytestmark = pytest.mark.slow


@dataclass
class Parcel:
    n: int


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(tmp_path / "nodes.conf"),
        "--dir", str(tmp_path),
    ) as server:  # fmt: skip
        admin = server.client()
        try:
            admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            wait_until(lambda: b"cluster_state:ok" in _cluster_info(admin))
        finally:
            admin.close()
        yield server


def _cluster_info(admin: Any) -> bytes:
    info = admin.execute_command("CLUSTER", "INFO")
    return info if isinstance(info, bytes) else str(info).encode()


@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "classic"])
def test_a_redis_cluster_client_publishes_and_subscribes(
    cluster: PrivateRedis, sharded: bool
) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster.port, socket_timeout=5)
    before = set(threading.enumerate())
    try:
        with RedisBroker(
            client, channel_prefix=unique_prefix(), sharded_pubsub=sharded
        ) as broker:
            broker.register_event_class(Parcel)
            parcel = EventPublication("parcel", Parcel)
            publisher = EventPublisher(parcel, broker=broker)
            got: list[Any] = []
            subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
            publisher.add_subscriber(subscriber)
            publisher.publish(Parcel(1))
            with broker.batch():  # PUBLISH one by one; SPUBLISH pipelined
                publisher.publish(Parcel(2))
                publisher.publish(Parcel(3))
            wait_until(lambda: len(got) == 3)
            assert got == [Parcel(1), Parcel(2), Parcel(3)]
            assert broker.stats().published == 3
            admin = cluster.client()
            try:
                command = "SHARDNUMSUB" if sharded else "NUMSUB"
                name = broker.channel_prefix + "PARCEL"
                reply = admin.execute_command("PUBSUB", command, name)
            finally:
                admin.close()
            assert int(reply[1]) == 1
            listeners = [
                t
                for t in set(threading.enumerate()) - before
                if t.name == "eventspype-redis-listener"
            ]
            assert listeners
        assert not any(t.is_alive() for t in listeners)
    finally:
        client.close()
