"""RedisStreamBroker: at-least-once delivery per consumer group on Redis Streams."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.retry import Retry

from eventspype.broker.redis._io.batch import Batch, BatchBuffer
from eventspype.broker.redis._io.connections import DEFAULT_TIMEOUT
from eventspype.broker.redis._wire.broker_base import RedisBrokerBase
from eventspype.broker.redis._wire.envelope import EnvelopeError
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis.streams.cluster import stream_reader
from eventspype.broker.redis.streams.dead_letters import DeadLetterAccess, stream_key
from eventspype.broker.redis.streams.health import (
    StreamHealth,
    read_backlogs,
    stream_health,
)
from eventspype.broker.redis.streams.nodes import NodeClients
from eventspype.broker.redis.streams.reader import ReaderOptions
from eventspype.broker.redis.streams.receiving import StreamReceiving
from eventspype.broker.redis.streams.serving import serve_until_signal
from eventspype.broker.redis.streams.stats import (
    ChannelBacklog,
    RedisStreamStats,
    StreamCounters,
    read_backlog,
)
from eventspype.broker.redis.streams.writer import (
    StreamWriter,
    check_options,
    check_stream_options,
    default_consumer_name,
    own_pool,
)
from eventspype.event import NormalizedTag
from eventspype.serializers import EventSerializer

if TYPE_CHECKING:
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["RedisStreamBroker"]

_logger = logging.getLogger("eventspype.broker.redis")

_B = TypeVar("_B", bound="RedisStreamBroker")
_T = TypeVar("_T")

_CLOSE_TIMEOUT = 10.0  # how long close() waits for the reader to finish


class RedisStreamBroker(DeadLetterAccess, RedisBrokerBase):
    """Durable delivery: every consumer group receives every event at least once.

    Each channel is a stream, ``<channel_prefix>{<channel>}``: ``publish()``
    XADDs the envelope :class:`RedisBroker` publishes (one field, ``event``,
    ``MAXLEN ~ maxlen``), returns once Redis has it and raises when Redis
    cannot be reached. Brokers with the same ``group`` share the work; every
    group gets every event. One reader thread (from the first
    ``subscribe()``) calls the local subscribers, with the broker as caller,
    and acknowledges an event once all of them returned without raising.
    One that was not (a subscriber raised, the process died) is delivered
    again, to this or another consumer, after ``claim_idle`` seconds, and
    after ``max_deliveries`` deliveries moved to ``<stream>:dead`` with the
    last error (see :meth:`RedisStreamBroker.dead_letters`). Handlers must therefore be
    idempotent. Within a stream, one consumer sees events in order. The
    receiver checks and publication rules of :class:`RedisBroker` apply, and
    every refusal is counted under its reason. An entry a consumer-side fix
    can cure (size, envelope, unregistered class, payload) is dead-lettered at
    once (register the class, then re-publish it); one whose tag is not its
    stream's, or that no local subscriber's publication accepts, is
    acknowledged: it is not this group's to handle.

    On Redis Cluster (a ``RedisCluster`` client) each stream lives on the
    master owning its channel's slot; the broker reads each master's streams
    there and follows failovers and reshardings (see "Scaling out").

    Args:
        redis_client: A ``redis.Redis`` (or ``fakeredis.FakeRedis``), or a
            ``redis.cluster.RedisCluster``. The broker opens connections of
            its own with the same settings.
        serializer: The payload serializer; JSON by default.
        channel_prefix: Prepended to every channel to name its stream.
        allow_unregistered_classes: Import classes that were not registered
            (see :class:`RedisBroker`).
        group: The consumer group of this broker's subscriptions.
        consumer: This consumer's name in the group; unique per process by
            default (host, pid, random). Two live processes must never share
            one: each would acknowledge the other's events.
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
        allowed_modules: Import the classes of these modules (and their
            submodules) without registering them (see :class:`RedisBroker`).
        max_message_bytes: Larger entries are refused unread.
        reconnect_delay: ``(first, longest)`` seconds between reconnection
            attempts of the reader; doubles after each failure.
        dead_letter_maxlen: Trim each dead-letter stream to about this many
            letters (``MAXLEN ~``; the oldest go first); ``None`` never trims.

    Raises:
        ValueError: an option is out of range.
    """

    _kind = "RedisStreamBroker"
    _client_class = redis.Redis
    _retry_class = Retry

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
        allowed_modules: Iterable[str] = (),
        max_message_bytes: int = 1 << 20,
        reconnect_delay: tuple[float, float] = (0.05, 5.0),
        claim_interval: float = 5.0,
        retry_delay: tuple[float, float] = (1.0, 60.0),
        dead_letter_maxlen: int | None = 10_000,
    ) -> None:
        check_options(
            start, claim_idle, max_deliveries, prefetch, maxlen, reconnect_delay
        )
        check_stream_options(
            group, consumer, claim_interval, retry_delay, dead_letter_maxlen
        )
        self._configure(
            serializer, channel_prefix, allow_unregistered_classes, allowed_modules
        )
        self._redis = redis_client
        self._maxlen = maxlen
        self._group = group
        self._consumer = consumer or default_consumer_name()
        self._counters: StreamCounters = StreamCounters()
        self._batch_buffer = BatchBuffer()
        # Connections of our own, made like the client's: replies as bytes,
        # no retries (a retried XADD could be added twice). On a cluster, per
        # node (see streams.nodes).
        cluster = isinstance(redis_client, RedisCluster)
        self._nodes = NodeClients(redis_client) if cluster else None
        commands = None if cluster else partial(_commands_client, redis_client)
        inbound = Inbound(self._serializer, self._classes, max_bytes=max_message_bytes)
        self._inbound = inbound
        self._receiving = self._tables = StreamReceiving(
            channel_prefix,
            inbound,
            self._counters,
            commands,
            self,
            group,
        )
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
        )
        self._reader = self._receiving.reader = stream_reader(
            self._nodes,
            partial(_reader_client, redis_client, options.block),
            self._receiving.handle,
            self._counters,
            options,
            rename=None if consumer else lambda: default_consumer_name().encode(),
            group=group.encode(),
            consumer=self._consumer.encode(),
        )
        self._writer = StreamWriter(redis_client, maxlen)
        self._claim_idle, self._reader_block = claim_idle, options.block
        # Dropped without close(): the reader stops (hands back what it holds).
        weakref.finalize(self, self._reader.request_stop)

    # -- configuration -----------------------------------------------------

    @property
    def group(self) -> str:
        """The consumer group of this broker."""
        return self._group

    @property
    def consumer(self) -> str:
        """This broker's consumer name in the group (new in a forked child
        when it was generated)."""
        return self._reader.consumer.decode()

    def stream_key(self, channel: str) -> str:
        """The Redis key of ``channel``'s stream: ``<channel_prefix>{<channel>}``.

        Its dead letters are in ``stream_key(channel) + ":dead"``; the hash
        tag keeps both in one slot of a Redis Cluster.
        """
        return stream_key(self._channel_prefix, channel)

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
        message = self._envelope(event, event_tag)
        key = stream_key(self._channel_prefix, channel).encode()
        held = self._batch_buffer.current()
        if held is not None:
            held.messages.append((key, message))
            return
        self._counted(partial(self._writer.add, key), message, 1)

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Deliver ``channel``'s events to ``subscriber`` (held weakly).

        Creates the group on the stream (and the stream) if needed, so an
        event published after this returns is delivered to the group even if
        the reader has not started on it yet. While Redis is down, the reader
        creates it on reconnection.

        Raises:
            RuntimeError: the broker is closed.
        """
        self._receiving.add(channel, subscriber, None)

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Stop delivering ``channel`` to ``subscriber``.

        With no subscriber left the reader stops reading the stream; what
        the group has not read stays in it for the other consumers.
        """
        self._receiving.discard(channel, subscriber, None)

    # -- operations ------------------------------------------------------------

    def batch(self) -> Batch:
        """``with broker.batch():`` sends the publishes in it in one pipeline."""
        return Batch(self._batch_buffer, self._send_batch)

    def stats(self) -> RedisStreamStats:
        """Counters, plus each subscribed channel's backlog (read from Redis)."""
        channels: dict[str, ChannelBacklog] = {}
        for channel in self._receiving.channels():
            key = self.stream_key(channel).encode()
            backlog = read_backlog(self._on_owner, key, self._group)
            if backlog is not None:
                channels[channel] = backlog
        return self._counters.stream_snapshot(
            self._receiving.subscriber_errors, MappingProxyType(channels)
        )

    def close(self, drain: float = _CLOSE_TIMEOUT) -> None:
        """Stop reading; finish and acknowledge what is in hand, join.

        The subscribers get ``drain`` seconds to finish the deliveries in
        hand; what is not finished then (and what was read but not started)
        is handed back to the group, so that another consumer takes it at
        its next claim sweep, not after ``claim_idle``. Idempotent; the client
        passed in stays open, one made by :meth:`from_url` is closed.
        """
        if self._closed:
            return
        self._closed = self._receiving.closed = True
        self._reader.request_stop(drain)
        self._reader.wake(self._receiving.commands)
        if not self._reader.join(drain + 5.0 + self._reader_block):
            _logger.warning("Redis stream reader still running after close()")
        if self._receiving.commands is not None:
            self._receiving.commands.connection_pool.disconnect()
        if self._nodes is not None:
            self._nodes.close()
        self._writer.close()
        if self._owns_client:
            self._redis.close()

    def serve(self, drain: float = 30.0) -> None:
        """Run this consumer until SIGTERM or SIGINT, then drain and close.

        The main of a consumer process: subscribe, then ``broker.serve()``.
        On the first signal it stops reading and gives the subscribers
        ``drain`` seconds to finish what is in hand (see :meth:`close`); a
        second signal hands the rest back at once. Returns normally, so the
        process exits 0. Call it from the main thread.

        Raises:
            ValueError: called from another thread.
        """
        serve_until_signal(self.close, lambda: self._reader.request_stop(0.0), drain)

    def health(
        self, backlog: bool = False, stuck_after: float | None = None
    ) -> StreamHealth:
        """What liveness and readiness probes need (see :class:`StreamHealth`).

        Liveness: the reader runs and no delivery has been with the
        subscribers longer than ``stuck_after`` (default ``claim_idle``).
        Readiness: connected, every stream readable. With ``backlog`` the
        group's pending, lag and dead letters per channel are read from Redis
        too (a round trip per channel; left out while Redis is down).
        """
        readers = self._reader.readers()
        keys = {c: self.stream_key(c).encode() for c in self._receiving.channels()}
        channels = read_backlogs(self._on_owner, keys, self._group) if backlog else {}
        running = not self._closed and all(r.running for r in readers)
        limit = self._claim_idle if stuck_after is None else stuck_after
        return stream_health([r.health() for r in readers], running, limit, channels)

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

    def _refusal(self, channel: str, data: bytes) -> str | None:
        """Why the receive checks would refuse ``data`` on ``channel``."""
        try:
            self._inbound.decode(channel, data)
        except EnvelopeError as error:
            return f"{error.reason}: {error}"
        return None

    def _on_owner(self, key: bytes, call: Callable[[Any], _T]) -> _T:
        """``call(client)`` with a client of the node holding ``key``."""
        if self._nodes is None:
            return call(self._receiving.commands)
        return self._nodes.on_owner(key, call)

    def _send_batch(self, messages: list[tuple[bytes, bytes]]) -> None:
        self._check_open()
        self._counted(self._writer.add_many, messages, len(messages))


def _reader_client(client: Any, block: float) -> Any:
    """One held connection of the reader's own (bytes, no retries), used by
    every batch (its id is what CLIENT UNBLOCK names); a restart of Redis
    shows as an error and a reconnection. Not a method: the reader thread
    must not hold the broker."""
    pool = own_pool(client, block + DEFAULT_TIMEOUT)
    return redis.Redis(connection_pool=pool, single_connection_client=True)


def _commands_client(client: Any) -> Any:
    """The broker's client for its own commands: a pool like ``client``'s."""
    return redis.Redis(connection_pool=own_pool(client))
