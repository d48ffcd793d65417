"""The listener's Pub/Sub connection: what it sends, what it reads, how it is woken.

Two kinds, one interface:

* :class:`ConnectionLink` (every client with a connection pool, and each
  shard of a ``RedisCluster`` with sharded Pub/Sub): a connection of the
  broker's own (see ``_io.connections``), used directly. redis-py's ``PubSub``
  would reconnect and re-subscribe by itself, inside ``get_message`` and
  ``subscribe``, with the client's retry policy; the listener does that itself,
  so nothing here ever reconnects: a connection that drops stays dropped, and
  one that redis-py re-opened underneath (a send on a disconnected connection
  does that) is reported as lost, because it is subscribed to nothing.
* :class:`PubSubLink` (clients without a pool, such as ``RedisCluster``): the
  client's own ``pubsub()``, with whatever retry policy the client has.

Replies are normalized to ``(kind, channel, data)``, with ``kind`` and
``channel`` as bytes: ``(b"message", channel, data)``, ``(b"subscribe",
channel, None)``, ``(b"unsubscribe", channel, None)``, ``(b"pong", None, None)``,
and ``(b"error", None, ResponseError)`` for an error reply to a command (an
ACL refusal): that is an answer, not a broken connection.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.exceptions import AskError, ClusterDownError, TryAgainError

from eventspype.broker.redis._io.connections import ConnectionRecipe, connection_recipe
from eventspype.broker.redis.pubsub.shard_dialect import ShardDialect, SlotMoved

__all__ = [
    "ConnectionLink",
    "Link",
    "PubSubLink",
    "Reply",
    "UndecodableMessage",
    "link_factory",
]

Reply = tuple[bytes, "bytes | None", Any]
#: Error replies that mean "not this node (now)" (MOVED is an AskError).
_ELSEWHERE = (AskError, ClusterDownError, TryAgainError)
#: Commands to send at once: ``("SUBSCRIBE", channel)``, ``("PING",)``, ...
Commands = Sequence[tuple[Any, ...]]


class UndecodableMessage(redis.ConnectionError):
    """A client that decodes responses met a message that is not text.

    The parser cannot skip it (it would read it again), so the connection is
    given up; the listener counts the message as dropped.
    """


class Link(ABC):
    """One Pub/Sub connection (see the module docs)."""

    @abstractmethod
    def open(self) -> None:
        """Connect (raises when the server cannot be reached)."""

    @abstractmethod
    def send(self, commands: Commands) -> None:
        """Send ``SUBSCRIBE``/``UNSUBSCRIBE`` (one channel each) or ``PING``.

        The replies come through :meth:`read`, in order.
        """

    @abstractmethod
    def read(self, timeout: float) -> Reply | None:
        """The next reply, or ``None`` after ``timeout`` seconds without one.

        Raises when the connection is broken (any exception).
        """

    @abstractmethod
    def interrupt(self) -> bool:
        """Make a blocked :meth:`read` return (raising) now; from any thread.

        Never blocks. ``False`` when the connection has no socket to shut down
        (fakeredis): the caller may send a PING instead, whose reply wakes it.
        """

    @abstractmethod
    def close(self) -> None:
        """Close the connection, quietly."""


class ConnectionLink(Link):
    """A connection of the broker's own, to a server or to one cluster shard.

    ``target()`` (called by :meth:`open`) says where: the recipe of the
    connection and, for a shard, the node's name. A sharded link speaks
    SSUBSCRIBE/SUNSUBSCRIBE and translates the replies to the listener's
    dialect; a redirection (``MOVED``, ``ASK``), ``CLUSTERDOWN``/``TRYAGAIN``
    or an ``sunsubscribe`` nobody asked for (the slot moved) is a lost
    connection there, not a refused channel (see ``pubsub.shard_link``).

    Read directly rather than through ``PubSub.get_message``: besides the
    reconnection it must not do, ``PubSub`` adds a dict per message and a
    lock and health check per read. ``benchmarks/bench_redis.py`` measures the
    whole receive path against a raw ``get_message`` loop: 1.5x to 2.0x its
    throughput ("throughput" row), at 0.7x its p50 latency.
    """

    def __init__(
        self,
        target: Callable[[], tuple[ConnectionRecipe, str | None]],
        *,
        sharded: bool,
    ) -> None:
        self._target = target
        self._dialect = ShardDialect() if sharded else None
        self._connection: Any = None
        self._connects = 0
        # A send failed (and redis-py disconnected): sending again would
        # reconnect, from a thread that is not the reader.
        self._failed = False
        #: ``host:port`` of the shard's node, once opened (for logs and tests).
        self.node_name: str | None = None

    def _connected(self, connection: Any) -> None:
        # Counts every (re)connection, including those redis-py makes by
        # itself when a command is sent on a disconnected connection.
        self._connects += 1

    def open(self) -> None:
        recipe, self.node_name = self._target()
        if self._dialect is not None:
            self._dialect.node_name = self.node_name
        connection = self._connection = recipe.connect()
        connection.register_connect_callback(self._connected)
        connection.connect()
        _quiet_push_messages(connection)

    def send(self, commands: Commands) -> None:
        connection = self._connection
        if self._failed or connection is None:
            raise redis.ConnectionError("the Pub/Sub connection failed")
        if self._dialect is not None:
            commands = self._dialect.commands(commands)
        try:
            connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
        except BaseException:
            self._failed = True
            raise

    def read(self, timeout: float) -> Reply | None:
        connection = self._connection
        if self._failed or connection is None:
            raise redis.ConnectionError("the Pub/Sub connection failed")
        response: Any = None
        ready = connection.can_read(timeout=timeout)
        if ready:
            try:
                response = connection.read_response(
                    disconnect_on_error=False, push_request=True
                )
            except redis.ResponseError as error:
                if self._dialect is not None and isinstance(error, _ELSEWHERE):
                    raise redis.ConnectionError(
                        f"node {self.node_name} does not serve a channel now: "
                        f"{type(error).__name__}: {error}"
                    ) from None
                response = error  # a refusal of one command (an ACL)
        if self._connects > 1:
            raise redis.ConnectionError(
                "the Pub/Sub connection was re-opened without its subscriptions"
            )
        if not ready:
            return None
        if self._dialect is not None:
            try:
                response = self._dialect.reply(response)
            except SlotMoved as error:
                raise redis.ConnectionError(str(error)) from None
        return _normalize(response)

    def interrupt(self) -> bool:
        return _shut_down(self._connection)

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # broken already
                self._connection.disconnect()


class PubSubLink(Link):
    """The client's own ``pubsub()`` (see the module docs)."""

    def __init__(self, client: Any, encoding: str) -> None:
        self._pubsub = client.pubsub()
        self._encoding = encoding

    def open(self) -> None:
        pass  # the client's PubSub connects when it first sends

    def send(self, commands: Commands) -> None:
        for command, *channels in commands:
            if command == "SUBSCRIBE":
                self._pubsub.subscribe(*channels)
            elif command == "UNSUBSCRIBE":
                self._pubsub.unsubscribe(*channels)
            else:
                self._pubsub.ping()

    def read(self, timeout: float) -> Reply | None:
        try:
            message = self._pubsub.get_message(timeout=timeout)
        except UnicodeDecodeError as error:
            raise UndecodableMessage(f"a message is not text: {error}") from None
        except redis.ResponseError as error:
            return (b"error", None, error)
        if message is None:
            return None
        kind, channel, data = message["type"], message["channel"], message["data"]
        if isinstance(channel, str):
            channel = channel.encode(self._encoding)
        if isinstance(data, str):
            data = data.encode(self._encoding)
        return _normalize([kind, channel, data])

    def interrupt(self) -> bool:
        return _shut_down(getattr(self._pubsub, "connection", None))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # broken already: nothing to release
            self._pubsub.close()


