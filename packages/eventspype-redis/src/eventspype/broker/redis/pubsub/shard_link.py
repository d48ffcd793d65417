"""A sharded Pub/Sub connection: SSUBSCRIBE on the master that owns the channels.

On Redis Cluster (7+), a shard channel lives on the shard that owns its hash
slot (CRC16 of the name, or of the part in ``{...}``, modulo 16384), like a
key: SPUBLISH is delivered by that shard alone, and only a connection to that
shard's master receives it. :class:`ShardLink` is such a connection, for the
listener of :mod:`~pubsub.sharded`; it speaks the listener's dialect
(``SUBSCRIBE``/``UNSUBSCRIBE``/``PING`` in, ``message``/``subscribe``/
``unsubscribe``/``error`` replies out, see :mod:`~pubsub.link`) and translates:

* The node is chosen when the link opens: the master owning most of the
  channels of its listener, in the client's slot map. A link opened after a
  failure refreshes that map first (``CLUSTER SLOTS`` through the client), so
  that after a failover it finds the promoted replica. The channels that
  another node owns by then (after a resharding) are handed to ``reroute``,
  which moves them to the listener of their node before this one subscribes.
* When its slot leaves the node (a failover that demoted it, a resharding),
  Redis ends the subscription by itself with an ``sunsubscribe`` nobody asked
  for; a redirection (``MOVED``, ``ASK``) or ``CLUSTERDOWN``/``TRYAGAIN``
  answers a command sent to a node that is not, or not yet, the owner. Both
  are reported as a lost connection, not as a refused channel: the listener
  opens a new link and subscribes every channel again.

The connection is the broker's own, made like the client's connection to that
node (see ``_io.connections``), without retries: the listener reconnects itself.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import AskError, ClusterDownError, TryAgainError

from eventspype.broker.redis._io.connections import connection_recipe
from eventspype.broker.redis.pubsub.link import (
    Commands,
    Link,
    Reply,
    _normalize,
    _quiet_push_messages,
    _shut_down,
)

__all__ = ["ShardLink", "ShardLinkFactory"]

#: Sharded reply kinds, as the listener knows them.
_KINDS = {
    b"smessage": b"message",
    b"ssubscribe": b"subscribe",
    b"sunsubscribe": b"unsubscribe",
}
_COMMANDS = {"SUBSCRIBE": "SSUBSCRIBE", "UNSUBSCRIBE": "SUNSUBSCRIBE"}
#: Error replies that mean "not this node (now)": reconnect, do not refuse.
_ELSEWHERE = (AskError, ClusterDownError, TryAgainError)

#: ``reroute(channels)``: give ``channels`` to the listeners of their nodes.
Reroute = Callable[[list[bytes]], None]


class ShardLinkFactory:
    """Makes the links of one shard's listener (``Listener(new_link=...)``).

    ``channels()`` lists the channels routed to that listener. Every link
    after the first refreshes the client's slot map before it looks up its
    node: it replaces a link that failed, maybe because the node is gone. The
    owner of the listener sets ``channels`` and ``reroute`` once it is made.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._made = 0
        self.channels: Callable[[], list[bytes]] = list
        self.reroute: Reroute = _keep

    def __call__(self) -> ShardLink:
        self._made += 1
        return ShardLink(
            self._client,
            refresh=self._made > 1,
            channels=self.channels,
            reroute=self.reroute,
        )


def _keep(channels: list[bytes]) -> None:
    """The default ``reroute``: keep the channels (they get ``MOVED``)."""


