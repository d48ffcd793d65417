"""AsyncRedisStreamBroker: RedisStreamBroker's durable delivery, driven by asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from functools import partial
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import redis.asyncio
from redis.asyncio.retry import Retry

from eventspype.broker.redis._io.connections import DEFAULT_TIMEOUT
from eventspype.broker.redis._wire.broker_base import RedisBrokerBase
from eventspype.broker.redis._wire.envelope import EnvelopeError
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis.pubsub.aio_writer import AsyncWriter
from eventspype.broker.redis.pubsub.subscribing import SubscriptionRefused
from eventspype.broker.redis.streams.aio_admin import AsyncStreamAdmin
from eventspype.broker.redis.streams.aio_consumer import AsyncConsumer
from eventspype.broker.redis.streams.aio_dropped import watch_drop
from eventspype.broker.redis.streams.aio_senders import make_stream_sender
from eventspype.broker.redis.streams.aio_serving import AsyncServing
from eventspype.broker.redis.streams.aio_upkeep import own_client
from eventspype.broker.redis.streams.dead_letters import stream_key
from eventspype.broker.redis.streams.protocol import StreamProtocol
from eventspype.broker.redis.streams.reader import ReaderOptions
from eventspype.broker.redis.streams.receiving import StreamReceiving
from eventspype.broker.redis.streams.stats import RedisStreamStats, StreamCounters
from eventspype.broker.redis.streams.writer import (
    check_options,
    check_stream_options,
    default_consumer_name,
)
from eventspype.event import NormalizedTag
from eventspype.serializers import EventSerializer

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["AsyncRedisStreamBroker"]

_B = TypeVar("_B", bound="AsyncRedisStreamBroker")

#: After the drain deadline, how long handing the rest back may take.
_HAND_BACK_TIMEOUT = 5.0


class AsyncRedisStreamBroker(AsyncServing, AsyncStreamAdmin, RedisBrokerBase):
    """``RedisStreamBroker`` for asyncio: one consumer task, publishing never blocks.

    Same streams, envelope, options, delivery rules, retries, claims, leases,
    dead letters and counters as ``RedisStreamBroker``: both drive the same
    Streams core (``streams.protocol``), so a group may mix consumers of
    either kind. At least once per consumer group; an entry is acknowledged
    only once every local subscriber handled it: a coroutine subscriber
    (``AsyncEventSubscriber``) when its coroutine returned, awaited through
    its own backlog (so at most its ``max_concurrency`` handlers run, in
    stream order). Handlers read the entry id and delivery count with
    ``eventspype.current_delivery()``.

    The broker belongs to one event loop: the running one when it is created,
    or ``loop``. Its consumer is a task (never a thread), started by the
    first subscription. ``publish()`` never waits for Redis: it queues the
    XADD for a writer task that sends what one loop turn queued in one
    pipeline (``max_queued``, then ``PublishQueueFull``); ``await
    publish_async()`` returns once Redis has the entry. ``subscribe()``
    returns at once; ``await wait_until_subscribed()`` waits for the groups.
    Close with ``await aclose(drain=...)`` or ``async with``; run a consumer
    process with ``await broker.aserve()``.

    Args:
        redis_client: A ``redis.asyncio.Redis``. The broker reads and
            publishes on connections of its own, made like the client's.
        publish_timeout: How long the writer waits for Redis (seconds; the
            client's ``socket_timeout``, or 5 s).
        max_queued: The bound of the writer's queue, in events.
        loop: The event loop to use; the running one by default.

    The other options are ``RedisStreamBroker``'s, with the same defaults
    and meaning.

    Raises:
        ValueError: an option is out of range.
        RuntimeError: no loop is running and none was given.
        TypeError: the client has no connection pool.
    """

    _kind = "AsyncRedisStreamBroker"
    _client_class = redis.asyncio.Redis
    _retry_class = Retry

    def __init__(
        self,
        redis_client: redis.asyncio.Redis,
        serializer: EventSerializer | None = None,
        channel_prefix: str = "eventspype:",
        allow_unregistered_classes: bool = False,
        *,
        group: str = "eventspype",
        consumer: str | None = None,
        maxlen: int | None = 100_000,
        start: Literal["new", "all"] = "new",
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        prefetch: int = 100,
        forget_consumers_after: float = 3600.0,
        allowed_modules: Iterable[str] = (),
        max_message_bytes: int = 1 << 20,
        reconnect_delay: tuple[float, float] = (0.05, 5.0),
        claim_interval: float = 5.0,
        retry_delay: tuple[float, float] = (1.0, 60.0),
        dead_letter_maxlen: int | None = 10_000,
        publish_timeout: float | None = None,
        max_queued: int = 10_000,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        check_options(
            start, claim_idle, max_deliveries, prefetch, maxlen, reconnect_delay
        )
        check_stream_options(
            group, consumer, claim_interval, retry_delay, dead_letter_maxlen
        )
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._configure(
            serializer, channel_prefix, allow_unregistered_classes, allowed_modules
        )
        self._redis = redis_client
        self._maxlen = maxlen
        self._group = group
        self._counters: StreamCounters = StreamCounters()
        options = ReaderOptions(
            start=start,
            prefetch=prefetch,
            claim_idle=claim_idle,
            claim_interval=claim_interval,
            max_deliveries=max_deliveries,
            max_entry_bytes=max_message_bytes,
            retry_delay=retry_delay,
            reconnect_delay=reconnect_delay,
            maxlen=dead_letter_maxlen,
            forget_after=forget_consumers_after,
        ).consumer(group.encode(), (consumer or default_consumer_name()).encode())
        self._stuck_after = claim_idle
        inbound = self._inbound = Inbound(
            self._serializer, self._classes, max_bytes=max_message_bytes
        )
        # The thread driver's receiving side: decoding, checks, fan-out and
        # the verdicts are one code; its group creation is not used here.
        self._receiving = StreamReceiving(
            channel_prefix, inbound, self._counters, None, self, group
        )
        self._tables = self
        self._admin = own_client(redis_client, None, None)
        self._consumer = AsyncConsumer(
            self._loop,
            StreamProtocol(options),
            self._receiving,
            lambda: own_client(redis_client, options.block + DEFAULT_TIMEOUT, None),
            self._admin,
            dead_letter_maxlen,
            forget_consumers_after,
        )
        # Duck-typed as the receiving side's reader (streams, consumer,
        # set_streams).
        self._receiving.reader = self._consumer  # type: ignore[assignment]
        self._counters.add_source(self._consumer.proto.counters)
        self._sender = make_stream_sender(redis_client, maxlen, timeout=publish_timeout)
        self._writer = AsyncWriter(self._loop, self._sender, self._counters, max_queued)
        self._stop_requested = asyncio.Event()
        self._hurry = False
        # Dropped without aclose(): its tasks stop and a ResourceWarning says so.
        self._finalizer = watch_drop(
            self,
            f"AsyncRedisStreamBroker(channel_prefix={channel_prefix!r}, "
            f"group={group!r})",
            self._loop,
            self._consumer,
            self._writer,
            (self._sender.close, partial(_close, self._admin)),
        )

    # -- configuration -----------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the broker's tasks run on."""
        return self._loop

    @property
    def group(self) -> str:
        """The consumer group of this broker."""
        return self._group

    @property
    def consumer(self) -> str:
        """This broker's consumer name in the group."""
        return self._consumer.proto.options.consumer.decode()

    def stream_key(self, channel: str) -> str:
        """The Redis key of ``channel``'s stream (see ``RedisStreamBroker``)."""
        return stream_key(self._channel_prefix, channel)

    # -- MessageBroker -------------------------------------------------------------

    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """Queue the XADD of ``event`` and return at once (any thread).

        A batch that cannot be sent later is logged and counted
        (``stats().publish_errors``), not raised here.

        Raises:
            PublishQueueFull: ``max_queued`` events wait already.
            eventspype.serializers.SerializationError: ``event`` cannot be
                serialized.
            RuntimeError: the broker is closed.
        """
        message = self._envelope(event, event_tag)
        self._writer.put_nowait(self.stream_key(channel).encode(), message)

    async def publish_async(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """XADD ``event``; return once Redis has it (waits for room; no retry).

        Raises:
            redis.exceptions.ConnectionError: Redis cannot be reached.
            redis.exceptions.TimeoutError: Redis did not answer in time.
            redis.exceptions.ResponseError: Redis refused the XADD.
            eventspype.serializers.SerializationError: ``event`` cannot be
                serialized (nothing is sent).
            RuntimeError: the broker is closed.
        """
        message = self._envelope(event, event_tag)
        await self._writer.put(self.stream_key(channel).encode(), message)

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Deliver ``channel``'s events to ``subscriber`` (held weakly).

        Returns at once: the consumer task creates the group on the stream
        soon after (see :meth:`wait_until_subscribed`).

        Raises:
            RuntimeError: the broker is closed.
        """
        self.add(channel, subscriber, None)

    def add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        """(``SubscriptionTables``) Subscribe through ``publication``'s rule."""
        self._check_open()
        self._receiving.fanout.add(channel, subscriber, publication)
        self._sync()

    def discard(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        """(``SubscriptionTables``) Undo :meth:`add`."""
        self._receiving.fanout.remove(channel, subscriber, publication)
        self._sync()

    # -- lifecycle -----------------------------------------------------------------

    async def wait_until_subscribed(self, timeout: float = 10.0) -> None:
        """Wait until the group exists on every subscribed channel's stream.

        An event published after this returns is delivered to the group.

        Raises:
            SubscriptionRefused: Redis refused a channel's stream key (a key
                of another type, an ACL); the consumer retries it with
                backoff and the other channels go on (unsubscribe to give up).
            TimeoutError: not in time (Redis down; the consumer goes on).
            RuntimeError: the broker is closed.
        """
        self._check_open()
        consumer = self._consumer
        deadline = time.monotonic() + timeout
        while not consumer.proto.streams.keys() <= consumer.ready:
            now = time.monotonic()
            broken = set(consumer.proto.health(now).broken_streams)
            for stream in sorted(broken & consumer.proto.streams.keys()):
                raise SubscriptionRefused(
                    stream.decode("utf-8", "replace"),
                    "Redis refused the stream key (a key of another type, or "
                    "an ACL); the consumer retries it with backoff",
                )
            if now > deadline:
                raise TimeoutError(
                    f"consumer group {self._group!r} not ready in {timeout} s "
                    f"on {sorted(self._channels())}"
                )
            await asyncio.sleep(0.005)

    async def flush(self) -> None:
        """Wait until every event published so far was sent to Redis (or failed)."""
        await self._writer.flush()

    def stats(self) -> RedisStreamStats:
        """The counters (``channels`` is empty: ``await backlog()`` reads it)."""
        return self._counters.stream_snapshot(
            self._receiving.fanout.subscriber_errors, MappingProxyType({})
        )

    async def aclose(self, drain: float = 10.0) -> None:
        """Stop reading, finish and acknowledge what is in hand, close.

        What is not finished within ``drain`` seconds is handed back to the
        group. Idempotent; the client passed in stays open, one made by
        :meth:`from_url` is closed.
        """
        if self._closed:
            return
        self._closed = self._receiving.closed = True
        self._finalizer.detach()
        consumer = self._consumer
        try:
            await self._writer.flush()
        finally:
            consumer.stop()
            if self._hurry:
                consumer.hand_back_rest()
            try:
                await asyncio.wait_for(consumer.finished.wait(), drain)
            except asyncio.TimeoutError:
                consumer.hand_back_rest()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(consumer.finished.wait(), _HAND_BACK_TIMEOUT)
            await consumer.close()
            await self._writer.stop()
            await self._sender.close()
            await _close(self._admin)
            if self._owns_client:
                await _close(self._redis)

    async def __aenter__(self: _B) -> _B:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._channels())} stream(s)"
        return (
            f"<{type(self).__name__} prefix={self._channel_prefix!r} "
            f"group={self._group!r} {state}>"
        )

    # -- internals ---------------------------------------------------------------------

    def _channels(self) -> list[str]:
        return self._receiving.fanout.channels()

    def _refusal(self, channel: str, data: bytes) -> str | None:
        """Why the receive checks would refuse ``data`` on ``channel``."""
        try:
            self._inbound.decode(channel, data)
        except EnvelopeError as error:
            return f"{error.reason}: {error}"
        return None

    def _sync(self) -> None:
        fanout = self._receiving.fanout
        fanout.reap()
        prefix = self._channel_prefix
        wanted = {stream_key(prefix, c).encode(): c for c in fanout.channels()}
        if wanted != self._consumer.proto.streams and not self._closed:
            self._consumer.set_streams(wanted)


async def _close(client: Any) -> None:
    """``aclose()``, or ``close()`` before redis-py 5.0.1 added it."""
    await (getattr(client, "aclose", None) or client.close)()
