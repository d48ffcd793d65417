"""The listener of a broker on Redis Cluster: one sharded Pub/Sub listener per shard.

A shard channel is received only on a connection to the master that owns its
slot, so the broker needs one connection per shard it has channels on. Each is
an ordinary :class:`~pubsub.listener.Listener` (its own thread, backoff,
health checks, confirmations) whose link is a :class:`~pubsub.shard_link.ShardLink`.
:class:`ShardedListener` has the listener's interface, so the broker's
subscription tables use it unchanged; it routes each channel to the listener
of the shard that owned the channel's slot when it was first subscribed.

Failover: when a master dies, only its shard's listener loses its connection;
it reconnects with backoff, to the node that owns its channels' slots by then
(the promoted replica) and subscribes them all again. The other shards keep
delivering meanwhile.

Every listener is known by the node its link last opened on, so that after
a failover new channels of the promoted replica go to the listener that
reconnected there; if another listener serves that node already, the
failed-over one hands it its channels and retires (never two connections to
one node, however many failovers).

Resharding: when slots move to another master, Redis ends their
subscriptions; the listener reconnects to the node that owns most of its
channels and hands the others (with whoever waits for their confirmation:
``subscribe()`` keeps waiting) to the listeners of their new nodes.

Delivery: the shard listeners hand every message to one handler under one
lock, so the broker decodes, counts and calls subscribers on one thread at a
time, as with a single listener (events of one channel arrive in order: a
channel has one shard). A subscriber that blocks holds up every shard.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import redis

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._wire.stats import ConnectionState, Counters
from eventspype.broker.redis.pubsub.listener import Deliver, Listener
from eventspype.broker.redis.pubsub.shard_link import ShardLinkFactory
from eventspype.broker.redis.pubsub.shard_routes import ShardRoutes
from eventspype.broker.redis.pubsub.subscribing import Subscription

__all__ = ["ShardedListener", "combine_states"]


class _Wants(Protocol):
    def wants(self, channel: bytes) -> bool: ...


def moves_finished(routes: Mapping[bytes, _Wants]) -> bool:
    """Every channel is wanted by the shard it is routed to.

    A move (MOVED, a failover) changes the route first and the shards'
    wanted channels after: until both agree, a wait for the shards' confirmations
    could miss the channel in flight.
    """
    return all(shard.wants(channel) for channel, shard in routes.items())


def combine_states(states: list[ConnectionState]) -> ConnectionState:
    """The shards' states in one: connected when every shard in use is.

    ``since`` is the latest change of any shard, ``last_error`` the one of
    the shard that changed last among those with an error.
    """
    if not states:
        return ConnectionState()
    changed = sorted(states, key=lambda state: state.since or 0.0)
    errors = [state.last_error for state in changed if state.last_error]
    refused: dict[str, str] = {}
    for state in states:
        refused.update(state.refused)
    return ConnectionState(
        connected=all(state.connected for state in states),
        since=changed[-1].since,
        last_error=errors[-1] if errors else None,
        subscribed=sum(state.subscribed for state in states),
        refused=refused,
    )


class _OneAtATime:
    """The broker's handlers behind one lock (see the module docs).

    Held strongly by the :class:`ShardedListener` only, and referencing the
    broker weakly, like :class:`~pubsub.listener.Listener` does: a broker nobody
    uses can still be collected, which stops the shard threads. Once stopping,
    a thread waiting for the lock gives up, so that a subscriber that closes
    the broker does not wait for the other shards' threads to time out.
    """

    def __init__(self, deliver: Deliver, tidy: Callable[[], None]) -> None:
        self._deliver = weakref.WeakMethod(deliver)
        self._tidy = weakref.WeakMethod(tidy)
        self.stopping = False
        self._lock = threading.Lock()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _acquire(self) -> bool:
        while not self._lock.acquire(timeout=0.1):
            if self.stopping:
                return False
        return True

    def deliver(self, channel: bytes, data: Any) -> None:
        target = self._deliver()
        if target is not None and self._acquire():
            try:
                target(channel, data)
            finally:
                self._lock.release()

    def tidy(self) -> None:
        target = self._tidy()
        if target is not None and self._acquire():
            try:
                target()
            finally:
                self._lock.release()


class _Rerouter:
    """``reroute`` for one shard's links; holds the ``ShardedListener`` weakly."""

    def __init__(self, owner: ShardedListener, shard: Listener) -> None:
        self._owner = weakref.ref(owner)
        self._shard = weakref.ref(shard)

    def channels(self) -> list[bytes]:
        owner, shard = self._owner(), self._shard()
        if owner is None or shard is None:
            return []
        return owner.channels_of(shard)

    def reroute(self, channels: list[bytes]) -> None:
        owner, shard = self._owner(), self._shard()
        if owner is not None and shard is not None:
            owner.reroute(shard, channels)

    def settled(self, node_name: str) -> None:
        owner, shard = self._owner(), self._shard()
        if (
            owner is not None
            and shard is not None
            and not owner.settled(shard, node_name)
        ):
            raise redis.ConnectionError(
                f"another listener serves node {node_name}: this one retired"
            )


