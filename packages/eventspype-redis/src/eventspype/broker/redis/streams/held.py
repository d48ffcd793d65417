"""The Streams protocol core's vocabulary: options, entries in hand, outcomes.

No I/O. :class:`ConsumerOptions` are a consumer's settings;
:class:`Held` is one entry this consumer holds (read or claimed, not yet
acknowledged, dead-lettered or handed back); :class:`Delivery` is what the
core gives a driver to hand to the local subscribers, and
:class:`ProtocolCounters` / :class:`ConsumerHealth` what it reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from eventspype._internal.backoff import Backoff

__all__ = [
    "ConsumerHealth",
    "ConsumerOptions",
    "Delivery",
    "Held",
    "HeldState",
    "ProtocolCounters",
    "ReaderOptions",
    "Verdict",
]

#: What the local subscribers made of one delivery (see ``StreamProtocol.finished``):
#: ``"ok"`` every one returned: acknowledge; ``"failed"`` one raised: retry
#: after a backoff (dead-letter after ``max_deliveries``); ``"refused"`` the
#: entry fails the receive checks for good: dead-letter now; ``"skip"`` no
#: local subscriber any more: hand it back to the group.
Verdict = Literal["ok", "failed", "refused", "skip"]

#: Where one held entry is: ``counting`` its delivery count is being read;
#: ``new`` waiting to be taken by the driver; ``running`` with the
#: subscribers; ``retry`` waiting for its backoff; ``claiming`` its retry
#: claim is in flight; ``ack``/``dead``/``give_back`` waiting to be sent;
#: ``acking``/``burying``/``giving_back`` sent, reply awaited.
HeldState = Literal[
    "counting",
    "new",
    "running",
    "retry",
    "claiming",
    "ack",
    "acking",
    "dead",
    "burying",
    "give_back",
    "giving_back",
]


@dataclass(frozen=True)
class ConsumerOptions:
    """One consumer's settings (the broker options of the same names).

    ``claim_idle``, ``claim_interval`` and ``block`` are seconds.
    ``renew_after`` (default ``claim_idle / 4``) is the age of a lease after
    which it is renewed; a lease older than ``stale_after`` (default
    ``claim_idle * 0.9``) may have been taken by another consumer, so what
    is sent for it checks ownership first.
    """

    group: bytes
    consumer: bytes
    start: Literal["new", "all"] = "new"
    prefetch: int = 100
    claim_idle: float = 30.0
    claim_interval: float = 5.0
    max_deliveries: int = 5
    max_entry_bytes: int = 1 << 20
    retry: Backoff = field(default_factory=lambda: Backoff(1.0, 60.0))
    reconnect: Backoff = field(default_factory=lambda: Backoff(0.05, 5.0))
    block: float = 1.0
    renew_after: float | None = None
    stale_after: float | None = None

    def __post_init__(self) -> None:
        if not self.group:
            raise ValueError("group must be a non-empty name")
        if not self.consumer:
            raise ValueError("consumer must be a non-empty name")
        if self.prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {self.prefetch}")
        if self.claim_idle <= 0 or self.claim_interval <= 0:
            raise ValueError("claim_idle and claim_interval must be > 0")
        if self.max_deliveries < 1:
            raise ValueError(f"max_deliveries must be >= 1, got {self.max_deliveries}")
        if self.block <= 0:
            raise ValueError(f"block must be > 0, got {self.block}")

    @property
    def renew_age(self) -> float:
        """Seconds after which a lease is renewed."""
        return self.claim_idle / 4 if self.renew_after is None else self.renew_after

    @property
    def stale_age(self) -> float:
        """Seconds after which a lease may have been taken by another consumer."""
        return self.claim_idle * 0.9 if self.stale_after is None else self.stale_after


@dataclass(eq=False)
class Held:
    """One entry in this consumer's hand (the core's view of its PEL entry)."""

    stream: bytes
    entry_id: bytes
    data: bytes | None
    #: Redis's delivery count of the entry (0 while ``counting``).
    count: int
    #: When the last command that reset its idle time in Redis was sent (its
    #: read, claim or lease renewal): the lease runs from there.
    leased_at: float
    state: HeldState
    #: When a ``retry`` is due; when a ``running`` delivery was taken.
    since: float = 0.0
    failures: int = 0
    error: str = ""
    #: Why it is to be dead-lettered (``dead`` state): a reason word.
    reason: str = ""
    #: Opaque ids of the local subscribers that already handled it (a retry
    #: calls only the others).
    succeeded: frozenset[object] = frozenset()
    #: A lease renewal of it is in flight.
    renewing: bool = False

    @property
    def key(self) -> tuple[bytes, bytes]:
        """``(stream, entry_id)``."""
        return self.stream, self.entry_id


@dataclass(frozen=True)
class Delivery:
    """One entry to hand to the local subscribers of ``channel``.

    Call only the subscribers whose id is not in ``succeeded`` (a retry), and
    report with ``StreamProtocol.finished(delivery, ...)``.
    """

    stream: bytes
    channel: str
    entry_id: bytes
    data: bytes
    delivery_count: int
    succeeded: frozenset[object]
    #: The error of the previous attempt ("" on a first delivery).
    last_error: str = ""


@dataclass
class ProtocolCounters:
    """What the core counted (only grows). Per consumer."""

    #: Entries handed to the driver, redeliveries and retries included.
    delivered: int = 0
    #: Deliveries of an entry Redis had delivered before.
    redelivered: int = 0
    acknowledged: int = 0
    #: Entries taken over from the group by a sweep (XAUTOCLAIM).
    claimed: int = 0
    #: Own pending entries resumed after a start or a reconnection.
    resumed: int = 0
    #: Retries after a backoff (each an XCLAIM to itself).
    retried: int = 0
    dead_lettered: int = 0
    #: Entries without an ``event`` field (dead-lettered, reason ``malformed``).
    malformed: int = 0
    #: Entries above ``max_entry_bytes`` (dead-lettered without their body).
    oversized: int = 0
    #: Pending entries Redis no longer had (trimmed or deleted while pending).
    trimmed: int = 0
    #: Times a look (every ``forget_consumers_after / 2``, at most a minute)
    #: found entries trimmed before the group read them.
    trimmed_unread: int = 0
    #: Entries this consumer held that another consumer took (its lease ran out).
    leases_lost: int = 0
    leases_renewed: int = 0
    handed_back: int = 0
    #: Times reading paused because ``prefetch`` entries were in hand.
    reads_paused: int = 0
    #: Errors Redis gave about one stream's key (WRONGTYPE, ACL refusals).
    key_errors: int = 0
    #: Times the group had vanished and was made again.
    groups_recreated: int = 0
    reconnects: int = 0


@dataclass(frozen=True)
class ConsumerHealth:
    """What probes need from one consumer.

    Liveness: ``oldest_running`` (seconds the oldest delivery has been with
    the subscribers: a hung handler shows here). Readiness: ``connected``,
    ``down_for`` (seconds since the connection was lost), ``broken_streams``.
    """

    connected: bool
    down_for: float | None
    held: int
    running: int
    oldest_running: float | None
    paused: bool
    broken_streams: tuple[bytes, ...]


class ReaderOptions:
    """The broker options a reader needs (plain attributes).

    ``maxlen`` is the dead-letter streams' ``MAXLEN ~`` (the broker's
    ``dead_letter_maxlen``), not the streams'.
    """

    def __init__(
        self,
        *,
        start: Literal["new", "all"],
        prefetch: int,
        claim_idle: float,
        claim_interval: float,
        max_deliveries: int,
        max_entry_bytes: int,
        retry_delay: tuple[float, float],
        reconnect_delay: tuple[float, float],
        maxlen: int | None,
        forget_after: float,
        block: float = 1.0,
    ) -> None:
        self.start, self.prefetch = start, prefetch
        self.claim_idle, self.claim_interval = claim_idle, claim_interval
        self.max_deliveries, self.max_entry_bytes = max_deliveries, max_entry_bytes
        self.retry_delay, self.reconnect_delay = retry_delay, reconnect_delay
        self.maxlen, self.forget_after, self.block = maxlen, forget_after, block

    def consumer(self, group: bytes, consumer: bytes) -> ConsumerOptions:
        """The core's options for ``consumer`` of ``group``."""
        return ConsumerOptions(
            group=group,
            consumer=consumer,
            start=self.start,
            prefetch=self.prefetch,
            claim_idle=self.claim_idle,
            claim_interval=self.claim_interval,
            max_deliveries=self.max_deliveries,
            max_entry_bytes=self.max_entry_bytes,
            retry=Backoff(*self.retry_delay),
            reconnect=Backoff(*self.reconnect_delay),
            block=self.block,
        )
