"""A sharded Pub/Sub connection: SSUBSCRIBE on the master that owns the channels.

On Redis Cluster (7+), a shard channel lives on the shard that owns its hash
slot (CRC16 of the name, or of the part in ``{...}``, modulo 16384), like a
key: SPUBLISH is delivered by that shard alone, and only a connection to that
shard's master receives it. :class:`ShardLink` is such a connection, for the
listener of :mod:`~._sharded_listener`; it speaks the listener's dialect
(``SUBSCRIBE``/``UNSUBSCRIBE``/``PING`` in, ``message``/``subscribe``/
``unsubscribe`` replies out, see :mod:`~._link`) and translates:

* Redis refuses an SSUBSCRIBE whose channels lie in different slots
  (``CROSSSLOT``), so each command is split into one per slot.
* The node is looked up when the link opens, in the client's slot map; a link
  opened after a failure refreshes that map first (``CLUSTER SLOTS`` through
  the client), so that after a failover it finds the promoted replica.
* When its slot leaves the node (a failover that demoted it, a resharding),
  Redis ends the subscription by itself with an ``sunsubscribe`` nobody asked
  for. The link then reports the connection as lost, and the listener opens a
  new one and subscribes every channel again. A refused command (``MOVED``)
  is handled the same way.
* A link opens on the node that owns most of its channels. Channels owned by
  other nodes (after a resharding) are handed to ``reroute``, which gives them
  to the listener of their node; here they are answered locally (a
  ``subscribe`` now, an ``unsubscribe`` when the listener lets them go), so
  that the listener's bookkeeping of confirmations stays whole.

The connection is the broker's own, made like the client's connection to that
node (see ``_connections``), without retries: the listener reconnects itself.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.crc import key_slot

from eventspype.broker.redis._connections import connection_recipe
from eventspype.broker.redis._link import (
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


#: ``reroute(channels)``: give ``channels`` to the listeners of their nodes.
Reroute = Callable[[list[bytes]], None]


class ShardLinkFactory:
    """Makes the links of one shard's listener (``Listener(new_link=...)``).

    Every link after the first refreshes the client's slot map before it
    looks up its node: it replaces a link that failed, maybe because the node
    is gone. ``reroute`` is set by the owner of the listener, once made.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._made = 0
        self.reroute: Reroute = _keep

    def __call__(self) -> ShardLink:
        self._made += 1
        return ShardLink(self._client, refresh=self._made > 1, reroute=self.reroute)


def _keep(channels: list[bytes]) -> None:
    raise redis.ConnectionError(f"{channels!r} are served by another node")


class ShardLink(Link):
    """One connection to the master owning some shard channels (see the module docs)."""

    def __init__(self, client: Any, *, refresh: bool, reroute: Reroute) -> None:
        self._client = client
        self._refresh = refresh
        self._reroute = reroute
        # Channels handed to other listeners, and the replies owed for them.
        self._elsewhere: set[bytes] = set()
        self._owed: deque[Reply] = deque()
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

    def open(self, channels: list[bytes]) -> None:
        if self._refresh:
            try:
                self._client.nodes_manager.initialize()
            except Exception as error:  # no node answers: back off, try again
                raise redis.ConnectionError(
                    f"cannot refresh the cluster's slot map: {error}"
                ) from error
        try:
            owners = {c: self._client.get_node_from_key(c) for c in channels}
        except Exception as error:  # a slot not covered (yet): back off
            raise redis.ConnectionError(
                f"no node of the cluster serves these channels now: {error}"
            ) from error
        counts = Counter(n.name for n in owners.values() if n is not None)
        if not counts:
            raise redis.ConnectionError(
                f"no node of the cluster serves the slot of {channels[0]!r}"
            )
        name = counts.most_common(1)[0][0]
        node = next(n for n in owners.values() if n is not None and n.name == name)
        recipe = connection_recipe(self._client.get_redis_connection(node), None)
        if recipe is None:  # a cluster node's client always has a pool
            raise redis.ConnectionError(f"no connection pool for node {node.name}")
        connection = self._connection = recipe.connect()
        self.node_name = str(node.name)
        connection.register_connect_callback(self._connected)
        connection.connect()
        _quiet_push_messages(connection)
        mine = [c for c in channels if (n := owners[c]) is not None and n.name == name]
        self._send_by_slot("SSUBSCRIBE", mine)
        elsewhere = [c for c in channels if c not in set(mine)]
        if elsewhere:
            self._elsewhere.update(elsewhere)
            self._owed.extend((b"subscribe", c, None) for c in elsewhere)
            self._reroute(elsewhere)

    def send(self, command: str, *channels: bytes) -> None:
        if self._failed or self._connection is None:
            raise redis.ConnectionError("the sharded Pub/Sub connection failed")
        try:
            if command == "PING":
                self._connection.send_command("PING", check_health=False)
                return
            if command == "UNSUBSCRIBE":
                gone = [c for c in channels if c in self._elsewhere]
                self._elsewhere.difference_update(gone)
                self._owed.extend((b"unsubscribe", c, None) for c in gone)
                channels = tuple(c for c in channels if c not in set(gone))
                for channel in channels:
                    self._leaving[channel] = self._leaving.get(channel, 0) + 1
            else:
                self._elsewhere.difference_update(channels)
            self._send_by_slot(_COMMANDS[command], channels)
        except BaseException:
            self._failed = True
            raise

    def _send_by_slot(self, command: str, channels: Iterable[bytes]) -> None:
        by_slot: defaultdict[int, list[bytes]] = defaultdict(list)
        for channel in channels:
            by_slot[key_slot(channel)].append(channel)
        for group in by_slot.values():
            self._connection.send_command(command, *group, check_health=False)

    def read(self, timeout: float) -> Reply | None:
        connection = self._connection
        if self._failed or connection is None:
            raise redis.ConnectionError("the sharded Pub/Sub connection failed")
        if self._owed:
            return self._owed.popleft()
        response = None
        ready = connection.can_read(timeout=timeout)
        if ready:
            response = connection.read_response(
                disconnect_on_error=False, push_request=True
            )
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
