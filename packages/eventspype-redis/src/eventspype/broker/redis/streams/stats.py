"""Counters of a RedisStreamBroker and the snapshot ``stats()`` returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import redis

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._wire.stats import DROP_REASONS, CounterName, Counters

__all__ = ["ChannelBacklog", "RedisStreamStats", "StreamCounters", "read_backlog"]


@dataclass(frozen=True)
class ChannelBacklog:
    """What the consumer group still has to do on one channel (``XINFO GROUPS``).

    Attributes:
        pending: Entries delivered to a consumer of the group and not yet
            acknowledged (in hand, failed and waiting for ``claim_idle``, or
            left by a consumer that died).
        lag: Entries in the stream the group has not read yet; ``None`` when
            Redis cannot tell (entries were trimmed or deleted past the
            group's position, or a server older than 7.0).
    """

    pending: int
    lag: int | None


@dataclass(frozen=True)
class RedisStreamStats:
    """A snapshot of a :class:`RedisStreamBroker`'s counters and backlog.

    Counts start at zero when the broker is created and only grow; they are
    this process's. ``channels`` is read from Redis when the snapshot is taken
    and is shared by every consumer of the group.

    Attributes:
        published: Events Redis accepted (a batch counts once it is sent).
        publish_errors: ``publish()`` calls (or batches) that raised.
        delivered: Entries decoded and handed to this process's subscribers,
            redeliveries included.
        acknowledged: Entries acknowledged (XACK) by this consumer, whether
            handled, dead-lettered or dropped.
        redelivered: Deliveries of an entry that had been delivered before
            (to this or another consumer): the duplicates a handler may see.
        claimed: Entries this consumer took over with XAUTOCLAIM after they
            stayed unacknowledged for ``claim_idle``.
        dead_lettered: Entries this consumer moved to a dead-letter stream.
        dropped: Entries (or, for ``class_mismatch``, subscriber deliveries)
            refused by the receiver checks or publication rules, by reason
            (every reason present, possibly 0). See the broker for which are
            dead-lettered.
        subscriber_errors: Subscriber calls that raised.
        reconnects: Times the reader re-established its connection.
        channels: Per subscribed channel, the group's backlog; a channel whose
            backlog could not be read (Redis down) is missing.
    """

    published: int = 0
    publish_errors: int = 0
    delivered: int = 0
    acknowledged: int = 0
    redelivered: int = 0
    claimed: int = 0
    dead_lettered: int = 0
    dropped: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(DROP_REASONS, 0))
    )
    subscriber_errors: int = 0
    reconnects: int = 0
    channels: Mapping[str, ChannelBacklog] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def dropped_total(self) -> int:
        """All dropped entries, whatever the reason."""
        return sum(self.dropped.values())

    @property
    def pending(self) -> int:
        """Pending entries of the group over every channel in ``channels``."""
        return sum(backlog.pending for backlog in self.channels.values())


#: The stream-only counts :meth:`StreamCounters.add` also bumps.
StreamCounterName = Literal["acknowledged", "claimed", "dead_lettered", "redelivered"]


class StreamCounters(Counters):
    """:class:`~_wire.stats.Counters` plus the stream-only counts.

    Changed only through the methods, under the counters' lock, like the
    others: one reader thread per cluster node writes them.
    """

    __slots__ = ("acknowledged", "claimed", "dead_lettered", "redelivered")

    def __init__(self) -> None:
        super().__init__()
        register_for_fork(self)

    def _reset(self) -> None:
        super()._reset()
        self.acknowledged = 0
        self.redelivered = 0
        self.claimed = 0
        self.dead_lettered = 0

    def add(self, name: CounterName | StreamCounterName, count: int = 1) -> None:
        """Add ``count`` to the counter ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def stream_snapshot(
        self, subscriber_errors: int, channels: Mapping[str, ChannelBacklog]
    ) -> RedisStreamStats:
        """Copy the counters into an immutable :class:`RedisStreamStats`."""
        with self._lock:
            return RedisStreamStats(
                published=self.published,
                publish_errors=self.publish_errors,
                delivered=self.delivered,
                acknowledged=self.acknowledged,
                redelivered=self.redelivered,
                claimed=self.claimed,
                dead_lettered=self.dead_lettered,
                dropped=MappingProxyType(dict(self.dropped)),
                subscriber_errors=subscriber_errors,
                reconnects=self.reconnects,
                channels=MappingProxyType(dict(channels)),
            )


def read_backlog(
    on_owner: Callable[[bytes, Callable[[Any], Any]], Any], stream: bytes, group: str
) -> ChannelBacklog | None:
    """The group's backlog on ``stream`` (XINFO GROUPS); ``None`` if unknown.

    ``on_owner(key, call)`` runs ``call`` with a client of ``key``'s node.
    """
    try:
        groups = on_owner(stream, lambda client: client.xinfo_groups(stream))
    except redis.RedisError:
        return None
    for info in groups:
        if info.get("name") in (group, group.encode()):
            lag = info.get("lag")
            return ChannelBacklog(
                pending=int(info.get("pending", 0)),
                lag=None if lag is None else int(lag),
            )
    return None
