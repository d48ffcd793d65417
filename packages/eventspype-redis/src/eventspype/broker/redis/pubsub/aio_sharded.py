"""AsyncRedisBroker on Redis Cluster: one sharded listener task per shard.

The asyncio twin of :mod:`~pubsub.sharded`: a shard channel is received only
on a connection to the master that owns its slot, so the broker runs one
:class:`~pubsub.aio_listener.AsyncListener` per master it has channels on,
each on a connection of its own that speaks sharded Pub/Sub (SSUBSCRIBE; see
``pubsub.shard_dialect``). redis-py's asyncio cluster client has no sharded
Pub/Sub before 8.0, so the connections are opened here, like the client's
connections to that node, from its slot map.

Failover: only the dead master's listener loses its connection; it
reconnects with backoff, refreshing the client's slot map before each
attempt, to the node that owns its channels by then (the promoted replica),
and subscribes them all again. Every listener is known by the node it last
connected to: new channels of that node go to it, and a listener that finds
another already serving its new node hands it its channels and stops.
Resharding: a listener that opens on the node owning most of its channels
hands the others to the listeners of their nodes.

Everything runs on the broker's loop, so the shards deliver one message at a
time, in order per channel (a channel has one shard).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis.exceptions

from eventspype.broker.redis._io.aio_connections import node_connection
from eventspype.broker.redis._wire.stats import ConnectionState, Counters
from eventspype.broker.redis.pubsub.aio_listener import AsyncListener
from eventspype.broker.redis.pubsub.aio_reader import Deliver
from eventspype.broker.redis.pubsub.shard_routes import ShardRoutes
from eventspype.broker.redis.pubsub.sharded import combine_states, moves_finished

__all__ = ["AsyncShardedListener"]


class _ShardTarget:
    """Where one shard's listener connects (awaited by the listener)."""

    def __init__(self, owner: AsyncShardedListener, client: Any) -> None:
        self._owner = weakref.ref(owner)
        self._client = client
        self._made = 0
        self.shard: weakref.ref[AsyncListener] | None = None

    async def __call__(self) -> Any:
        self._made += 1
        owner = self._owner()
        shard = self.shard() if self.shard is not None else None
        if owner is None or shard is None:
            raise redis.exceptions.ConnectionError("the broker is gone")
        client = self._client
        if self._made > 1:  # replaces a connection that failed: the node may be gone
            try:
                await client.nodes_manager.initialize()
            except Exception as error:
                raise redis.exceptions.ConnectionError(
                    f"cannot refresh the cluster's slot map: {error}"
                ) from error
        try:
            owners = {c: client.get_node_from_key(c) for c in owner.channels_of(shard)}
        except Exception as error:  # a slot not covered (yet): back off
            raise redis.exceptions.ConnectionError(
                f"no node of the cluster serves these channels now: {error}"
            ) from error
        counts = Counter(n.name for n in owners.values() if n is not None)
        if counts:
            name = counts.most_common(1)[0][0]
            node = next(n for n in owners.values() if n is not None and n.name == name)
            elsewhere = [c for c, n in owners.items() if n is None or n.name != name]
            if elsewhere:
                owner.reroute(shard, elsewhere)
        else:
            primaries = client.get_primaries()
            if not primaries:
                raise redis.exceptions.ConnectionError("the cluster has no master")
            node = primaries[0]
        if not owner.settled(shard, str(node.name)):
            raise redis.exceptions.ConnectionError(
                f"another listener serves node {node.name}: this one retired"
            )
        return node_connection(node)


