"""A ``RedisCluster`` client: no connection pool, so the broker uses its methods.

The cluster is one private ``redis-server`` in cluster mode owning every slot.
"""

from __future__ import annotations

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


def test_a_redis_cluster_client_publishes_and_subscribes(
    cluster: PrivateRedis,
) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster.port, socket_timeout=5)
    try:
        with RedisBroker(client, channel_prefix=unique_prefix()) as broker:
            broker.register_event_class(Parcel)
            parcel = EventPublication("parcel", Parcel)
            publisher = EventPublisher(parcel, broker=broker)
            got: list[Any] = []
            subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
            publisher.add_subscriber(subscriber)
            publisher.publish(Parcel(1))
            with broker.batch():  # cluster pipelines refuse PUBLISH: one by one
                publisher.publish(Parcel(2))
                publisher.publish(Parcel(3))
            wait_until(lambda: len(got) == 3)
            assert got == [Parcel(1), Parcel(2), Parcel(3)]
            assert broker.stats().published == 3
            thread = broker._listener._thread
        assert thread is not None
        assert not thread.is_alive()
    finally:
        client.close()