class ShardLink(Link):
    """One connection to the master owning some shard channels (see the module docs)."""

    def __init__(
        self,
        client: Any,
        *,
        refresh: bool,
        channels: Callable[[], list[bytes]],
        reroute: Reroute,
    ) -> None:
        self._client = client
        self._refresh = refresh
        self._channels = channels
        self._reroute = reroute
        self._connection: Any = None
        self._connects = 0
        self._failed = False
        # SUNSUBSCRIBEs sent and not yet confirmed, per channel: any other
        # sunsubscribe is Redis ending the subscription by itself.
        self._leaving: dict[bytes, int] = {}
        #: ``host:port`` of the node, once opened (for logs and tests).
        self.node_name: str | None = None

    def _connected(self, connection: Any) -> None:
        self._connects += 1

    def open(self) -> None:
        if self._refresh:
            try:
                self._client.nodes_manager.initialize()
            except Exception as error:  # no node answers: back off, try again
                raise redis.ConnectionError(
                    f"cannot refresh the cluster's slot map: {error}"
                ) from error
        node = self._choose_node()
        recipe = connection_recipe(self._client.get_redis_connection(node), None)
        if recipe is None:  # a cluster node's client always has a pool
            raise redis.ConnectionError(f"no connection pool for node {node.name}")
        connection = self._connection = recipe.connect()
        self.node_name = str(node.name)
        connection.register_connect_callback(self._connected)
        connection.connect()
        _quiet_push_messages(connection)

    def _choose_node(self) -> Any:
        try:
            owners = {c: self._client.get_node_from_key(c) for c in self._channels()}
        except Exception as error:  # a slot not covered (yet): back off
            raise redis.ConnectionError(
                f"no node of the cluster serves these channels now: {error}"
            ) from error
        counts = Counter(n.name for n in owners.values() if n is not None)
        if not counts:
            nodes = self._client.get_primaries()
            if not nodes:
                raise redis.ConnectionError("the cluster has no master")
            return nodes[0]
        name = counts.most_common(1)[0][0]
        elsewhere = [c for c, n in owners.items() if n is None or n.name != name]
        if elsewhere:
            self._reroute(elsewhere)
        return next(n for n in owners.values() if n is not None and n.name == name)

    def send(self, commands: Commands) -> None:
        connection = self._connection
        if self._failed or connection is None:
            raise redis.ConnectionError("the sharded Pub/Sub connection failed")
        sharded = []
        for command, *channels in commands:
            if command == "UNSUBSCRIBE":
                for channel in channels:
                    self._leaving[channel] = self._leaving.get(channel, 0) + 1
            sharded.append((_COMMANDS.get(command, command), *channels))
        try:
            connection.send_packed_command(
                connection.pack_commands(sharded), check_health=False
            )
        except BaseException:
            self._failed = True
            raise

    def read(self, timeout: float) -> Reply | None:
        connection = self._connection
        if self._failed or connection is None:
            raise redis.ConnectionError("the sharded Pub/Sub connection failed")
        response: Any = None
        ready = connection.can_read(timeout=timeout)
        if ready:
            try:
                response = connection.read_response(
                    disconnect_on_error=False, push_request=True
                )
            except _ELSEWHERE as error:
                raise redis.ConnectionError(
                    f"node {self.node_name} does not serve a channel now: "
                    f"{type(error).__name__}: {error}"
                ) from None
            except redis.ResponseError as error:
                response = error  # a refusal of one command (an ACL)
        if self._connects > 1:
            raise redis.ConnectionError(
                "the sharded Pub/Sub connection was re-opened without its subscriptions"
            )
        if not ready:
            return None
        if isinstance(response, list) and response:
            kind = response[0]
            kind = kind.encode() if isinstance(kind, str) else kind
            if kind == b"sunsubscribe" and len(response) >= 2:
                self._left(response[1])
            response = [_KINDS.get(kind, kind), *response[1:]]
        return _normalize(response)

    def _left(self, channel: Any) -> None:
        if isinstance(channel, str):
            channel = channel.encode()
        pending = self._leaving.get(channel, 0)
        if pending > 1:
            self._leaving[channel] = pending - 1
        elif pending == 1:
            del self._leaving[channel]
        else:
            raise redis.ConnectionError(
                f"node {self.node_name} ended the subscription to {channel!r}: "
                "its slot moved to another node"
            )

    def interrupt(self) -> bool:
        return _shut_down(self._connection)

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # broken already
                self._connection.disconnect()