class AsyncShardedListener:
    """One :class:`AsyncListener` per shard (see the module docs).

    Channels are names on the wire, as bytes. ``client`` is the user's
    ``redis.asyncio.cluster.RedisCluster``; the other arguments are those of
    :class:`AsyncListener`, for each shard.

    Raises:
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: Any,
        deliver: Deliver,
        tidy: Callable[[], None],
        counters: Counters,
        *,
        health_check_interval: float,
        reconnect_delay: tuple[float, float],
        encoding: str,
    ) -> None:
        self._loop = loop
        self._client = client
        self._deliver = deliver
        self._tidy = tidy
        self._counters = counters
        self._options: dict[str, Any] = {
            "health_check_interval": health_check_interval,
            "reconnect_delay": reconnect_delay,
            "encoding": encoding,
        }
        self._new_shard()  # bad options fail here, not on the first subscription
        self._table: ShardRoutes[AsyncListener] = ShardRoutes(client, self._new_shard)

    def _new_shard(self) -> AsyncListener:
        target = _ShardTarget(self, self._client)
        shard = AsyncListener(
            self._loop,
            target,
            self._deliver,
            self._tidy,
            self._counters,
            sharded=True,
            **self._options,
        )
        target.shard = weakref.ref(shard)
        return shard

    def channels_of(self, shard: AsyncListener) -> list[bytes]:
        """The channels routed to ``shard``."""
        return self._table.channels_of(shard)

    @property
    def shards(self) -> tuple[AsyncListener, ...]:
        """The listener of each shard (a snapshot)."""
        return self._table.shards

    def reroute(self, source: AsyncListener, channels: list[bytes]) -> None:
        """Move ``channels`` from ``source`` to the listeners of their nodes."""
        moves = self._table.move_away(source, channels)
        for channel, target in moves:
            source.remove(channel)
            target.add(channel)
        for target in {id(t): t for _, t in moves}.values():
            target.sync()

    def settled(self, shard: AsyncListener, node_name: str) -> bool:
        """``shard`` connects to ``node_name``; whether it goes on (see
        ``ShardRoutes.settle``: a listener that finds another serving that
        node hands it its channels and retires)."""
        goes_on, heir, moved = self._table.settle(shard, node_name)
        if heir is not None:
            for channel in moved:
                shard.remove(channel)
                heir.add(channel)
            heir.sync()
            shard.abandon()
        return goes_on

    # -- the ChannelListener contract (any thread) -----------------------------

    def add(self, channel: bytes) -> None:
        """Want ``channel`` on its shard's listener; call :meth:`sync` next."""
        self._table.route(channel).add(channel)

    def remove(self, channel: bytes) -> None:
        """Stop wanting ``channel``; call :meth:`sync` next."""
        shard = self._table.unroute(channel)
        if shard is not None:
            shard.remove(channel)

    def sync(self) -> None:
        """Have every shard send what changed (and replace ended tasks)."""
        for shard in self._table.shards:
            shard.sync()

    def request_tidy(self) -> None:
        """Have the loop call ``tidy`` soon (safe from a weakref callback)."""
        shards = self._table.shards
        if shards:
            shards[0].request_tidy()

    # -- what is true now --------------------------------------------------------

    def state(self) -> ConnectionState:
        """The shards' states in one (see ``sharded.combine_states``)."""
        table = self._table
        return combine_states([s.state() for s in table.shards if table.channels_of(s)])

    async def wait_until_subscribed(self, timeout: float) -> None:
        """``AsyncListener.wait_until_subscribed`` on every shard, in ``timeout``.

        Until a whole pass finds the same shards and routes it started with:
        a channel moved while we waited (MOVED, a slot map read after the
        first route) is on a shard that the pass may not have waited for.
        """
        deadline = self._loop.time() + timeout
        while True:
            shards, routes = self._table.snapshot()
            for shard in shards:
                left = max(0.0, deadline - self._loop.time())
                await shard.wait_until_subscribed(left)
            now_shards, now_routes = self._table.snapshot()
            stable = now_shards is shards and now_routes is routes
            if stable and moves_finished(routes):
                return
            if self._loop.time() >= deadline:
                raise TimeoutError(
                    f"channels still moving between shards after {timeout} s"
                )
            await asyncio.sleep(0.01)

    # -- stopping ------------------------------------------------------------------

    async def stop(self) -> None:
        """End every shard's task and close its connection (idempotent)."""
        for shard in self._table.shards:
            await shard.stop()

    def abandon(self) -> list[str]:
        """Stop without waiting (the broker was collected); what was stopped."""
        return [name for shard in self._table.shards for name in shard.abandon()]
