"""RedisStreamBroker and Redis Cluster: not supported yet, and it says so.

Streams on a cluster need more than a cluster-aware client: an XREADGROUP over
several streams must stay in one hash slot, and the dead-letter transaction
(XADD to ``<stream>:dead`` + XACK on ``<stream>``) spans two keys that hash to
different slots unless the key names carry a hash tag. Until that is built,
the broker refuses a ``RedisCluster`` client at once rather than failing later.
"""

from __future__ import annotations

import pytest
from _cluster import LocalCluster

from eventspype.broker.redis import RedisStreamBroker

pytestmark = pytest.mark.slow


def test_a_cluster_client_is_refused_with_what_is_needed(
    redis_cluster: LocalCluster,
) -> None:
    client = redis_cluster.client()
    try:
        with pytest.raises(TypeError, match="RedisCluster"):
            RedisStreamBroker(client)
    finally:
        client.close()
