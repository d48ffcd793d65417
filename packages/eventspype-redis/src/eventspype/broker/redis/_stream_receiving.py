"""The receiving side of a RedisStreamBroker: subscriptions, decoding, fan-out.

Ties the shared inbound path (``Inbound``: size, envelope, class registry,
typed decoding) and the local fan-out to the reader thread. This is the one
place that knows how an entry becomes subscriber calls, so moving to the
shared fan-out of the hardening work changes this module only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis

from eventspype.broker.redis._envelope import EnvelopeError
from eventspype.broker.redis._inbound import Inbound
from eventspype.broker.redis._process import track

# TEMPORARY: becomes the shared fan-out of the inbound path once merged.
from eventspype.broker.redis._stream_fanout import LocalFanout
from eventspype.broker.redis._stream_reader import Handled, StreamReader
from eventspype.broker.redis._stream_stats import StreamCounters

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["StreamReceiving"]

_logger = logging.getLogger("eventspype.broker.redis")


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
        self.fanout = LocalFanout()
        self.reader: StreamReader | None = None
        self.closed = False
        track(self)

    def _after_fork_in_child(self) -> None:
        # The child starts with no subscription: the parent's subscribers
        # (copies in the child) would otherwise handle every event twice.
        self.fanout = LocalFanout()

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
        stream = (self._prefix + channel).encode()
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
        wanted = {(self._prefix + c).encode(): c for c in self.fanout.channels()}
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
        try:
            event, event_tag = self._inbound.decode(data)
        except EnvelopeError as error:
            self._counters.drop(error.reason, self._prefix + channel, error)
            return "refused", f"{error.reason}: {error}"
        self._counters.delivered += 1
        delivery = fanout.deliver(channel, event, event_tag, self._caller)
        if delivery.complete:
            return "ok", None
        return "failed", "; ".join(
            f"{type(error).__name__}: {error}" for _, error in delivery.failed
        )
