"""RedisStreamBroker: at-least-once delivery per consumer group on Redis Streams."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventspype.broker.broker import MessageBroker
from eventspype.broker.redis import _envelope
from eventspype.broker.redis._batch import Batch, BatchBuffer
from eventspype.broker.redis._connections import DEFAULT_TIMEOUT, connection_recipe
from eventspype.broker.redis._dead_letters import (
    EVENT_FIELD,
    DeadLetter,
    read_dead_letters,
    republish,
)
from eventspype.broker.redis._envelope import EnvelopeError
from eventspype.broker.redis._inbound import ClassRegistry, Inbound

# TEMPORARY: becomes the shared fan-out of the inbound path once merged.
from eventspype.broker.redis._stream_fanout import LocalFanout
from eventspype.broker.redis._stream_reader import Handled, StreamReader
from eventspype.broker.redis._stream_stats import (
    ChannelBacklog,
    RedisStreamStats,
    StreamCounters,
)
from eventspype.event import NormalizedTag
from eventspype.serializers import EventSerializer, JsonEventSerializer

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["RedisStreamBroker"]

_logger = logging.getLogger("eventspype.broker.redis")

_B = TypeVar("_B", bound="RedisStreamBroker")

#: How long ``close()`` waits for the reader to finish what it holds.
_CLOSE_TIMEOUT = 10.0


def default_consumer_name() -> str:
    """``<host>:<pid>:<random>``: unique per process, readable in XINFO."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisStreamBroker(MessageBroker):
    """Durable delivery: every consumer group receives every event at least once.

    Each channel is a Redis stream, ``<channel_prefix><channel>``.
    ``publish()`` appends the same JSON envelope :class:`RedisBroker` publishes
    (one field, ``event``) with ``XADD ... MAXLEN ~ maxlen`` and returns once
    Redis has it; it raises when Redis cannot be reached. The events wait in
    the stream for readers: a process that subscribes later, or restarts,
    still gets them.

    Processes that use the same ``group`` share the work (each event goes to
    one consumer of the group); every group gets every event. A process
    receives on one reader thread, started by the first ``subscribe()``, which
    calls the local subscribers of the event's channel (the broker is the
    caller) and acknowledges the event once all of them returned without
    raising. An event that was not acknowledged (a subscriber raised, or the
    process died) is delivered again, to this or another consumer, after
    ``claim_idle`` seconds; after ``max_deliveries`` deliveries it is moved,
    with the last error and the count, to the dead-letter stream
    ``<stream>:dead`` (see :meth:`dead_letters`). So handlers must be
    idempotent: a crash between handling and acknowledging means the event
    comes again. Within a stream, one consumer sees events in order.

    The receiver checks of :class:`RedisBroker` apply (size, envelope, class
    allowlist, typed decoding); an entry that fails them is counted under its
    reason and dead-lettered at once, so that registering a forgotten class
    and re-publishing recovers it.

    Args:
        redis_client: A ``redis.Redis`` (or ``fakeredis.FakeRedis``). The
            broker opens connections of its own with the same settings.
        serializer: The payload serializer; JSON by default.
        channel_prefix: Prepended to every channel to name its stream.
        allow_unregistered_classes: Import classes that were not registered
            (see :class:`RedisBroker`).
        group: The consumer group of this broker's subscriptions.
        consumer: This consumer's name in the group; unique per process by
            default (host, pid, random). Give a stable name to have a restarted
            process take its own unfinished events back at once.
        maxlen: Trim each stream to about this many entries on publish
            (``MAXLEN ~``); ``None`` never trims. Entries trimmed before a
            group read them are lost to it: size it above the worst backlog.
        start: Where a group that does not exist yet starts reading a stream:
            ``"new"`` (events published from now on) or ``"all"``.
        claim_idle: Seconds an event may stay unacknowledged before another
            delivery is tried; longer than your slowest handler.
        max_deliveries: Deliveries before an event is dead-lettered.
        prefetch: The most events this consumer holds unacknowledged.
        forget_consumers_after: Consumers of the group idle this many seconds
            with nothing pending are removed from it (never one with pending
            events: that would lose them).
        max_message_bytes: Larger entries are refused unread.
        max_nesting_depth: See :class:`RedisBroker`.
        reconnect_delay: ``(first, longest)`` seconds between reconnection
            attempts of the reader; doubles after each failure.

    Raises:
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
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
        max_message_bytes: int = 1 << 20,
        max_nesting_depth: int = 64,
        reconnect_delay: tuple[float, float] = (0.05, 5.0),
    ) -> None:
        _check_options(start, claim_idle, max_deliveries, prefetch, maxlen)
        first, longest = reconnect_delay
        if not 0 < first <= longest:
            raise ValueError(
                f"reconnect_delay must be 0 < first <= longest, got {reconnect_delay}"
            )
        self._redis = redis_client
        self._serializer: EventSerializer = serializer or JsonEventSerializer()
        self._channel_prefix = channel_prefix
        self._maxlen = maxlen
        self._group = group
        self._consumer = consumer or default_consumer_name()
        self._classes = ClassRegistry(allow_unregistered_classes)
        self._inbound = Inbound(
            self._serializer,
            self._classes,
            max_bytes=max_message_bytes,
            max_depth=max_nesting_depth,
        )
        self._fanout = LocalFanout()
        self._counters = StreamCounters()
        self._batch_buffer = BatchBuffer()
        self._closed = False
        self._owns_client = False
        self._reader = StreamReader(
            self._reader_client,
            self._handle,
            self._counters,
            group=group.encode(),
            consumer=self._consumer.encode(),
            start=start,
            prefetch=prefetch,
            claim_idle=claim_idle,
            max_deliveries=max_deliveries,
            maxlen=maxlen,
            forget_after=forget_consumers_after,
            reconnect_delay=reconnect_delay,
        )
        recipe = connection_recipe(redis_client, None)
        # Commands of our own (publish, groups, stats) get bytes back and
        # never retry (an XADD retried could be added twice).
        self._commands: Any = (
            redis.Redis(connection_pool=recipe.pool()) if recipe else redis_client
        )

    @classmethod
    def from_url(
        cls: type[_B],
        url: str,
        serializer: EventSerializer | None = None,
        channel_prefix: str = "eventspype:",
        allow_unregistered_classes: bool = False,
        *,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 2.0,
        client_options: Mapping[str, Any] | None = None,
        **broker_options: Any,
    ) -> _B:
        """A broker on a new client for ``url``; the broker owns (closes) it.

        As :meth:`RedisBroker.from_url`: timeouts, keepalive, no retries;
        ``broker_options`` are the constructor's keyword-only options
        (``group``, ``consumer``, ``maxlen``, ``start``, ``claim_idle``,
        ``max_deliveries``, ``prefetch``, ...).
        """
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "socket_keepalive": True,
            "retry": Retry(NoBackoff(), 0),
            **(client_options or {}),
        }
        client = redis.Redis.from_url(url, **options)
        try:
            broker = cls(
                client,
                serializer,
                channel_prefix,
                allow_unregistered_classes,
                **broker_options,
            )
        except BaseException:
            client.close()
            raise
        broker._owns_client = True
        return broker

    # -- configuration -----------------------------------------------------

    def register_event_class(self, event_class: type) -> None:
        """Accept ``event_class`` in received entries."""
        self._classes.register(event_class)

    def register_event_classes(self, *event_classes: type) -> None:
        """:meth:`register_event_class` for each class."""
        for event_class in event_classes:
            self._classes.register(event_class)

    @property
    def channel_prefix(self) -> str:
        """The prefix of every stream key."""
        return self._channel_prefix

    @property
    def group(self) -> str:
        """The consumer group of this broker."""
        return self._group

    @property
    def consumer(self) -> str:
        """This broker's consumer name in the group."""
        return self._consumer

    def stream_key(self, channel: str) -> str:
        """The Redis key of ``channel``'s stream (its dead letters: ``+ ":dead"``)."""
        return self._channel_prefix + channel

    # -- MessageBroker -------------------------------------------------------

    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """XADD ``event`` to the channel's stream; returns once Redis has it.

        Inside a :meth:`batch` block the event is held and sent when the block
        ends. ``caller`` does not travel. Not retried: when it raises, Redis
        may or may not have the event.

        Raises:
            redis.exceptions.ConnectionError: Redis cannot be reached.
            redis.exceptions.TimeoutError: Redis did not answer in time.
            eventspype.serializers.SerializationError: ``event`` cannot be
                serialized (nothing is sent).
            RuntimeError: the broker is closed.
        """
        if self._closed:
            raise RuntimeError("RedisStreamBroker is closed")
        message = _envelope.encode(
            event_tag, type(event), self._serializer.serialize(event)
        )
        key = self._channel_prefix + channel
        held = self._batch_buffer.current()
        if held is not None:
            held.messages.append((key.encode(), message))
            return
        try:
            if self._maxlen is None:
                self._commands.execute_command("XADD", key, "*", EVENT_FIELD, message)
            else:
                self._commands.execute_command(
                    "XADD", key, "MAXLEN", "~", self._maxlen, "*", EVENT_FIELD, message
                )
        except Exception:
            self._counters.add_publish_error()
            raise
        self._counters.add_published(1)

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Deliver ``channel``'s events to ``subscriber`` (held weakly).

        Creates the group on the stream (and the stream) if needed, so an
        event published after this returns is delivered to the group even if
        the reader has not started on it yet. While Redis is down, the reader
        creates it on reconnection.

        Raises:
            RuntimeError: the broker is closed.
        """
        self._add(channel, subscriber, None)

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Stop delivering ``channel`` to ``subscriber``.

        With no subscriber left the reader stops reading the stream; what
        the group has not read stays in it for the other consumers.
        """
        self._fanout.unsubscribe(channel, subscriber)
        self._sync_streams()

    def subscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """Subscribe through ``publication`` (its tag is the channel)."""
        self._add(str(publication.event_tag), subscriber, publication)

    def unsubscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """Undo :meth:`subscribe_publication` for this publication."""
        self._fanout.unsubscribe(str(publication.event_tag), subscriber, publication)
        self._sync_streams()

    # -- operations ------------------------------------------------------------

    def batch(self) -> Batch:
        """``with broker.batch():`` sends the publishes in it in one pipeline."""
        return Batch(self._batch_buffer, self._send_batch)

    def stats(self) -> RedisStreamStats:
        """Counters, plus each subscribed channel's backlog (read from Redis)."""
        channels: dict[str, ChannelBacklog] = {}
        for channel in self._fanout.channels():
            try:
                groups = self._commands.xinfo_groups(self.stream_key(channel))
            except redis.RedisError:
                continue
            for info in groups:
                name = info.get("name")
                if name in (self._group, self._group.encode()):
                    lag = info.get("lag")
                    channels[channel] = ChannelBacklog(
                        pending=int(info.get("pending", 0)),
                        lag=None if lag is None else int(lag),
                    )
        return self._counters.stream_snapshot(
            self._fanout.subscriber_errors, MappingProxyType(channels)
        )

    def dead_letters(
        self, channel: str, count: int = 100, after: str = "0"
    ) -> list[DeadLetter]:
        """The oldest ``count`` dead letters of ``channel`` with an id above ``after``.

        Page with ``after=letters[-1].id``. Every group's letters are there;
        :attr:`DeadLetter.group` says whose.
        """
        return read_dead_letters(
            self._commands, self.stream_key(channel).encode(), channel, count, after
        )

    def republish_dead_letters(
        self, channel: str, letters: list[DeadLetter] | None = None
    ) -> int:
        """Put dead letters back in the stream (all of them, or ``letters``).

        Each goes to the end of the stream as a new entry, so every group
        receives it again (idempotent handlers make that harmless), and is
        removed from the dead-letter stream. Returns how many.
        """
        stream = self.stream_key(channel).encode()
        if letters is None:
            letters = []
            after = "0"
            while page := self.dead_letters(channel, 1000, after):
                letters.extend(page)
                after = page[-1].id
        return republish(self._commands, stream, letters, self._maxlen)

    def close(self) -> None:
        """Stop reading, finish and acknowledge the events in hand, join.

        What was not finished stays pending for the group. Idempotent; the
        client passed in stays open, one made by :meth:`from_url` is closed.
        """
        if self._closed:
            return
        self._closed = True
        self._reader.request_stop()
        self._reader.wake(self._commands)
        if not self._reader.join(_CLOSE_TIMEOUT):
            _logger.warning("Redis stream reader still running after close()")
        if self._commands is not self._redis:
            self._commands.connection_pool.disconnect()
        if self._owns_client:
            self._redis.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._reader.streams)} stream(s)"
        return (
            f"<{type(self).__name__} prefix={self._channel_prefix!r} "
            f"group={self._group!r} {state}>"
        )

    # -- internals -----------------------------------------------------------------

    def _add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        if self._closed:
            raise RuntimeError("RedisStreamBroker is closed")
        self._fanout.subscribe(channel, subscriber, publication)
        stream = self.stream_key(channel).encode()
        if stream not in self._reader.streams:
            try:
                self._reader.ensure_group(self._commands, stream)
            except redis.ConnectionError as error:
                _logger.warning(
                    "Cannot create consumer group %r on %r now (%s); the reader "
                    "creates it once Redis is back",
                    self._group,
                    stream.decode(),
                    error,
                )
        self._sync_streams()

    def _sync_streams(self) -> None:
        wanted = {self.stream_key(c).encode(): c for c in self._fanout.channels()}
        if wanted != self._reader.streams and not self._closed:
            self._reader.set_streams(wanted, self._commands)

    def _reader_client(self) -> Any:
        """A client on a connection of the reader's own (bytes, no retries)."""
        timeout = self._reader.block_seconds + DEFAULT_TIMEOUT
        recipe = connection_recipe(self._redis, timeout)
        if recipe is None:
            return self._redis
        return redis.Redis(connection_pool=recipe.pool())

    def _send_batch(self, messages: list[tuple[bytes, bytes]]) -> None:
        if self._closed:
            raise RuntimeError("RedisStreamBroker is closed")
        pipeline = self._commands.pipeline(transaction=False)
        for key, message in messages:
            if self._maxlen is None:
                pipeline.xadd(key, {EVENT_FIELD: message})
            else:
                pipeline.xadd(
                    key, {EVENT_FIELD: message}, maxlen=self._maxlen, approximate=True
                )
        try:
            pipeline.execute()
        except Exception:
            self._counters.add_publish_error()
            raise
        self._counters.add_published(len(messages))

    def _handle(self, channel: str, data: bytes) -> Handled:
        """Decode one entry and deliver it locally (reader thread)."""
        if not self._fanout.subscriber_count(channel):
            return "skip", None
        try:
            event, event_tag = self._inbound.decode(data)
        except EnvelopeError as error:
            self._counters.drop(error.reason, self.stream_key(channel), error)
            return "refused", f"{error.reason}: {error}"
        self._counters.delivered += 1
        outcome = self._fanout.deliver(channel, event, event_tag, self)
        if outcome.ok:
            return "ok", None
        return "failed", "; ".join(
            f"{type(error).__name__}: {error}" for _, error in outcome.errors
        )


def _check_options(
    start: str,
    claim_idle: float,
    max_deliveries: int,
    prefetch: int,
    maxlen: int | None,
) -> None:
    if start not in ("new", "all"):
        raise ValueError(f"start must be 'new' or 'all', got {start!r}")
    if not claim_idle > 0:
        raise ValueError(f"claim_idle must be > 0, got {claim_idle}")
    if max_deliveries < 1 or prefetch < 1:
        raise ValueError(
            f"max_deliveries and prefetch must be at least 1, got {max_deliveries} "
            f"and {prefetch}"
        )
    if maxlen is not None and maxlen < 1:
        raise ValueError(f"maxlen must be at least 1 or None, got {maxlen}")
