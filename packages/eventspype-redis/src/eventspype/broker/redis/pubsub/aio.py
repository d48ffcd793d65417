"""AsyncRedisBroker: RedisBroker's events, wire format and checks, driven by asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry

from eventspype.broker.redis._io.aio_connections import own_connection_options
from eventspype.broker.redis._wire.broker_base import (
    check_pubsub_options,
)
from eventspype.broker.redis._wire.stats import RedisBrokerStats
from eventspype.broker.redis.pubsub.aio_listener import AsyncListener
from eventspype.broker.redis.pubsub.aio_senders import Sender, make_sender
from eventspype.broker.redis.pubsub.aio_sharded import AsyncShardedListener
from eventspype.broker.redis.pubsub.aio_writer import AsyncWriter
from eventspype.broker.redis.pubsub.base import PubSubBrokerBase
from eventspype.event import NormalizedTag
from eventspype.serializers import EventSerializer
from eventspype.sub.subscriber import EventSubscriber

__all__ = ["AsyncRedisBroker"]

_B = TypeVar("_B", bound="AsyncRedisBroker")


class AsyncRedisBroker(PubSubBrokerBase):
    """``RedisBroker`` for asyncio: the listener is a task, publishing never blocks.

    Same wire format, checks, limits, drop reasons and :meth:`stats` as
    ``RedisBroker`` (the code is shared), so a process using either, or
    eventspype 1.4.2, exchange events on one channel in both directions.
    Delivery is Redis Pub/Sub's: at most once, to the processes subscribed at
    that moment.

    The broker belongs to one event loop: the running one when it is created,
    or ``loop``. Its listener is a task on that loop (started by the first
    subscription) that calls synchronous subscribers on the loop, with the
    broker as caller; coroutine subscribers schedule their handler themselves
    when called. It reconnects with backoff and subscribes every channel again
    when the connection drops, like ``RedisBroker``'s thread.

    ``publish()`` (the ``MessageBroker`` contract, so ``EventPublisher.publish``)
    never waits for Redis: it queues the encoded event for the writer task,
    which sends what one loop turn queued in one pipeline; the queue holds
    ``max_queued`` events (then :class:`PublishQueueFull`), and a batch that
    cannot be sent is logged and counted in ``stats().publish_errors``.
    ``await publish_async()`` (so ``await publisher.publish_async()``) takes
    the same queue and returns once Redis has the event, or raises; cancelling
    it never disturbs the connection. ``subscribe()`` returns at once (see
    :meth:`wait_until_subscribed`). Close with ``await broker.aclose()`` or
    ``async with broker:``.

    Args:
        redis_client: A ``redis.asyncio.Redis`` (or fakeredis's
            ``FakeAsyncRedis``). The broker reads and publishes on connections
            of its own, made like the client's (host, TLS, credentials,
            database, protocol) but without its retry policy and with a timeout.
            A ``redis.asyncio.cluster.RedisCluster`` (Redis 7+) gets sharded
            Pub/Sub: SPUBLISH through the client, SSUBSCRIBE on connections of
            the broker's own to each master it has channels on, one listener
            task per shard, reconnecting to the promoted replica after a
            failover (see the "Scaling out" page).
        subscribe_timeout: The default ``timeout`` of
            :meth:`wait_until_subscribed`.
        fast_publish: Send pre-encoded PUBLISH commands on the broker's own
            connection (plain clients only); ``False`` uses the client's
            ``pipeline()``.
        publish_timeout: How long the writer waits for Redis (seconds; the
            client's ``socket_timeout``, or 5 s) before a batch fails.
        max_queued: How many events the writer holds at most, queued or
            awaiting Redis's reply.
        loop: The event loop to use; the running one by default.

    The other options (``serializer``, ``channel_prefix``,
    ``allow_unregistered_classes``, ``allowed_modules``, ``max_message_bytes``,
    the deprecated ``max_nesting_depth``, ``reconnect_delay``,
    ``health_check_interval``) are ``RedisBroker``'s, with the same meaning.

    Raises:
        ValueError: an option is out of range.
        RuntimeError: no loop is running and none was given.
        TypeError: the client has no connection pool and is no
            ``redis.asyncio`` ``RedisCluster``.
    """

    _kind = "AsyncRedisBroker"
    _client_class = redis.asyncio.Redis
    _retry_class = Retry

    def __init__(
        self,
        redis_client: redis.asyncio.Redis | AsyncRedisCluster,
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
        max_queued: int = 10_000,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        check_pubsub_options(publish_timeout, max_nesting_depth)
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        encoding = self._configure_pubsub(
            redis_client,
            serializer,
            channel_prefix,
            allow_unregistered_classes,
            allowed_modules,
            max_message_bytes,
        )
        self._subscribe_timeout = max(0.0, subscribe_timeout)
        self._listener: AsyncListener | AsyncShardedListener
        if isinstance(redis_client, AsyncRedisCluster):
            self._listener = AsyncShardedListener(
                self._loop,
                redis_client,
                self._on_message,
                self._tidy,
                self._counters,
                health_check_interval=health_check_interval,
                reconnect_delay=reconnect_delay,
                encoding=encoding,
            )
        else:
            connection_class, options = own_connection_options(redis_client, None)
            self._listener = AsyncListener(
                self._loop,
                lambda: connection_class(**options),
                self._on_message,
                self._tidy,
                self._counters,
                health_check_interval=health_check_interval,
                reconnect_delay=reconnect_delay,
                encoding=encoding,
            )
        self._subscribe_through(self._listener, on_event_loop=True)
        self._sender = make_sender(
            redis_client, fast=fast_publish, timeout=publish_timeout
        )
        self._writer = AsyncWriter(self._loop, self._sender, self._counters, max_queued)
        # A broker dropped without aclose() stops its tasks and says so. Its
        # tasks hold the broker weakly, so that it can be collected.
        self._finalizer = weakref.finalize(
            self,
            _abandoned,
            f"AsyncRedisBroker(channel_prefix={channel_prefix!r})",
            self._loop,
            self._listener,
            self._writer,
            self._sender,
        )
        self._finalizer.atexit = False  # the loop is gone by then

    # -- configuration ----------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the broker's tasks run on."""
        return self._loop

    # -- MessageBroker ----------------------------------------------------

    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """Queue ``event`` for ``<prefix><channel>`` and return at once.

        Safe from any thread. ``caller`` does not travel: receivers see their
        broker as caller. A batch that cannot be sent later is logged and
        counted (``stats().publish_errors``), not raised here.

        Raises:
            PublishQueueFull: ``max_queued`` events wait already (not queued).
            eventspype.serializers.SerializationError: the serializer cannot
                encode ``event``.
            RuntimeError: the broker is closed.
        """
        self._writer.put_nowait(*self._encode(channel, event, event_tag))

    async def publish_async(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """Publish ``event``; return once Redis has it (waits for room; no retry).

        Raises:
            redis.exceptions.ConnectionError: Redis cannot be reached.
            redis.exceptions.TimeoutError: Redis did not answer in time.
            redis.exceptions.ResponseError: Redis refused the PUBLISH.
            eventspype.serializers.SerializationError: the serializer cannot
                encode ``event`` (nothing is sent).
            RuntimeError: the broker is closed.
        """
        await self._writer.put(*self._encode(channel, event, event_tag))

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Deliver the events of ``channel``, from any process, to ``subscriber``.

        ``subscriber`` gets every event whose tag is the channel's; publishers
        subscribe through :meth:`subscribe_publication`, which also checks the
        class. Returns at once: the listener subscribes on Redis soon after
        (see :meth:`wait_until_subscribed`). Held by weak reference.

        Raises:
            RuntimeError: the broker is closed.
        """
        self._add(channel, subscriber, None)

    # -- lifecycle --------------------------------------------------------

    async def wait_until_subscribed(self, timeout: float | None = None) -> None:
        """Wait until Redis has confirmed every channel subscribed so far.

        An event published before the confirmation may be missed. ``timeout``
        defaults to ``subscribe_timeout``.

        Raises:
            TimeoutError: not in time; names the channels and the last
                connection error (the listener goes on trying).
            SubscriptionRefused: Redis refused a channel (an ACL forbids it).
            RuntimeError: the broker is closed.
        """
        self._check_open()
        limit = self._subscribe_timeout if timeout is None else timeout
        await self._listener.wait_until_subscribed(limit)

    async def flush(self) -> None:
        """Wait until every event published so far was sent to Redis (or failed)."""
        await self._writer.flush()

    def stats(self) -> RedisBrokerStats:
        """A snapshot of the counters and of the connection's state.

        Also replaces the listener task if it ended (cancelled from outside).
        """
        if not self._closed:
            self._listener.sync()
        return self._counters.snapshot(
            self._subscriptions.local.subscriber_errors, self._listener.state()
        )

    @property
    def queued(self) -> int:
        """Events waiting for the writer."""
        return self._writer.queued

    async def aclose(self) -> None:
        """Send what is queued, stop the listener, close the broker's connections.

        Idempotent. Afterwards publishing and subscribing raise
        ``RuntimeError``. The client passed in stays open (it is yours); one
        made by :meth:`from_url` is closed.
        """
        if not self._subscriptions.close():
            return
        self._closed = True
        self._finalizer.detach()
        try:
            await self._writer.flush()
        finally:
            await self._writer.stop()
            await self._listener.stop()
            await self._sender.close()
            if self._owns_client:
                close = getattr(self._redis, "aclose", None) or self._redis.close
                await close()

    async def __aenter__(self: _B) -> _B:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals --------------------------------------------------------

    def _encode(
        self, channel: str, event: Any, event_tag: NormalizedTag
    ) -> tuple[bytes, bytes]:
        """The wire name and the envelope to PUBLISH (checks the broker is open)."""
        return self._names.wire(channel), self._envelope(event, event_tag)


#: Clean-up tasks of abandoned brokers, held until done.
_closing: set[asyncio.Task[None]] = set()


def _abandoned(
    description: str,
    loop: asyncio.AbstractEventLoop,
    listener: AsyncListener | AsyncShardedListener,
    writer: AsyncWriter,
    sender: Sender,
) -> None:
    """A broker was collected without ``aclose()``: stop its tasks, warn.

    Runs wherever the garbage collector ran; the tasks are stopped on the loop.
    """

    def stop() -> None:
        stopped = listener.abandon() + writer.abandon()
        task = loop.create_task(sender.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        warnings.warn(
            f"{description} was garbage-collected without aclose(); stopped "
            f"its tasks ({', '.join(stopped) or 'none running'}) and closed its "
            "connections. Close it with 'await broker.aclose()' or "
            "'async with broker:'.",
            ResourceWarning,
            stacklevel=2,
        )

    if asyncio._get_running_loop() is loop:
        stop()
        return
    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
        loop.call_soon_threadsafe(stop)
