"""The publish and delivery paths taken while hooks are installed.

The fast paths (``EventPublisher.publish``, ``LocalBroker.publish``,
``deliver_async``, the Redis fan-out) test ``REGISTRY.hooks`` and, when it is
not empty, come here instead; so the hooks cost nothing while none is
installed. See :mod:`eventspype.hooks` for what hooks see.
"""

from __future__ import annotations

import contextvars
import logging
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, cast

from eventspype._subscribers import log_subscriber_error
from eventspype.hooks import (
    IN_PROCESS,
    DeliveryInfo,
    Hook,
    PublishInfo,
    _delivery_finished,
    _delivery_started,
    _publish_finished,
    _publish_started,
)
from eventspype.sub.asynchronous import AsyncEventSubscriber

if TYPE_CHECKING:
    import weakref

    from eventspype.delivery import Delivery
    from eventspype.event import NormalizedTag
    from eventspype.pub.publisher import EventPublisher
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["call", "deliver", "publish", "publish_async", "publish_info"]

#: Subscriber class -> whether it is a coroutine subscriber. Classes are few;
#: bounded anyway (cleared when full) for programs that make classes at run time.
_COROUTINE: dict[type, bool] = {}
_COROUTINE_MAX = 1024


def call(
    hooks: tuple[Hook, ...],
    subscriber: EventSubscriber,
    event: Any,
    event_tag: NormalizedTag,
    caller: Any,
    channel: str,
    delivery: Delivery | None,
) -> None:
    """``subscriber.call(event, event_tag, caller)`` between the hooks.

    ``delivery`` is the transport's details (``None`` in-process). A
    coroutine subscriber is only scheduled here: its hooks run around its
    handler on its loop, with the context of this call kept for them. What
    the subscriber raises propagates, after the hooks saw it.
    """
    info = DeliveryInfo(channel, event, event_tag, subscriber, caller, delivery)
    kind = subscriber.__class__
    coroutine = _COROUTINE.get(kind)
    if coroutine is None:
        # isinstance on an ABC costs more than the rest of this function.
        if len(_COROUTINE) >= _COROUTINE_MAX:
            _COROUTINE.clear()
        coroutine = _COROUTINE[kind] = isinstance(subscriber, AsyncEventSubscriber)
    if coroutine:
        info.context = contextvars.copy_context()
        cast("AsyncEventSubscriber", subscriber)._schedule(
            event, event_tag, caller, info
        )
        return
    states = _delivery_started(hooks, info)
    error: BaseException | None = None
    start = perf_counter_ns()
    try:
        subscriber.call(event, event_tag, caller)
    except BaseException as raised:
        error = raised
        raise
    finally:
        _delivery_finished(hooks, info, states, error, perf_counter_ns() - start)


def deliver(
    hooks: tuple[Hook, ...],
    snapshot: tuple[weakref.ReferenceType[EventSubscriber], ...],
    event: Any,
    event_tag: NormalizedTag,
    caller: Any,
    channel: str,
    logger: logging.Logger,
    log_channel: str | None,
) -> tuple[int, bool]:
    """In-process delivery to ``snapshot`` with hooks; (errors, collected seen)."""
    errors = 0
    collected = False
    for ref in snapshot:
        subscriber = ref()
        if subscriber is None:
            collected = True
            continue
        try:
            call(hooks, subscriber, event, event_tag, caller, channel, None)
        except Exception:
            errors += 1
            log_subscriber_error(logger, subscriber, event, event_tag, log_channel)
    return errors, collected


def publish_info(publisher: EventPublisher, event: Any) -> PublishInfo:
    """What hooks see of one publish by ``publisher``."""
    broker = publisher._broker
    system = (
        IN_PROCESS
        if broker is None
        else str(getattr(broker, "messaging_system", IN_PROCESS))
    )
    return PublishInfo(
        publisher._channel,
        event,
        publisher._event_tag,
        publisher._publication,
        broker,
        system,
    )


def publish(
    hooks: tuple[Hook, ...], publisher: EventPublisher, event: Any, caller: Any
) -> None:
    """``EventPublisher.publish`` (after its checks) between the hooks."""
    info = publish_info(publisher, event)
    states, token = _publish_started(hooks, info)
    error: BaseException | None = None
    start = perf_counter_ns()
    try:
        if info.broker is not None:
            info.broker.publish(info.channel, event, info.event_tag, caller)
        else:
            subscribers = publisher._subscribers
            errors, collected = deliver(
                hooks,
                subscribers.snapshot,
                event,
                info.event_tag,
                caller,
                info.channel,
                publisher.logger,
                None,
            )
            publisher.subscriber_errors += errors
            if collected:
                subscribers.reconcile()
    except BaseException as raised:
        error = raised
        raise
    finally:
        _publish_finished(hooks, info, states, token, error, perf_counter_ns() - start)


async def publish_async(
    hooks: tuple[Hook, ...], publisher: EventPublisher, event: Any, caller: Any
) -> None:
    """``EventPublisher.publish_async`` (after its checks) between the hooks."""
    from eventspype._deliver_async import broker_publish_async, deliver_async

    info = publish_info(publisher, event)
    states, token = _publish_started(hooks, info)
    error: BaseException | None = None
    start = perf_counter_ns()
    try:
        if info.broker is not None:
            await broker_publish_async(
                info.broker, info.channel, event, info.event_tag, caller
            )
        else:
            subscribers = publisher._subscribers
            errors, collected = await deliver_async(
                subscribers.snapshot, event, info.event_tag, caller, publisher.logger
            )
            publisher.subscriber_errors += errors
            if collected:
                subscribers.reconcile()
    except BaseException as raised:
        error = raised
        raise
    finally:
        _publish_finished(hooks, info, states, token, error, perf_counter_ns() - start)
