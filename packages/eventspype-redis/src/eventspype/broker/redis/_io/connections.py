"""The broker's own connections, built with the settings of the user's client.

The broker keeps no connection of the client's pool: a pool capped at a few
connections would starve the user's own commands, and a connection from it
carries the client's retry policy (redis-py 6+ retries with seconds of
backoff) and maybe no timeout at all (redis-py 5's default). Instead it copies
the client's connection class and options (host, TLS, credentials, Sentinel
lookup, database, protocol, ...) and changes what it must:

* no retries: the listener reconnects by itself, with backoff it controls, and
  ``publish()`` must raise at once during an outage rather than back off while
  holding a lock;
* bounded waits: a ``socket_timeout`` (and connect timeout) when the client has
  none, so a stalled server makes calls fail instead of hang;
* replies as bytes: with ``decode_responses=True`` redis-py decodes messages
  while parsing, and one non-UTF-8 message would look like a broken connection.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "DEFAULT_TIMEOUT",
    "ConnectionRecipe",
    "client_encoding",
    "connection_recipe",
    "fast_path_client",
    "lacks_socket_timeout",
    "plain_client",
]

#: The timeout of the broker's connections when the client sets none.
DEFAULT_TIMEOUT = 5.0

#: fakeredis's client classes, which are as plain as ``redis.Redis`` (named, so
#: that fakeredis stays a test dependency).
_PLAIN_FAKES = frozenset({"FakeRedis", "FakeStrictRedis"})


class ConnectionRecipe:
    """How to open a connection like the client's, for the broker's own use."""

    __slots__ = ("connection_class", "kwargs")

    def __init__(self, connection_class: type[Any], kwargs: dict[str, Any]) -> None:
        self.connection_class = connection_class
        self.kwargs = kwargs

    def connect(self) -> Any:
        """A new, unconnected connection (``connect()`` it yourself)."""
        return self.connection_class(**self.kwargs)

    def pool(self) -> redis.ConnectionPool:
        """A pool of such connections, owned by the broker."""
        return redis.ConnectionPool(
            connection_class=self.connection_class, **self.kwargs
        )


def _pool_kwargs(client: Any) -> dict[str, Any] | None:
    """The options the client's pool opens connections with, if it has a pool."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    return kwargs if isinstance(kwargs, dict) else None


def connection_recipe(
    client: Any, timeout: float | None, *, retry_class: type[Any] = Retry
) -> ConnectionRecipe | None:
    """The client's connection class and options, adjusted (see the module docs).

    ``timeout`` replaces the client's ``socket_timeout`` when given; without it
    the client's is kept, or :data:`DEFAULT_TIMEOUT` if it has none.
    ``retry_class`` is the ``Retry`` of the client's flavour (``redis.asyncio``
    has its own), set to retry nothing. ``None`` when the client has no pool
    to copy from (``RedisCluster``, for instance).
    """
    connection_class = getattr(
        getattr(client, "connection_pool", None), "connection_class", None
    )
    kwargs = _pool_kwargs(client)
    if not isinstance(connection_class, type) or kwargs is None:
        return None
    socket_timeout = timeout or kwargs.get("socket_timeout") or DEFAULT_TIMEOUT
    connect_timeout = kwargs.get("socket_connect_timeout") or socket_timeout
    options = {
        **kwargs,
        "decode_responses": False,
        "retry": retry_class(NoBackoff(), 0),
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
    }
    # redis-py 8 restores these after a server maintenance window.
    if "orig_socket_timeout" in kwargs:
        options["orig_socket_timeout"] = socket_timeout
    if "orig_socket_connect_timeout" in kwargs:
        options["orig_socket_connect_timeout"] = connect_timeout
    return ConnectionRecipe(connection_class, options)


def fast_path_client(client: Any) -> bool:
    """Whether ``client`` is a plain ``redis.Redis`` on a plain ``ConnectionPool``.

    Only then is sending PUBLISH on the broker's own connection the same as
    ``client.publish()``: a subclass may route or instrument commands, and a
    ``BlockingConnectionPool`` (or any other pool) may be meant to cap the
    connections to the server.
    """
    return plain_client(client, redis.Redis, redis.ConnectionPool, _PLAIN_FAKES)


def plain_client(
    client: Any, client_class: type, pool_class: type, fakes: frozenset[str]
) -> bool:
    """Whether ``client`` is exactly ``client_class`` (or one of fakeredis's
    classes named in ``fakes``) on a pool of exactly ``pool_class``."""
    cls = type(client)
    plain = cls is client_class or (
        cls.__module__.partition(".")[0] == "fakeredis" and cls.__name__ in fakes
    )
    return plain and type(getattr(client, "connection_pool", None)) is pool_class


def lacks_socket_timeout(client: Any) -> bool:
    """Whether the client's commands may wait forever for a reply.

    ``False`` when the client has no pool to tell (its own defaults apply).
    """
    kwargs = _pool_kwargs(client)
    return kwargs is not None and not kwargs.get("socket_timeout")


def client_encoding(client: Any) -> str:
    """The encoding the client uses for channel names (UTF-8 unless set)."""
    kwargs = _pool_kwargs(client)
    if kwargs is not None and kwargs.get("encoding"):
        return str(kwargs["encoding"])
    get_encoder = getattr(client, "get_encoder", None)
    if callable(get_encoder):
        try:
            return str(get_encoder().encoding)
        except Exception:  # an exotic client: UTF-8 is redis-py's default
            return "utf-8"
    return "utf-8"
