"""The receiving side of a RedisStreamBroker: subscriptions, decoding, fan-out.

Turns one delivery of the Streams core into calls of the local subscribers
and an outcome for the core: decode and check the entry (the ``Inbound``
checks every Redis broker shares), call every subscriber of the channel that
accepts the event and has not handled it yet (a retry), with the delivery
context (``eventspype.delivery``) set; await coroutine subscribers on their
loop and report when all of them returned. Verdicts: ``ok`` (acknowledge),
``failed`` (retry after a backoff), ``refused`` (dead-letter: a consumer-side
fix can cure it), ``skip`` (no local subscriber: hand it back).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

import redis

from eventspype._internal import observed as _observed
from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._wire.envelope import EnvelopeError
from eventspype.broker.redis._wire.fanout import Fanout
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.stats import DropReason
from eventspype.broker.redis.pubsub.subscribing import SubscriptionRefused
from eventspype.broker.redis.streams.cluster import ClusterStreamReader
from eventspype.broker.redis.streams.dead_letters import stream_key
from eventspype.broker.redis.streams.held import Delivery
from eventspype.broker.redis.streams.reader import Outcome, StreamReader
from eventspype.broker.redis.streams.stats import StreamCounters
from eventspype.delivery import Delivery as DeliveryContext
from eventspype.delivery import delivering
from eventspype.hooks import REGISTRY as _HOOKS
from eventspype.hooks import DeliveryInfo
from eventspype.sub.asynchronous import AsyncEventSubscriber

if TYPE_CHECKING:
    from collections.abc import Callable

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
        commands: Callable[[], Any] | None,
        caller: object,
        group: str = "",
    ) -> None:
        self._prefix = prefix
        self._inbound = inbound
        self._counters = counters
        # For XGROUP CREATE, waking the reader, stats and dead letters (None
        # on a cluster); made again in a forked child (see below).
        self._make_commands = commands
        self.commands: Any = None if commands is None else commands()
        # Weakly: the reader thread must not keep a dropped broker alive.
        self._caller_ref = weakref.ref(caller)
        self._group = group
        self.fanout = Fanout()
        self.reader: StreamReader | ClusterStreamReader | None = None
        self._consumer_bytes: bytes | None = None  # and decoded:
        self._consumer_text: str | None = None
        self.closed = False
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # The child starts with no subscription: the parent's subscribers
        # (copies in the child) would otherwise handle every event twice.
        self.fanout = Fanout()
        # A pool of its own: a parent thread may have held the inherited
        # pool's lock at the fork, and the child would wait on it forever.
        if self._make_commands is not None:
            self.commands = self._make_commands()

    def add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        """Subscribe; create the group on the stream first if it is new here.

        Raises:
            RuntimeError: the broker is closed.
            SubscriptionRefused: Redis refused to make the group on the
                channel's stream (its key holds another type, an ACL);
                nothing is kept.
        """
        if self.closed:
            raise RuntimeError("RedisStreamBroker is closed")
        assert self.reader is not None
        stream = stream_key(self._prefix, channel).encode()
        if stream not in self.reader.streams:
            try:
                self.reader.ensure_group(self.commands, stream)
            except redis.ConnectionError as error:
                _logger.warning(
                    "Cannot create consumer group %r on %r now (%s); the reader "
                    "creates it once Redis is back",
                    self.reader.group.decode(),
                    stream.decode(),
                    error,
                )
            except redis.ResponseError as error:  # WRONGTYPE, an ACL refusal
                raise SubscriptionRefused(
                    stream.decode(), f"{type(error).__name__}: {error}"
                ) from error
        self.fanout.add(channel, subscriber, publication)
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
            reader.set_streams(wanted, self.commands)

    def handle(
        self, delivery: Delivery, report: Callable[[Outcome], None]
    ) -> Outcome | None:
        """Deliver one entry locally (reader thread); see the module docs.

        Returns the outcome, or ``None`` when coroutine subscribers are still
        running: ``report(outcome)`` is then called once they all returned.
        """
        channel = delivery.channel
        fanout = self.fanout
        caller = self._caller_ref()
        if caller is None or not fanout.has_live(channel):
            # Its subscribers were garbage-collected: stop reading the stream
            # (and claiming its entries); the entry goes back to the group.
            self._sync()
            return "skip", "", frozenset()
        try:
            event, event_tag, headers, problem = self._inbound.decode(
                channel, delivery.data
            )
        except EnvelopeError as error:
            self._counters.drop(error.reason, self._where(channel), error)
            why = f"{error.reason}: {error}"
            if error.reason in _DEAD_LETTER_REASONS:
                return "refused", why, frozenset()
            return "ok", why, frozenset()
        if problem is not None:
            self._counters.drop_headers(self._where(channel), problem)
        subscribers, refused = fanout.matching(channel, event, event_tag)
        for reason, detail in refused:
            self._counters.drop(reason, self._where(channel), detail)
        if not subscribers:
            return "ok", "", frozenset()
        self._counters.add_delivered()
        context = DeliveryContext(
            channel,
            "redis",
            delivery.entry_id.decode(),
            delivery.delivery_count,
            self._group,
            self._consumer_name(),
            headers,
        )
        hooks = _HOOKS.hooks  # installed observers (eventspype.hooks)
        done = set(delivery.succeeded)
        errors: list[str] = []
        waiting: list[AsyncEventSubscriber] = []
        with delivering(context):
            for subscriber in subscribers:
                if id(subscriber) in done:
                    continue
                if isinstance(subscriber, AsyncEventSubscriber):
                    waiting.append(subscriber)
                    continue
                try:
                    if hooks:
                        _observed.call(
                            hooks,
                            subscriber,
                            event,
                            event_tag,
                            caller,
                            channel,
                            context,
                        )
                    else:
                        subscriber.call(event, event_tag, caller)
                except BaseException as error:  # as the fan-out: SystemExit too
                    where = self._where(channel)
                    errors.append(self._failed(subscriber, error, event_tag, where))
                else:
                    done.add(id(subscriber))
            if not waiting:
                return _outcome(done, errors)
            # Still current: a coroutine subscriber's worker takes the
            # delivery that is current when the event is handed over.
            _Awaiting(
                self, waiting, (event, event_tag, caller), context, done, errors, report
            )
        return None

    def _where(self, channel: str) -> str:
        """The stream key of ``channel``, for logs and counters."""
        return stream_key(self._prefix, channel)

    def _consumer_name(self) -> str | None:
        """The reader's consumer name, decoded once."""
        reader = self.reader
        if reader is None:
            return None
        name = reader.consumer
        if name is not self._consumer_bytes:
            self._consumer_bytes, self._consumer_text = name, name.decode()
        return self._consumer_text

    def _failed(
        self, subscriber: EventSubscriber, error: BaseException, tag: Any, where: str
    ) -> str:
        self.fanout.subscriber_errors += 1
        _logger.error(
            "Subscriber %r raised while handling an event with tag %r on %r; "
            "it is retried after a backoff",
            subscriber,
            tag,
            where,
            exc_info=error,
        )
        return f"{type(error).__name__}: {error}"


