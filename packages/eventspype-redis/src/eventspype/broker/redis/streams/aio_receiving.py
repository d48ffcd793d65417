"""The receiving side of AsyncRedisStreamBroker: one delivery to the subscribers.

The core (``streams.protocol``) hands the driver a
:class:`~streams.held.Delivery`; :meth:`AsyncReceiving.hand_over` decodes it
with the checks every Redis broker runs (``_wire.inbound``), asks the fan-out
which subscribers accept the event (``_wire.fanout``), calls the synchronous
ones at once and awaits the coroutine subscribers (``call_async``: through
their own backlog, so at most ``max_concurrency`` of their handlers run), and
returns the outcome the core takes (``StreamProtocol.finished``). Only the
subscribers not in ``Delivery.succeeded`` are called (a retry). Each call runs
with the delivery context set (``eventspype.delivery``): the entry id,
Redis's delivery count, the group and the consumer.

When every accepting subscriber is synchronous the outcome comes back at once
(no task); otherwise a coroutine to run as a task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from eventspype._subscribers import log_subscriber_error
from eventspype.broker.redis._wire.envelope import EnvelopeError
from eventspype.broker.redis._wire.fanout import Fanout
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.stats import Counters
from eventspype.broker.redis.streams.held import Delivery, Verdict
from eventspype.broker.redis.streams.receiving import (
    _DEAD_LETTER_REASONS as DEAD_LETTER_REASONS,
)
from eventspype.delivery import Delivery as HandlerDelivery
from eventspype.delivery import delivering
from eventspype.sub.asynchronous import AsyncEventSubscriber

if TYPE_CHECKING:
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["AsyncReceiving", "Outcome"]

_logger = logging.getLogger("eventspype.broker.redis")

#: What ``StreamProtocol.finished`` takes: verdict, error text, and the ids of
#: the subscribers that handled the entry.
Outcome = tuple[Verdict, str, frozenset[object]]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class AsyncReceiving:
    """Decode, check and hand one delivery over (see the module docs).

    ``names`` returns the group and the consumer name (for the delivery
    context); ``caller`` is what subscribers see as caller (the broker).
    """

    def __init__(
        self,
        inbound: Inbound,
        counters: Counters,
        caller: object,
        names: Callable[[], tuple[str, str]],
    ) -> None:
        self._inbound = inbound
        self._counters = counters
        self._caller = caller
        self._names = names
        self.fanout = Fanout()

    def hand_over(self, delivery: Delivery) -> Outcome | Coroutine[Any, Any, Outcome]:
        """The outcome of ``delivery``, or a coroutine that awaits it."""
        channel = delivery.channel
        fanout = self.fanout
        if not fanout.subscriber_count(channel):
            return "skip", "", frozenset()
        counters = self._counters
        try:
            event, tag = self._inbound.decode(channel, delivery.data)
        except EnvelopeError as error:
            counters.drop(error.reason, channel, error)
            if error.reason in DEAD_LETTER_REASONS:
                return "refused", f"{error.reason}: {error}", frozenset()
            return "ok", "", frozenset()  # not this group's to handle
        subscribers, refused = fanout.matching(channel, event, tag)
        for reason, detail in refused:
            counters.drop(reason, channel, detail)
        done = delivery.succeeded
        todo = [s for s in subscribers if id(s) not in done]
        if not todo:
            return "ok", "", done
        counters.add_delivered()
        group, consumer = self._names()
        context = HandlerDelivery(
            channel=channel,
            system="redis",
            message_id=delivery.entry_id.decode("ascii", "replace"),
            delivery_count=delivery.delivery_count,
            group=group,
            consumer=consumer,
        )
        succeeded = set(done)
        errors: list[str] = []
        waiting: list[AsyncEventSubscriber] = []
        with delivering(context):
            for subscriber in todo:
                if isinstance(subscriber, AsyncEventSubscriber):
                    waiting.append(subscriber)
                    continue
                try:
                    subscriber.call(event, tag, self._caller)
                except Exception as error:
                    self._failed(subscriber, event, tag, channel, error, errors)
                else:
                    succeeded.add(id(subscriber))
        if not waiting:
            return _outcome(errors, succeeded)
        return self._await(context, waiting, event, tag, channel, errors, succeeded)

    async def _await(
        self,
        context: HandlerDelivery,
        waiting: list[AsyncEventSubscriber],
        event: Any,
        tag: Any,
        channel: str,
        errors: list[str],
        succeeded: set[object],
    ) -> Outcome:
        # One after the other, like the synchronous ones: each call_async
        # joins its subscriber's backlog when awaited, so the order of the
        # stream holds per subscriber (deliveries start in stream order).
        with delivering(context):
            for subscriber in waiting:
                try:
                    await subscriber.call_async(event, tag, self._caller)
                except Exception as error:
                    self._failed(subscriber, event, tag, channel, error, errors)
                else:
                    succeeded.add(id(subscriber))
        return _outcome(errors, succeeded)

    def _failed(
        self,
        subscriber: EventSubscriber,
        event: Any,
        tag: Any,
        channel: str,
        error: Exception,
        errors: list[str],
    ) -> None:
        self.fanout.subscriber_errors += 1
        errors.append(_describe(error))
        try:
            raise error
        except Exception:
            log_subscriber_error(_logger, subscriber, event, tag, channel)


def _outcome(errors: list[str], succeeded: set[object]) -> Outcome:
    if errors:
        return "failed", "; ".join(errors), frozenset(succeeded)
    return "ok", "", frozenset(succeeded)