class ShardedListener:
    """One :class:`~pubsub.listener.Listener` per shard (see the module docs).

    Channels are the names on the wire, as bytes. ``client`` is the user's
    ``redis.cluster.RedisCluster``; the other arguments are those of
    :class:`~pubsub.listener.Listener`, for each shard.
    """

    def __init__(
        self,
        client: Any,
        deliver: Deliver,
        tidy: Callable[[], None],
        counters: Counters,
        *,
        idle_timeout: float,
        health_check_interval: float,
        reconnect_delay: tuple[float, float],
        encoding: str = "utf-8",
    ) -> None:
        self._client = client
        self._encoding = encoding
        self._handlers = _OneAtATime(deliver, tidy)
        self._counters = counters
        self._idle_timeout = idle_timeout
        self._health_check_interval = health_check_interval
        self._reconnect_delay = reconnect_delay
        # Bad options fail here, as they do for a single Listener, rather
        # than on the first subscription.
        self._new_shard()
        self._table: ShardRoutes[Listener] = ShardRoutes(client, self._new_shard)
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # The shard listeners forget their channels and threads by themselves.
        self._table.reset()

    def _new_shard(self) -> Listener:
        factory = ShardLinkFactory(self._client)
        listener = Listener(
            factory,
            self._handlers.deliver,
            self._handlers.tidy,
            self._counters,
            idle_timeout=self._idle_timeout,
            health_check_interval=self._health_check_interval,
            reconnect_delay=self._reconnect_delay,
            encoding=self._encoding,
        )
        rerouter = _Rerouter(self, listener)
        factory.channels = rerouter.channels
        factory.reroute = rerouter.reroute
        factory.settled = rerouter.settled
        return listener

    def reroute(self, source: Listener, channels: list[bytes]) -> None:
        """Move ``channels`` from ``source`` to the listeners of their nodes now.

        Called on ``source``'s thread while it opens a link on a node that no
        longer owns them (after a resharding).
        """
        moves = self._table.move_away(source, channels)
        for channel, target in moves:
            # Whoever waits for the channel waits for its new listener.
            target.adopt(channel, source.hand_over(channel))
        for target in {id(t): t for _, t in moves}.values():
            target.sync()

    def settled(self, shard: Listener, node_name: str) -> bool:
        """``shard``'s link is opening on ``node_name``; whether it goes on.

        Called on ``shard``'s thread. ``shard`` serves that node from now on;
        if another listener serves it already (``shard``'s node failed over to
        it), ``shard`` hands that one its channels and retires: ``False``.
        """
        goes_on, heir, moved = self._table.settle(shard, node_name)
        if heir is not None:
            for channel in moved:
                heir.adopt(channel, shard.hand_over(channel))
            heir.sync()
            shard.request_stop()
        return goes_on

    def channels_of(self, shard: Listener) -> list[bytes]:
        """The channels routed to ``shard``."""
        return self._table.channels_of(shard)

    @property
    def shards(self) -> tuple[Listener, ...]:
        """The listener of each shard (a snapshot)."""
        return self._table.shards

    @property
    def on_listener_thread(self) -> bool:
        """Whether the caller runs on one of the shard listeners' threads."""
        return any(shard.on_listener_thread for shard in self._table.shards)

    # -- what is wanted (any thread; the Listener contract) ------------------

    def add(self, channel: bytes) -> Subscription | None:
        """Want ``channel`` on its shard's listener (see ``Listener.add``)."""
        return self._table.route(channel).add(channel)

    def remove(self, channel: bytes) -> None:
        """Stop wanting ``channel`` (see ``Listener.remove``)."""
        shard = self._table.unroute(channel)
        if shard is not None:
            shard.remove(channel)

    def sync(self) -> None:
        """Send what changed, on every shard's connection (see ``Listener.sync``)."""
        for shard in self._table.shards:
            shard.sync()

    def ensure_running(self) -> None:
        """Start a new thread for every shard whose thread died (see ``Listener``)."""
        for shard in self._table.shards:
            shard.ensure_running()

    def state(self) -> ConnectionState:
        """The shards' states in one: connected when every shard in use is.

        ``since`` is the latest change of any shard, ``last_error`` the one of
        the shard that changed last among those with an error.
        """
        table = self._table
        return combine_states([s.state() for s in table.shards if table.channels_of(s)])

    def wait_until_subscribed(self, timeout: float) -> None:
        """``Listener.wait_until_subscribed`` on every shard, in ``timeout`` in all.

        Until a whole pass finds the same shards and routes it started with:
        a channel moved while we waited (MOVED, a failover) is on a shard that
        the pass may not have waited for. Both are replaced, never mutated,
        when they change, so comparing identities is enough.
        """
        deadline = time.monotonic() + timeout
        while True:
            shards, routes = self._table.snapshot()
            for shard in shards:
                shard.wait_until_subscribed(max(0.0, deadline - time.monotonic()))
            now_shards, now_routes = self._table.snapshot()
            stable = now_shards is shards and now_routes is routes
            if stable and moves_finished(routes):
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"channels still moving between shards after {timeout} s"
                )
            time.sleep(0.01)

    def request_tidy(self) -> None:
        """Have a listener thread call ``tidy`` soon (safe from a weakref callback)."""
        for shard in self._table.shards:
            shard.request_tidy()

    # -- stopping --------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask every shard's thread to stop, without waiting (idempotent)."""
        self._handlers.stopping = True
        for shard in self._table.shards:
            shard.request_stop()

    def threads(self) -> list[threading.Thread]:
        """The shard listeners' threads that run."""
        return [thread for shard in self._table.shards for thread in shard.threads()]

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s in all for every shard's thread to end."""
        deadline = time.monotonic() + timeout
        done = True
        for shard in self._table.shards:
            done = shard.join(max(0.0, deadline - time.monotonic())) and done
        return done