def _outcome(done: set[object], errors: list[str]) -> Outcome:
    if errors:
        return "failed", "; ".join(errors), frozenset(done)
    return "ok", "", frozenset(done)


class _Awaiting:
    """Coroutine subscribers of one delivery, each awaited on its own loop."""

    def __init__(
        self,
        receiving: StreamReceiving,
        subscribers: list[AsyncEventSubscriber],
        call: tuple[Any, Any, Any],
        context: DeliveryContext,
        done: set[object],
        errors: list[str],
        report: Callable[[Outcome], None],
    ) -> None:
        self._lock = threading.Lock()
        self._left = len(subscribers)
        self._done, self._errors, self._report = done, errors, report
        self._receiving = receiving
        where = context.channel
        event_tag = call[1]
        running = asyncio._get_running_loop()
        for subscriber in subscribers:
            if subscriber.loop is running:  # the asyncio driver's own loop
                # Straight into its backlog, its outcome reported by a call
                # (no future, no loop turn): the handler runs at once from
                # Python 3.12 (an eager task), else at the next loop turn.
                info = _info(subscriber, *call, context)
                subscriber._submit(
                    *call,
                    info,
                    lambda error, s=subscriber: self._one(  # type: ignore[misc]
                        s, error, event_tag, where
                    ),
                )
                continue
            coroutine = _call(subscriber, *call, context)
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, subscriber.loop)
            except RuntimeError as error:  # its loop is closed
                coroutine.close()
                self._one(subscriber, error, event_tag, where)
                continue
            future.add_done_callback(
                lambda f, s=subscriber: self._one(  # type: ignore[misc]
                    s,
                    f.exception() if not f.cancelled() else RuntimeError("cancelled"),
                    event_tag,
                    where,
                )
            )

    def _one(
        self, subscriber: Any, error: BaseException | None, tag: Any, where: str
    ) -> None:
        with self._lock:
            if error is None:
                self._done.add(id(subscriber))
            else:
                self._errors.append(
                    self._receiving._failed(subscriber, error, tag, where)
                )
            self._left -= 1
            last = self._left == 0
        if last:
            self._report(_outcome(self._done, self._errors))


async def _call(
    subscriber: AsyncEventSubscriber,
    event: Any,
    event_tag: Any,
    caller: Any,
    context: DeliveryContext,
) -> None:
    with delivering(context):
        info = _info(subscriber, event, event_tag, caller, context)
        await subscriber._call_async(event, event_tag, caller, info)


def _info(
    subscriber: AsyncEventSubscriber,
    event: Any,
    event_tag: Any,
    caller: Any,
    context: DeliveryContext,
) -> DeliveryInfo | None:
    """What the hooks see of a coroutine subscriber's run (``None``: no hook
    installed); made with the delivery context current."""
    if not _HOOKS.hooks:  # the hooks run around the handler, on its loop
        return None
    info = DeliveryInfo(context.channel, event, event_tag, subscriber, caller, context)
    info.context = contextvars.copy_context()
    return info
