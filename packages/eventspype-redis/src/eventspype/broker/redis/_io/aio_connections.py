"""The broker's own ``redis.asyncio`` connections, made like the user's client's.

The asyncio side of ``_io.connections``: the same recipe (the client's connection
class and options, no retries, a timeout, replies as bytes), with
``redis.asyncio``'s retry class, and the asyncio test of a plain client.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry

from eventspype.broker.redis._io.connections import connection_recipe, plain_client

__all__ = ["fast_path_client", "node_connection", "own_connection_options"]

#: fakeredis's asyncio client classes, as plain as ``redis.asyncio.Redis``.
_PLAIN_FAKES = frozenset({"FakeRedis", "FakeAsyncRedis"})


def own_connection_options(
    client: Any, timeout: float | None
) -> tuple[type[Any], dict[str, Any]]:
    """The class and options of a connection like the client's, for the broker.

    See ``_io.connections.connection_recipe``, with ``redis.asyncio``'s retry
    policy (none).

    Raises:
        TypeError: the client has no connection pool to copy.
    """
    recipe = connection_recipe(client, timeout, retry_class=Retry)
    if recipe is None:
        raise TypeError(
            "AsyncRedisBroker needs a client with a connection pool, such as "
            f"redis.asyncio.Redis; got {type(client).__name__}"
        )
    return recipe.connection_class, recipe.kwargs


def node_connection(node: Any) -> Any:
    """An unconnected connection of the broker's own to a ``redis.asyncio``
    cluster node (its ``ClusterNode``): the node's class and options, adjusted
    as ``own_connection_options`` adjusts a client's."""
    pool = SimpleNamespace(
        connection_class=node.connection_class,
        connection_kwargs={
            **node.connection_kwargs,
            "host": node.host,
            "port": node.port,
        },
    )
    recipe = connection_recipe(
        SimpleNamespace(connection_pool=pool), None, retry_class=Retry
    )
    if recipe is None:  # a ClusterNode always has both
        raise TypeError(f"cannot connect to cluster node {node!r}")
    return recipe.connect()


def fast_path_client(client: Any) -> bool:
    """Whether ``client`` is a plain ``redis.asyncio.Redis`` on a plain pool.

    The asyncio twin of ``_io.connections.fast_path_client``: only then is a
    PUBLISH on the broker's own connection the same as ``client.publish()``.
    """
    return plain_client(
        client, redis.asyncio.Redis, redis.asyncio.ConnectionPool, _PLAIN_FAKES
    )
