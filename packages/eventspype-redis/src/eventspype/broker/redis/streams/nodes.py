"""The cluster nodes a RedisStreamBroker talks to directly.

Publishing goes through the user's ``RedisCluster`` client, which routes each
XADD by its key. Everything else runs on the node that owns the stream's
slot, on connections of the broker's own (made like the client's connection
to that node, see ``_io.connections``: bytes, no retries):

* the dead-letter transactions (XADD to ``<stream>:dead`` and XACK or XDEL on
  ``<stream>``, in MULTI/EXEC): redis-py 5 has no transactions on a cluster,
  and both keys share the stream's hash tag, hence its slot and its node;
* the reader's blocking reads, one connection per master (see
  ``streams.cluster``), and waking them (``CLIENT UNBLOCK`` goes to the
  reader's own node: client ids are per node);
* group creation, ``XRANGE`` of dead letters and ``XINFO`` for ``stats()``.

The owner of a key is the one in the client's slot map. When a command finds
the map out of date (``MOVED``/``ASK``, ``CLUSTERDOWN``, ``TRYAGAIN``, or the
node is gone), :meth:`NodeClients.on_owner` refreshes the map and raises
``redis.ConnectionError``: the caller may try again, and then reaches the
new owner.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.exceptions import AskError, ClusterDownError, TryAgainError

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._io.connections import ConnectionRecipe, connection_recipe

__all__ = ["ELSEWHERE", "NodeClients"]

_T = TypeVar("_T")

#: Errors that mean "the slot map is out of date" (MovedError is an AskError).
ELSEWHERE = (
    AskError,
    ClusterDownError,
    TryAgainError,
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
)


class NodeClients:
    """The broker's own clients, one per node of ``cluster`` (see the module docs)."""

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self._clients: dict[str, redis.Redis] = {}
        self._lock = threading.Lock()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # The parent's connections are not the child's (nor is a lock some
        # parent thread held at the fork): start afresh.
        self._clients = {}
        self._lock = threading.Lock()

    def owner(self, key: bytes) -> str:
        """``host:port`` of the master owning ``key``'s slot, in the slot map.

        Raises:
            redis.ConnectionError: no node serves that slot now.
        """
        try:
            return str(self._cluster.get_node_from_key(key).name)
        except Exception as error:  # a slot not covered (yet)
            raise redis.ConnectionError(
                f"no node of the cluster serves {key!r} now: {error}"
            ) from error

    def recipe(self, name: str, timeout: float | None) -> ConnectionRecipe:
        """How to connect to the node ``name`` like the client does."""
        node = self._cluster.get_node(node_name=name)
        if node is None:
            raise redis.ConnectionError(f"node {name} is not in the slot map")
        recipe = connection_recipe(self._cluster.get_redis_connection(node), timeout)
        if recipe is None:  # a cluster node's client always has a pool
            raise redis.ConnectionError(f"no connection pool for node {name}")
        return recipe

    def client(self, name: str) -> redis.Redis:
        """A pooled client of node ``name`` (kept until :meth:`close`)."""
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                pool = self.recipe(name, None).pool()
                client = self._clients[name] = redis.Redis(connection_pool=pool)
            return client

    def on_owner(self, key: bytes, call: Callable[[redis.Redis], _T]) -> _T:
        """``call(client)`` on the master owning ``key`` (see the module docs)."""
        try:
            return call(self.client(self.owner(key)))
        except ELSEWHERE as error:
            self.refresh_quietly()
            if isinstance(error, redis.ConnectionError):
                raise
            raise redis.ConnectionError(
                f"the cluster's slot map was out of date for {key!r} "
                f"({type(error).__name__}: {error}); refreshed, try again"
            ) from error

    def refresh(self) -> None:
        """Read the slot map again (``CLUSTER SLOTS`` through the client).

        Raises:
            redis.ConnectionError: no node answers.
        """
        try:
            self._cluster.nodes_manager.initialize()
        except Exception as error:
            raise redis.ConnectionError(
                f"cannot refresh the cluster's slot map: {error}"
            ) from error

    def refresh_quietly(self) -> None:
        """:meth:`refresh`, ignoring failures (the next caller tries again)."""
        with contextlib.suppress(redis.ConnectionError):
            self.refresh()

    def close(self) -> None:
        """Disconnect every client made here."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                client.connection_pool.disconnect()
