"""SPUBLISH through a ``RedisCluster`` client: each event goes to one shard only.

Classic PUBLISH on a cluster is broadcast over the cluster bus to every node
(each one spends work on every event, whether anyone subscribed there or not).
SPUBLISH is routed like a key command, to the master owning the channel's
slot, and goes no further than that shard (its replicas included). The
client's own routing, retries and slot-map refreshes apply: after a failover
it finds the new master by itself (a PUBLISH that failed on the old one may be
retried by the client, per its ``cluster_error_retry_attempts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventspype.broker.redis._io.transport import Transport

__all__ = ["ShardedTransport"]


class ShardedTransport(Transport):
    """``SPUBLISH`` with ``client.execute_command``; a batch in a cluster pipeline.

    The pipeline groups the batch by node: one round trip per shard involved.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(self, channel: bytes, message: bytes) -> None:
        self._client.execute_command("SPUBLISH", channel, message)

    def publish_many(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        if not messages:
            return
        pipeline = self._client.pipeline(transaction=False)
        for channel, message in messages:
            pipeline.execute_command("SPUBLISH", channel, message)
        pipeline.execute()

    def close(self) -> None:
        pass  # the client and its connections are the user's
