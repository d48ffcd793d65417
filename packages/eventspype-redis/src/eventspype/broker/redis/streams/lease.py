"""Detecting a second live process that uses this consumer's name.

Two live processes with one consumer name would take each other's pending
entries for their own. Redis 7.0 cannot tell them apart (XINFO idle times
look like a restart), so each consumer keeps a short-lived key,
``<stream>:consumer:<name>``, holding a token of its own, refreshed every
few seconds. Finding another token there means another process uses the name:
a warning is logged, never a refusal (after a kill -9 the old key lives on
for up to ``ttl`` seconds, and the restarted consumer must resume at once).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from eventspype._internal.ratelimit import RateLimitedWarning

__all__ = ["ConsumerLease"]

_logger = logging.getLogger("eventspype.broker.redis")


class ConsumerLease:
    """The lease key of one consumer name (see the module docs)."""

    def __init__(self, group: bytes, consumer: bytes, ttl: float = 15.0) -> None:
        self._group, self._consumer = group, consumer
        self._token = uuid.uuid4().hex.encode()
        self._ttl_ms = int(ttl * 1000)
        self._warn = RateLimitedWarning(_logger, 60.0)
        #: Times another process's token was found.
        self.conflicts = 0

    def key(self, stream: bytes) -> bytes:
        """The lease key, next to ``stream`` (one slot on a cluster)."""
        return stream + b":consumer:" + self._group + b":" + self._consumer

    def refresh(self, client: Any, stream: bytes) -> None:
        """Take or renew the lease on ``stream``; warn if another holds it.

        Raises what the client raises.
        """
        key = self.key(stream)
        if client.set(key, self._token, px=self._ttl_ms, nx=True):
            return
        if client.get(key) == self._token:
            client.pexpire(key, self._ttl_ms)
            return
        self._conflict()

    async def refresh_async(self, client: Any, stream: bytes) -> None:
        """:meth:`refresh` with a ``redis.asyncio`` client."""
        key = self.key(stream)
        if await client.set(key, self._token, px=self._ttl_ms, nx=True):
            return
        if await client.get(key) == self._token:
            await client.pexpire(key, self._ttl_ms)
            return
        self._conflict()

    def release(self, client: Any, stream: bytes) -> None:
        """Delete the lease if it is still this process's."""
        if client.get(self.key(stream)) == self._token:
            client.delete(self.key(stream))

    async def release_async(self, client: Any, stream: bytes) -> None:
        """:meth:`release` with a ``redis.asyncio`` client."""
        if await client.get(self.key(stream)) == self._token:
            await client.delete(self.key(stream))

    def _conflict(self) -> None:
        self.conflicts += 1
        self._warn.warning(
            "Another live process seems to use consumer name %r of group %r "
            "(or this one restarted less than %d s ago): two processes sharing "
            "a name take each other's pending events; give each its own",
            self._consumer.decode("utf-8", "replace"),
            self._group.decode("utf-8", "replace"),
            self._ttl_ms // 1000,
        )
