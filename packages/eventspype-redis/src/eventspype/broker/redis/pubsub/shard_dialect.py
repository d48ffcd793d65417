"""Sharded Pub/Sub spoken over the listeners' dialect (no I/O).

The listeners speak ``SUBSCRIBE``/``UNSUBSCRIBE``/``PING`` and read
``message``/``subscribe``/``unsubscribe`` replies. On Redis Cluster a
shard's connection speaks SSUBSCRIBE/SUNSUBSCRIBE and gets ``smessage``,
``ssubscribe`` and ``sunsubscribe``: :class:`ShardDialect` translates both
ways, for the thread's link and the asyncio listener alike. Two things
become a lost connection there, not a refused channel, so that the listener
reconnects to the node that owns its channels by then: a ``sunsubscribe``
nobody asked for (the slot left the node: a failover demoted it, or a
resharding moved it), and a redirection or cluster error (``MOVED``,
``ASK``, ``CLUSTERDOWN``, ``TRYAGAIN``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ELSEWHERE_PREFIXES", "ShardDialect", "SlotMoved"]

_KINDS = {
    b"smessage": b"message",
    b"ssubscribe": b"subscribe",
    b"sunsubscribe": b"unsubscribe",
}
_COMMANDS = {"SUBSCRIBE": "SSUBSCRIBE", "UNSUBSCRIBE": "SUNSUBSCRIBE"}
#: Error replies that mean "not this node (now)".
ELSEWHERE_PREFIXES = ("MOVED ", "ASK ", "CLUSTERDOWN", "TRYAGAIN")


class SlotMoved(Exception):
    """The node does not serve a channel (any more): reconnect elsewhere."""


class ShardDialect:
    """Translates one sharded connection's commands and replies."""

    def __init__(self, node_name: str | None = None) -> None:
        #: ``host:port`` of the node, for messages.
        self.node_name = node_name
        # SUNSUBSCRIBEs sent and not yet confirmed, per channel: any other
        # sunsubscribe is Redis ending the subscription by itself.
        self._leaving: dict[bytes, int] = {}

    def commands(self, commands: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``commands`` in the sharded dialect (recorded for :meth:`reply`)."""
        sharded = []
        for command, *channels in commands:
            if command == "UNSUBSCRIBE":
                for channel in channels:
                    self._leaving[channel] = self._leaving.get(channel, 0) + 1
            sharded.append((_COMMANDS.get(command, command), *channels))
        return sharded

    def reply(self, response: Any) -> Any:
        """A sharded reply in the listeners' dialect.

        Raises:
            SlotMoved: an ``sunsubscribe`` nobody asked for.
        """
        if not isinstance(response, list) or not response:
            return response
        kind = response[0]
        kind = kind.encode() if isinstance(kind, str) else kind
        if kind == b"sunsubscribe" and len(response) >= 2:
            self._left(response[1])
        return [_KINDS.get(kind, kind), *response[1:]]

    def check_error(self, text: str) -> None:
        """Raise :class:`SlotMoved` if the error reply ``text`` means "elsewhere"."""
        if text.startswith(ELSEWHERE_PREFIXES):
            raise SlotMoved(
                f"node {self.node_name} does not serve a channel now: {text}"
            )

    def _left(self, channel: Any) -> None:
        if isinstance(channel, str):
            channel = channel.encode()
        pending = self._leaving.get(channel, 0)
        if pending > 1:
            self._leaving[channel] = pending - 1
        elif pending == 1:
            del self._leaving[channel]
        else:
            raise SlotMoved(
                f"node {self.node_name} ended the subscription to {channel!r}: "
                "its slot moved to another node"
            )
