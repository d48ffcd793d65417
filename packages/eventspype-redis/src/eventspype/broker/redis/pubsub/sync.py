"""RedisBroker: events between processes over Redis Pub/Sub."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from redis.retry import Retry

from eventspype.broker.redis._io.batch import Batch, BatchBuffer
from eventspype.broker.redis._wire.broker_base import (
    check_pubsub_options,
)
from eventspype.broker.redis._wire.stats import RedisBrokerStats
from eventspype.broker.redis.pubsub.base import PubSubBrokerBase
from eventspype.broker.redis.pubsub.drivers import (
    pubsub_drivers,
    shutdown,
    watch_exit,
)
from eventspype.event import NormalizedTag
from eventspype.serializers import EventSerializer
from eventspype.sub.subscriber import EventSubscriber

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication

__all__ = ["RedisBroker"]

_logger = logging.getLogger("eventspype.broker.redis")

_B = TypeVar("_B", bound="RedisBroker")

#: How long ``close()`` waits for the listener thread.
_CLOSE_TIMEOUT = 5.0


class RedisBroker(PubSubBrokerBase):
    """Routes events through Redis Pub/Sub, so every process subscribed gets them.

    ``publish()`` serializes the event, wraps it in the JSON envelope of
    eventspype 1.4.2 and PUBLISHes it on ``<channel_prefix><channel>``,
    synchronously: it returns once Redis has accepted the message and raises
    ``redis.exceptions.ConnectionError`` (or ``TimeoutError``) when Redis is
    unreachable. Delivery is Redis Pub/Sub's: at most once, to the processes
    subscribed at that moment (the publishing one included); nothing is
    stored or retried. Each broker has one daemon listener thread (started by
    the first ``subscribe()``) that calls the subscribers, with the broker as
    caller. Subscribers are held by weak reference and isolated from each
    other, as with ``LocalBroker``; coroutine subscribers
    (``AsyncEventSubscriber``), ``TrackingEventSubscriber`` and
    ``QueueEventSubscriber`` cross to their event loop's thread themselves.

    Everything received is untrusted (see the Security page of the docs).
    A message is delivered only if its tag is the tag of the channel it came
    on, its class is allowed and its payload decodes into that class; then
    each subscriber gets it only if it accepts it: one that came through a
    publisher (:meth:`subscribe_publication`) accepts events of that
    publication's tag and class (subclasses included), one added with
    :meth:`subscribe` accepts the channel's events. Only classes registered
    with :meth:`register_event_class`, or of the modules named in
    ``allowed_modules``, are rebuilt: a message naming another class is
    dropped and nothing is imported for it, unless
    ``allow_unregistered_classes=True`` (anyone who can publish on the server
    could then make this process import any module; it warns). Refused
    messages are logged (rate-limited) with channel and reason, counted in
    :meth:`stats` and dropped. Nothing a message or a subscriber does ends
    delivery: the listener logs it with its traceback, counts it and goes on.
    When the connection drops, the listener logs it, reconnects with backoff
    and jitter and subscribes every channel again by itself; events published
    in between are lost (that is Pub/Sub).

    Connections: the listener has one of its own, made like the client's
    (same class and options: host, TLS, credentials, database, Sentinel, RESP
    version) but without its retry policy (it reconnects by itself), with a 5 s
    ``socket_timeout`` if the client has none. A plain ``redis.Redis`` (or
    ``fakeredis.FakeRedis``) on a plain ``ConnectionPool`` publishes on a fast
    path: pre-encoded PUBLISH on connections of the broker's own, made the same
    way and bounded by ``publish_timeout``. Other clients (subclasses, a
    ``BlockingConnectionPool``, ``RedisCluster``) and ``fast_publish=False`` go
    through ``client.publish()``, with its retries and instrumentation. After
    ``os.fork()`` the child's broker has no connection, thread or
    subscription of the parent's: subscribe again in the child.

    Args:
        redis_client: A ``redis.Redis`` (or ``fakeredis.FakeRedis``, or another
            client such as ``RedisCluster``). Give it ``socket_timeout`` and
            ``socket_connect_timeout`` (as :meth:`from_url` does): without a
            timeout, ``publish()`` through the client can hang on a stalled
            server, and the broker warns (``RuntimeWarning``).
        serializer: Any :class:`~eventspype.serializers.EventSerializer`;
            :class:`~eventspype.serializers.JsonEventSerializer` by default.
            Binary output (MessagePack) travels base64-encoded.
        channel_prefix: Prepended to every channel name on the server.
        allow_unregistered_classes: Import any class a message names (as
            eventspype 1.4.2 allows; warns with ``UnsafeClassImportWarning``).
        allowed_modules: Import the classes of these modules and their
            submodules on demand, e.g. ``("myapp.events",)``: the safe
            alternative to ``allow_unregistered_classes``.
        max_message_bytes: Larger messages are dropped unparsed (redis-py has
            read them already: bound them on the server too, see the Security
            page).
        max_nesting_depth: Deprecated, ignored: msgspec refuses nesting past
            the interpreter's recursion limit itself (drop reason ``too_deep``).
        subscribe_timeout: How long ``subscribe()`` waits for Redis to confirm
            a new channel, so that an event published right after it returns
            is received. It does not wait while Redis is known to be down: the
            channel is subscribed as soon as the connection is back (see
            :meth:`wait_until_subscribed` to fail fast instead).
        reconnect_delay: ``(first, longest)`` wait in seconds between
            reconnection attempts; it doubles after each failure.
        health_check_interval: After this many idle seconds the listener
            PINGs the server; no answer means a dead connection.
        fast_publish: Allow the fast path described above; ``False`` sends
            every PUBLISH through ``client.publish()``.
        publish_timeout: On the fast path, how long ``publish()`` waits for
            Redis (seconds; the client's ``socket_timeout`` by default, or 5 s
            if it has none) before raising ``TimeoutError``.
        sharded_pubsub: With a ``RedisCluster`` client (Redis 7+), publish
            with SPUBLISH and receive with SSUBSCRIBE: each channel's traffic
            stays on the shard that owns its slot, one listener thread per
            shard (see the "Scaling out" page). ``False``: classic
            PUBLISH/SUBSCRIBE, which every node of the cluster relays (what
            eventspype 1.4.2 does; a sharded and a classic process do not
            hear each other). Ignored for other clients.

    Raises:
        ValueError: an option is out of range.
    """

    _kind = "RedisBroker"
    _client_class = redis.Redis
    _retry_class = Retry

    def __init__(
        self,
        redis_client: redis.Redis | redis.RedisCluster,
        serializer: EventSerializer | None = None,
        channel_prefix: str = "eventspype:",
        allow_unregistered_classes: bool = False,
        *,
        allowed_modules: Iterable[str] = (),
        max_message_bytes: int = 1 << 20,
        max_nesting_depth: int | None = None,
        subscribe_timeout: float = 5.0,
        reconnect_delay: tuple[float, float] = (0.05, 5.0),
        health_check_interval: float = 30.0,
        fast_publish: bool = True,
        publish_timeout: float | None = None,
        sharded_pubsub: bool = True,
    ) -> None:
        check_pubsub_options(publish_timeout, max_nesting_depth)
        encoding = self._configure_pubsub(
            redis_client,
            serializer,
            channel_prefix,
            allow_unregistered_classes,
            allowed_modules,
            max_message_bytes,
        )
        self._subscribe_timeout = max(0.0, subscribe_timeout)
        self._batch_buffer = BatchBuffer()
        self._listener, self._transport = pubsub_drivers(
            redis_client,
            self._on_message,
            self._tidy,
            self._counters,
            encoding=encoding,
            sharded=sharded_pubsub,
            fast=fast_publish,
            publish_timeout=publish_timeout,
            health_check_interval=health_check_interval,
            reconnect_delay=reconnect_delay,
        )
        self._subscribe_through(self._listener)
        # A broker dropped without close() still stops its thread and
        # closes its connections.
        self._finalizer = weakref.finalize(
            self,
            shutdown,
            f"RedisBroker(channel_prefix={channel_prefix!r})",
            self._listener,
            self._transport,
        )
        watch_exit()

    # -- MessageBroker ----------------------------------------------------

    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """PUBLISH ``event`` on ``<prefix><channel>``; see the class docs.

        Inside a :meth:`batch` block the event is held and sent when the block
        ends. ``caller`` does not travel: receivers see the broker as caller.
        Never retried: when it raises, Redis may or may not have the event.

        Raises:
            redis.exceptions.ConnectionError: Redis cannot be reached.
            redis.exceptions.TimeoutError: Redis did not answer in time.
            redis.exceptions.ResponseError: Redis refused the command (an ACL
                that forbids PUBLISH, for instance).
            eventspype.serializers.SerializationError: the serializer cannot
                encode ``event`` (nothing is sent).
            RuntimeError: the broker is closed.
        """
        message = self._envelope(event, event_tag)
        wire = self._names.wire(channel)
        held = self._batch_buffer.current()
        if held is not None:
            held.messages.append((wire, message))
            return
        self._counted(partial(self._transport.publish, wire), message, 1)

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Deliver the events of ``channel``, from any process, to ``subscriber``.

        ``subscriber`` gets every event whose tag is the channel's
        (``str(tag) == channel``); publishers subscribe through
        :meth:`subscribe_publication` instead, which also checks the class.
        Until Redis has confirmed the channel, this waits (up to
        ``subscribe_timeout``) for the confirmation, unless Redis is down: then
        the listener subscribes it once the connection is back, and a warning
        says so. ``subscriber`` is held by weak reference.

        Raises:
            SubscriptionRefused: Redis refused the channel (an ACL forbids it);
                ``subscriber`` is not subscribed, the other channels go on.
            RuntimeError: the broker is closed.
        """
        self._add(channel, subscriber, None)

    def wait_until_subscribed(self, timeout: float = 10.0) -> None:
        """Wait until Redis has confirmed every subscribed channel.

        For start-up checks that should fail fast rather than wait for a
        server to come back: ``subscribe()`` does not wait while Redis is
        down, and the listener reconnects by itself. Returns at once when no
        channel is subscribed.

        Raises:
            TimeoutError: not confirmed within ``timeout`` seconds; the message
                names the channels and the last connection error (also in
                :meth:`stats`).
            SubscriptionRefused: Redis refused a channel (an ACL forbids it).
            RuntimeError: the broker is closed.
        """
        self._check_open()
        self._listener.wait_until_subscribed(timeout)

    # -- lifecycle --------------------------------------------------------

    def batch(self) -> Batch:
        """``with broker.batch():`` sends the publishes in it in one round trip.

        Those of the thread, or asyncio task, that opened the block; they go
        out, pipelined, when the block ends. The block raises the connection
        error if sending fails, and if the block itself raises its events are
        not sent. See :class:`Batch`.
        """
        return Batch(self._batch_buffer, self._send_batch)

    def stats(self) -> RedisBrokerStats:
        """A snapshot of the counters and of the connection's state."""
        if not self._closed:
            self._listener.ensure_running()
        return self._counters.snapshot(
            self._subscriptions.local.subscriber_errors, self._listener.state()
        )

    def close(self) -> None:
        """Stop and join the listener thread and release the connections.

        Idempotent. Afterwards ``publish()`` and ``subscribe()`` raise
        ``RuntimeError``. The client passed in stays open (it is yours); one
        made by :meth:`from_url` is closed.
        """
        if not self._subscriptions.close():
            return
        self._closed = True
        self._finalizer.detach()
        self._listener.request_stop()
        if not self._listener.join(_CLOSE_TIMEOUT):
            _logger.warning(
                "Redis listener thread still running %.0f s after close()",
                _CLOSE_TIMEOUT,
            )
        self._transport.close()
        if self._owns_client:
            self._redis.close()

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------

    def _add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        subscriptions = self._subscriptions
        pending = subscriptions.add(channel, subscriber, publication)
        if pending is None or self._listener.on_listener_thread:
            return
        if pending.wait(self._subscribe_timeout):
            return
        if pending.refused is not None:
            subscriptions.discard(channel, subscriber, publication)
            raise pending.refused
        _logger.warning(
            "Redis has not confirmed the subscription to %r yet; events "
            "published before it does are not received",
            self._channel_prefix + channel,
        )

    def _send_batch(self, messages: list[tuple[bytes, bytes]]) -> None:
        self._check_open()
        self._counted(self._transport.publish_many, messages, len(messages))