def link_factory(client: Any, encoding: str) -> Callable[[], Link]:
    """How the listener opens its connection to ``client``'s server."""
    recipe = connection_recipe(client, None)
    if recipe is None:
        return functools.partial(PubSubLink, client, encoding)
    target = (recipe, None)
    return functools.partial(ConnectionLink, lambda: target, sharded=False)


def _normalize(response: Any) -> Reply | None:
    if isinstance(response, redis.ResponseError):
        return (b"error", None, response)
    if isinstance(response, (bytes, str)):  # PING's reply with RESP3
        return (b"pong", None, None)
    if not isinstance(response, list) or len(response) < 2:
        return None  # not Pub/Sub traffic (a RESP3 notification, say)
    kind = response[0]
    if isinstance(kind, str):
        kind = kind.encode()
    if kind == b"message" and len(response) >= 3:
        return (kind, response[1], response[2])
    if kind in (b"subscribe", b"unsubscribe"):
        return (kind, response[1], None)
    if kind == b"pong":
        return (kind, None, None)
    return None


def _shut_down(connection: Any) -> bool:
    # shutdown(), unlike close(), wakes a thread blocked reading the socket, and
    # is safe from any thread. The socket is a private attribute of redis-py's
    # connections (redis-py has no public way to wake a blocked reader:
    # disconnect() from another thread races with it): without one nobody is
    # reading (a connect in progress ends within its timeout); with some other
    # object (fakeredis) say so.
    sock = getattr(connection, "_sock", None)
    if sock is None:
        return True
    if not isinstance(sock, socket.socket):
        return False
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
    return True


def _identity(response: Any) -> Any:
    return response


def _quiet_push_messages(connection: Any) -> None:
    # With RESP3 every Pub/Sub message is a "push"; redis-py's default handler
    # formats each one into a log record (at INFO in redis-py 5, where PubSub
    # also attaches a stream handler). The listener reads them as replies.
    # The parser is private, but this is what redis-py's own PubSub does to it
    # (there is no public setter on a connection).
    parser = getattr(connection, "_parser", None)
    for name in ("set_pubsub_push_handler", "set_push_handler"):
        setter = getattr(parser, name, None)
        if callable(setter):
            setter(_identity)
            return
