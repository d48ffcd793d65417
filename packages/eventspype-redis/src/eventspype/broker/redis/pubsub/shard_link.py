"""Where a shard's Pub/Sub connection goes: the master that owns its channels.

On Redis Cluster (7+), a shard channel lives on the shard that owns its hash
slot (CRC16 of the name, or of the part in ``{...}``, modulo 16384), like a
key: SPUBLISH is delivered by that shard alone, and only a connection to that
shard's master receives it. Each shard listener's connection is a sharded
:class:`~pubsub.link.ConnectionLink` (the one link class; it speaks
SSUBSCRIBE and reports a slot that moved as a lost connection);
:class:`ShardLinkFactory` decides where it goes:

* The node is chosen when the link opens: the master owning most of the
  channels of its listener, in the client's slot map. A link opened after a
  failure refreshes that map first (``CLUSTER SLOTS`` through the client), so
  that after a failover it finds the promoted replica. The channels that
  another node owns by then (after a resharding) are handed to ``reroute``,
  which moves them (and whoever waits for them) to the listener of their
  node before this one subscribes.
* The node chosen is reported to ``settled`` (the listener now serves that
  node: after a failover, the promoted replica), so that new channels of that
  node go to this listener rather than to a second one.

The connection is the broker's own, made like the client's connection to that
node (see ``_io.connections``), without retries: the listener reconnects itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

from eventspype.broker.redis._io.connections import ConnectionRecipe, connection_recipe
from eventspype.broker.redis.pubsub.link import ConnectionLink

__all__ = ["ShardLinkFactory"]

#: ``reroute(channels)``: give ``channels`` to the listeners of their nodes.
Reroute = Callable[[list[bytes]], None]


def _keep(channels: list[bytes]) -> None:
    """The default ``reroute``: keep the channels (they get ``MOVED``)."""


def _ignore(node_name: str) -> None:
    """The default ``settled``."""


class ShardLinkFactory:
    """Makes the links of one shard's listener (``Listener(new_link=...)``).

    ``channels()`` lists the channels routed to that listener. Every link
    after the first refreshes the client's slot map before it looks up its
    node: it replaces a link that failed, maybe because the node is gone. The
    owner of the listener sets ``channels``, ``reroute`` and ``settled`` once
    it is made.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._made = 0
        self.channels: Callable[[], list[bytes]] = list
        self.reroute: Reroute = _keep
        self.settled: Callable[[str], None] = _ignore

    def __call__(self) -> ConnectionLink:
        self._made += 1
        refresh = self._made > 1
        return ConnectionLink(lambda: self._target(refresh), sharded=True)

    def _target(self, refresh: bool) -> tuple[ConnectionRecipe, str]:
        """Where the link connects (on the listener thread, from ``open``)."""
        if refresh:
            try:
                self._client.nodes_manager.initialize()
            except Exception as error:  # no node answers: back off, try again
                raise redis.ConnectionError(
                    f"cannot refresh the cluster's slot map: {error}"
                ) from error
        node = self._choose_node()
        name = str(node.name)
        self.settled(name)  # raises if another listener serves it
        recipe = connection_recipe(self._client.get_redis_connection(node), None)
        if recipe is None:  # a cluster node's client always has a pool
            raise redis.ConnectionError(f"no connection pool for node {name}")
        return recipe, name

    def _choose_node(self) -> Any:
        try:
            owners = {c: self._client.get_node_from_key(c) for c in self.channels()}
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
            self.reroute(elsewhere)
        return next(n for n in owners.values() if n is not None and n.name == name)
