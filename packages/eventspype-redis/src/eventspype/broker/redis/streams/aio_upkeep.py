"""What the asyncio consumer does besides reading: leases, clean-up, scripts.

The thread driver's housekeeping (``streams.reader``), awaited: every few
seconds the consumer-name lease (``streams.lease``) is renewed, and now and
then consumers gone from the group for ``forget_consumers_after`` (with
nothing pending) are removed; on stop the consumer leaves the group where it
holds nothing and releases its lease. Also ``streams.sending``'s Lua scripts
in the form an asyncio pipeline can queue (``EVAL``), and the broker's own
clients (:func:`own_client`: connections like the user's client's).
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis.asyncio

from eventspype.broker.redis._io.aio_connections import own_connection_options
from eventspype.broker.redis.streams.lease import ConsumerLease
from eventspype.broker.redis.streams.protocol import StreamProtocol
from eventspype.broker.redis.streams.sending import _ACK_OWNED, _CLAIM_OWNED, _DEAD

__all__ = ["SCRIPTS", "Upkeep", "close_client", "own_client"]

#: The longest time between two looks for consumers that are gone.
_CLEANUP_INTERVAL = 60.0


class Upkeep:
    """The lease and the group clean-up of one consumer (module docs)."""

    def __init__(self, proto: StreamProtocol, forget_after: float) -> None:
        self._proto = proto
        self._group = proto.options.group
        self._me = proto.options.consumer
        self._lease = ConsumerLease(self._group, self._me)
        self._forget_after_ms = int(forget_after * 1000)
        self._cleanup_every = min(_CLEANUP_INTERVAL, max(1.0, forget_after / 2))
        self._next_forget = 0.0

    async def every_few_seconds(self, client: Any, now: float) -> None:
        """Renew the lease; now and then forget consumers that are gone."""
        streams = list(self._proto.streams)
        if not streams:
            return
        with contextlib.suppress(Exception):  # Redis down: next time
            await self._lease.refresh_async(client, min(streams))
        if now >= self._next_forget:
            self._next_forget = now + self._cleanup_every
            await self._forget(client, streams, me=False)

    async def on_stop(self, client: Any) -> None:
        """Leave the group where nothing is pending here; release the lease."""
        streams = list(self._proto.streams)
        if client is None or not streams:
            return
        with contextlib.suppress(Exception):
            await self._lease.release_async(client, min(streams))
        await self._forget(client, streams, me=True)

    async def _forget(self, client: Any, streams: list[bytes], me: bool) -> None:
        """Remove this consumer (``me``) or the others idle for
        ``forget_after``, never one with pending entries (that loses them)."""
        group = self._group
        try:
            for stream in streams:
                for info in await client.xinfo_consumers(stream, group):
                    name = info["name"]
                    name = name.encode() if isinstance(name, str) else bytes(name)
                    if int(info["pending"]) or (name == self._me) != me:
                        continue
                    if me or int(info["idle"]) > self._forget_after_ms:
                        await client.xgroup_delconsumer(stream, group, name)
        except Exception:  # Redis down, or a stream not there: next time
            pass


class _EvalScripts:
    """``streams.sending``'s scripts, queued on a pipeline with ``EVAL``
    (redis.asyncio's registered scripts are coroutines a pipeline cannot
    queue without awaiting)."""

    lua = True

    def __init__(self) -> None:
        self.ack_owned = _Eval(_ACK_OWNED)
        self.claim_owned = _Eval(_CLAIM_OWNED)
        self.dead = _Eval(_DEAD)


class _Eval:
    __slots__ = ("source",)

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, keys: list[Any], args: list[Any], client: Any) -> None:
        client.execute_command("EVAL", self.source, len(keys), *keys, *args)


#: What ``sending.prepare`` takes as ``scripts`` from the asyncio driver.
SCRIPTS = _EvalScripts()


def own_client(
    client: Any, timeout: float | None, connections: int | None
) -> redis.asyncio.Redis:
    """A client on a pool of the broker's own, connections like ``client``'s."""
    connection_class, kwargs = own_connection_options(client, timeout)
    pool = redis.asyncio.ConnectionPool(
        connection_class=connection_class, max_connections=connections, **kwargs
    )
    return redis.asyncio.Redis(connection_pool=pool)


async def close_client(client: Any) -> None:
    """Close a client and its pool (``aclose``, or ``close`` before 5.0.1)."""
    with contextlib.suppress(Exception):
        await (getattr(client, "aclose", None) or client.close)()
        await client.connection_pool.disconnect()
