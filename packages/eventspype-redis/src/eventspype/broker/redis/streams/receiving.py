"""The receiving side of a RedisStreamBroker: subscriptions, decoding, fan-out.

Ties the receive path every Redis broker shares (``_wire.receive.receive``: the
``Inbound`` checks, the ``Fanout`` with its per-publication rules, drop
counting) to the reader thread, and turns its ``Delivery`` into what the
reader does with the entry: acknowledge it, leave it for redelivery, or
dead-letter it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._wire.fanout import Fanout
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.receive import receive
from eventspype.broker.redis._wire.stats import DropReason
from eventspype.broker.redis.streams.cluster import ClusterStreamReader
from eventspype.broker.redis.streams.dead_letters import stream_key
from eventspype.broker.redis.streams.reader import Handled, StreamReader
from eventspype.broker.redis.streams.stats import StreamCounters

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["StreamReceiving"]

_logger = logging.getLogger("eventspype.broker.redis")

#: Refusals of the entry itself that a fix on the consumer side can cure (a
#: class to register, a limit to raise, a serializer to update): dead-letter,
#: so that it can be re-published. The others (an entry whose tag is not its
#: stream's; events no local subscriber's publication accepts) are
#: acknowledged: they are not this group's to handle.
_DEAD_LETTER_REASONS: frozenset[DropReason] = frozenset(
    {
        "oversized",
        "invalid_json",
        "invalid_envelope",
        "too_deep",
        "unregistered_class",
        "invalid_payload",
    }
)


class StreamReceiving:
    """Who subscribes to what, and what one entry does (see the module docs).

    ``reader`` is attached right after construction (the reader needs
    :meth:`handle`, and this needs the reader).
    """

    def __init__(
        self,
        prefix: str,
        inbound: Inbound,
        counters: StreamCounters,
        commands: Any,
        caller: object,
    ) -> None:
        self._prefix = prefix
        self._inbound = inbound
        self._counters = counters
        self._commands = commands  # for XGROUP CREATE and waking the reader
        self._caller = caller
        self.fanout = Fanout()
        self.reader: StreamReader | ClusterStreamReader | None = None
        self.closed = False
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # The child starts with no subscription: the parent's subscribers
        # (copies in the child) would otherwise handle every event twice.
        self.fanout = Fanout()

    def add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        """Subscribe; create the group on the stream first if it is new here.

        Raises:
            RuntimeError: the broker is closed.
        """
        if self.closed:
            raise RuntimeError("RedisStreamBroker is closed")
        assert self.reader is not None
        self.fanout.add(channel, subscriber, publication)
        stream = stream_key(self._prefix, channel).encode()
        if stream not in self.reader.streams:
            try:
                self.reader.ensure_group(self._commands, stream)
            except redis.ConnectionError as error:
                _logger.warning(
                    "Cannot create consumer group %r on %r now (%s); the reader "
                    "creates it once Redis is back",
                    self.reader.group.decode(),
                    stream.decode(),
                    error,
                )
        self._sync()

    def discard(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        """Unsubscribe; the reader stops reading a stream nobody wants."""
        self.fanout.remove(channel, subscriber, publication)
        self._sync()

    def channels(self) -> list[str]:
        """The channels with a live local subscriber."""
        return self.fanout.channels()

    @property
    def subscriber_errors(self) -> int:
        """Subscriber calls that raised."""
        return self.fanout.subscriber_errors

    def _sync(self) -> None:
        reader = self.reader
        assert reader is not None
        self.fanout.reap()  # forget collected subscribers
        prefix = self._prefix
        wanted = {stream_key(prefix, c).encode(): c for c in self.fanout.channels()}
        if wanted != reader.streams and not self.closed:
            reader.set_streams(wanted, self._commands)

    def handle(self, channel: str, data: bytes) -> Handled:
        """Decode one entry and deliver it locally (reader thread)."""
        fanout = self.fanout
        if not fanout.subscriber_count(channel):
            # Its subscribers were garbage-collected: stop reading the stream
            # (and claiming its entries); the group keeps what is pending.
            self._sync()
            return "skip", None
        delivery = receive(
            self._inbound,
            fanout,
            self._counters,
            channel,
            data,
            self._caller,
            stream_key(self._prefix, channel),
        )
        if delivery.failed:
            return "failed", "; ".join(
                f"{type(error).__name__}: {error}" for _, error in delivery.failed
            )
        if not delivery.handled and delivery.refused:
            reason, detail = delivery.refused[0]
            if reason in _DEAD_LETTER_REASONS:
                return "refused", f"{reason}: {detail}"
        return "ok", None
