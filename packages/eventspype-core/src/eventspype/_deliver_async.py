"""In-process delivery for ``publish_async``: sync subscribers called,
coroutine subscribers awaited, one after the other, errors isolated."""

from __future__ import annotations

import contextvars
import inspect
import logging
import weakref
from typing import TYPE_CHECKING, Any

from eventspype._subscribers import log_subscriber_error
from eventspype.hooks import REGISTRY, DeliveryInfo
from eventspype.sub.asynchronous import AsyncEventSubscriber

if TYPE_CHECKING:
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["broker_publish_async", "deliver_async"]


async def deliver_async(
    snapshot: tuple[weakref.ReferenceType[EventSubscriber], ...],
    event: Any,
    event_tag: Any,
    caller: Any,
    logger: logging.Logger,
    channel: str | None = None,
) -> tuple[int, bool]:
    """Deliver ``event`` to each live subscriber of ``snapshot``, in order.

    A coroutine subscriber (:class:`AsyncEventSubscriber`) is awaited through
    ``call_async``, so it has handled the event when this returns; any other
    is called. A subscriber that raises is logged and the next one still gets
    the event. Returns (how many raised, whether a collected one was seen).
    """
    from eventspype._internal import observed

    errors = 0
    collected = False
    # Installed hooks see every call (see eventspype.hooks); read once.
    hooks = REGISTRY.hooks
    where = (str(event_tag) if channel is None else channel) if hooks else ""
    for ref in snapshot:
        subscriber = ref()
        if subscriber is None:
            collected = True
            continue
        try:
            if isinstance(subscriber, AsyncEventSubscriber):
                info = None
                if hooks:
                    info = DeliveryInfo(
                        where, event, event_tag, subscriber, caller, None
                    )
                    info.context = contextvars.copy_context()
                await subscriber._call_async(event, event_tag, caller, info)
            elif hooks:
                observed.call(hooks, subscriber, event, event_tag, caller, where, None)
            else:
                subscriber.call(event, event_tag, caller)
        except Exception:
            errors += 1
            log_subscriber_error(logger, subscriber, event, event_tag, channel)
    return errors, collected


async def broker_publish_async(
    broker: Any, channel: str, event: Any, event_tag: Any, caller: Any
) -> None:
    """Await ``broker.publish_async(...)`` when the broker has that coroutine
    method, else call its synchronous ``publish``."""
    method = getattr(broker, "publish_async", None)
    if method is not None and inspect.iscoroutinefunction(method):
        await method(channel, event, event_tag, caller)
    else:
        broker.publish(channel, event, event_tag, caller)
