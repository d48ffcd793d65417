"""The Pub/Sub side shared by ``RedisBroker`` and ``AsyncRedisBroker`` (no I/O).

Both keep their channels in :class:`~pubsub.subscriptions.Subscriptions` and hand
every message their listener reads (a thread's or a task's) to
:meth:`PubSubBrokerBase._on_message`, which runs the shared receive path; the
drivers differ only in how bytes move.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from eventspype.broker.redis._io.connections import client_encoding
from eventspype.broker.redis._wire.broker_base import RedisBrokerBase
from eventspype.broker.redis._wire.channels import ChannelNames
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.receive import receive
from eventspype.broker.redis._wire.stats import Counters
from eventspype.broker.redis.pubsub.subscriptions import ChannelListener, Subscriptions
from eventspype.serializers import EventSerializer

if TYPE_CHECKING:
    pass

__all__ = ["PubSubBrokerBase"]


class PubSubBrokerBase(RedisBrokerBase):
    """A Redis broker on Pub/Sub channels (see the module docs).

    A broker calls :meth:`_configure_pubsub` in ``__init__``, makes its
    listener with ``_on_message`` and ``_tidy`` as handlers, then calls
    :meth:`_subscribe_through`.
    """

    _redis: Any
    _names: ChannelNames
    _inbound: Inbound
    _subscriptions: Subscriptions

    def _configure_pubsub(
        self,
        redis_client: Any,
        serializer: EventSerializer | None,
        channel_prefix: str,
        allow_unregistered_classes: bool,
        allowed_modules: Iterable[str],
        max_message_bytes: int,
    ) -> str:
        """Set the shared options and receive path; the client's encoding."""
        self._configure(
            serializer, channel_prefix, allow_unregistered_classes, allowed_modules
        )
        self._redis = redis_client
        encoding = client_encoding(redis_client)
        self._names = ChannelNames(channel_prefix, encoding)
        self._inbound = Inbound(
            self._serializer, self._classes, max_bytes=max_message_bytes
        )
        self._counters = Counters()
        return encoding

    def _subscribe_through(
        self, listener: ChannelListener, *, on_event_loop: bool = False
    ) -> None:
        """Keep the channel tables, which tell ``listener`` what to subscribe.

        ``on_event_loop``: the listener delivers on an event loop's thread
        (what a subscriber's ``SystemExit`` does then: see ``_wire.fanout``).
        """
        self._subscriptions = self._tables = Subscriptions(
            self._names, listener, on_event_loop=on_event_loop
        )

    def __repr__(self) -> str:
        count = self._subscriptions.count
        state = "closed" if self._closed else f"{count} channel(s)"
        return f"<{type(self).__name__} prefix={self._channel_prefix!r} {state}>"

    def _tidy(self) -> None:
        """End subscriptions whose subscribers were collected (on the listener)."""
        self._subscriptions.tidy()

    def _on_message(self, wire_channel: bytes, data: bytes) -> None:
        """Decode one Pub/Sub message and deliver it (on the listener)."""
        subscriptions = self._subscriptions
        channel = subscriptions.channel_of(wire_channel)
        if channel is None:  # unsubscribed while the message was in flight
            return
        delivery = receive(
            self._inbound,
            subscriptions.local,
            self._counters,
            channel,
            data,
            self,
            self._channel_prefix + channel,
        )
        if not (delivery.handled or delivery.failed or delivery.refused):
            # Every subscriber was garbage-collected: end the subscription.
            subscriptions.forget_if_unused(channel)
