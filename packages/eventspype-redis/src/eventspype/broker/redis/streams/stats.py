"""Counters of a RedisStreamBroker and the snapshot ``stats()`` returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import redis

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._wire.stats import DROP_REASONS, Counters
from eventspype.broker.redis.streams.held import ProtocolCounters

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
        retried: Retries of a failed entry after its backoff (each an XCLAIM
            to itself: Redis counts the delivery).
        resumed: Own pending entries taken up again after a start or a
            reconnection (a restart under the same consumer name).
        malformed: Entries without an ``event`` field (dead-lettered).
        oversized: Entries above ``max_message_bytes`` (dead-lettered with
            their id, size and reason, not their body).
        trimmed: Pending entries that Redis no longer had when claimed or
            retried (trimmed by ``MAXLEN`` or deleted before anyone
            acknowledged them): lost, counted and logged.
        trimmed_unread: Times this consumer found entries of a stream trimmed
            (``MAXLEN``) before its group read them: lost to the group,
            logged; raise ``maxlen`` above the worst backlog.
        leases_lost: Entries this consumer held that another consumer claimed
            (its lease ran out: an outage, or one handler call longer than
            ``claim_idle``).
        handed_back: Entries handed back to the group unhandled (on
            ``close()``, or when their channel lost its last subscriber).
        reads_paused: Times reading paused because ``prefetch`` entries were
            held (failing entries waiting for their retry included).
        key_errors: Errors Redis gave about one stream's key (WRONGTYPE, an
            ACL refusal): that stream is retried later, the others go on.
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
    retried: int = 0
    resumed: int = 0
    malformed: int = 0
    oversized: int = 0
    trimmed: int = 0
    trimmed_unread: int = 0
    leases_lost: int = 0
    handed_back: int = 0
    reads_paused: int = 0
    key_errors: int = 0
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


class StreamCounters(Counters):
    """:class:`~_wire.stats.Counters` plus the stream-only counts.

    The reader thread is the only writer of the counts added here (and of
    ``delivered``, ``dropped``, ``reconnects``), so they need no lock.
    """

    __slots__ = ("_sources",)

    def __init__(self) -> None:
        super().__init__()
        register_for_fork(self)

    def _reset(self) -> None:
        super()._reset()
        self._sources: list[ProtocolCounters] = []

    def add_source(self, counters: ProtocolCounters) -> None:
        """Add a protocol core's counters (one per reader) to the sums."""
        self._sources.append(counters)

    def _sum(self, name: str) -> int:
        return sum(getattr(source, name) for source in list(self._sources))

    def stream_snapshot(
        self, subscriber_errors: int, channels: Mapping[str, ChannelBacklog]
    ) -> RedisStreamStats:
        """Copy the counters into an immutable :class:`RedisStreamStats`."""
        with self._lock:
            published, publish_errors = self.published, self.publish_errors
        return RedisStreamStats(
            published=published,
            publish_errors=publish_errors,
            delivered=self.delivered,
            acknowledged=self._sum("acknowledged"),
            redelivered=self._sum("redelivered"),
            claimed=self._sum("claimed"),
            dead_lettered=self._sum("dead_lettered"),
            retried=self._sum("retried"),
            resumed=self._sum("resumed"),
            malformed=self._sum("malformed"),
            oversized=self._sum("oversized"),
            trimmed=self._sum("trimmed"),
            trimmed_unread=self._sum("trimmed_unread"),
            leases_lost=self._sum("leases_lost"),
            handed_back=self._sum("handed_back"),
            reads_paused=self._sum("reads_paused"),
            key_errors=self._sum("key_errors"),
            dropped=MappingProxyType(dict(self.dropped)),
            subscriber_errors=subscriber_errors,
            reconnects=self._sum("reconnects"),
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
