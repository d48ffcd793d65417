"""Which shard listener serves which channel, for both cluster drivers.

:class:`~pubsub.sharded.ShardedListener` (threads) and
:class:`~pubsub.aio_sharded.AsyncShardedListener` (asyncio) keep the same
table: each channel is routed to the listener of the shard that owned its slot
when it was first wanted, and each listener is known by the node its
connection last opened on, so that new channels of that node go to it. What
differs between the drivers is how a channel changes hands (a thread listener
hands over whoever waits for its confirmation, a task just re-adds it) and how
a listener stops; that stays in the drivers, and this table only decides.

Every table is replaced, never mutated, under one lock (copy-on-write), so
that readers take a consistent snapshot without the lock and can tell by
identity whether anything moved since.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["ShardRoutes"]

S = TypeVar("S")

#: The node name of a channel whose slot no node covers now (its listener
#: looks for the owner again when it connects).
UNKNOWN_NODE = "(unknown)"


class ShardRoutes(Generic[S]):
    """Channel -> shard listener, node -> shard listener (see the module docs).

    ``client`` is the user's cluster client (sync or asyncio: only its slot
    map is read, ``get_node_from_key``, which does no I/O); ``new_shard``
    makes a listener for a node that has none yet.
    """

    def __init__(self, client: Any, new_shard: Callable[[], S]) -> None:
        self._client = client
        self._new_shard = new_shard
        self.reset()

    def reset(self) -> None:
        """Forget every listener and route (a new lock too: after a fork)."""
        self._lock = threading.Lock()
        self._all: tuple[S, ...] = ()
        self._by_node: dict[str, S] = {}
        self._routes: dict[bytes, S] = {}

    # -- reading (no lock) ------------------------------------------------------

    @property
    def shards(self) -> tuple[S, ...]:
        """Every listener in use (a snapshot)."""
        return self._all

    def snapshot(self) -> tuple[tuple[S, ...], dict[bytes, S]]:
        """The listeners and the routes, taken together; compare them by
        identity with a later snapshot to learn whether anything moved."""
        with self._lock:
            return self._all, self._routes

    def channels_of(self, shard: S) -> list[bytes]:
        """The channels routed to ``shard``."""
        return [c for c, s in self._routes.items() if s is shard]

    # -- deciding ---------------------------------------------------------------

    def route(self, channel: bytes) -> S:
        """The listener of ``channel``: its route, or a new one to the
        listener of its node (made if that node has none)."""
        with self._lock:
            shard = self._routes.get(channel)
            if shard is None:
                shard = self._shard_for(channel)
                self._routes = {**self._routes, channel: shard}
            return shard

    def unroute(self, channel: bytes) -> S | None:
        """Forget ``channel``'s route; the listener it had, if any."""
        with self._lock:
            shard = self._routes.get(channel)
            if shard is not None:
                self._routes = {c: s for c, s in self._routes.items() if c != channel}
            return shard

    def move_away(self, source: S, channels: list[bytes]) -> list[tuple[bytes, S]]:
        """Route those of ``channels`` still on ``source`` to the listeners of
        their nodes now (never ``source``); the moves the caller must carry out."""
        moves: list[tuple[bytes, S]] = []
        with self._lock:
            for channel in channels:
                if self._routes.get(channel) is source:
                    target = self._shard_for(channel, not_this=source)
                    self._routes = {**self._routes, channel: target}
                    moves.append((channel, target))
        return moves

    def settle(self, shard: S, node_name: str) -> tuple[bool, S | None, list[bytes]]:
        """``shard`` is connecting to ``node_name``: ``(goes_on, heir, moved)``.

        If no other listener serves that node, ``shard`` serves it from now on
        (``(True, None, [])``). If another does (``shard``'s node failed over
        to it), ``shard``'s channels are routed to that heir and ``shard``
        leaves the table: ``(False, heir, moved)``, and the caller hands the
        ``moved`` channels over and stops ``shard``. A ``shard`` that left the
        table already gets ``(False, None, [])``.
        """
        with self._lock:
            if shard not in self._all:
                return False, None, []
            heir = self._by_node.get(node_name)
            by_node = {n: s for n, s in self._by_node.items() if s is not shard}
            if heir is None or heir is shard:
                self._by_node = {**by_node, node_name: shard}
                return True, None, []
            self._by_node = by_node
            moved = [c for c, s in self._routes.items() if s is shard]
            self._routes = {
                c: heir if s is shard else s for c, s in self._routes.items()
            }
            self._all = tuple(s for s in self._all if s is not shard)
            return False, heir, moved

    def _shard_for(self, channel: bytes, *, not_this: S | None = None) -> S:
        # Caller holds _lock. The client's slot map: no I/O (the listeners
        # refresh it when a connection fails).
        try:
            node = self._client.get_node_from_key(channel)
        except Exception:  # slot not covered now: the listener looks again later
            node = None
        name = str(node.name) if node is not None else UNKNOWN_NODE
        shard = self._by_node.get(name)
        if shard is None or shard is not_this:
            shard = self._new_shard()
            self._all = (*self._all, shard)
            self._by_node = {**self._by_node, name: shard}
        return shard
