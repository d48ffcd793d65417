"""How ``TestBroker`` calls its subscribers: through the installed hooks.

With no hook installed (:mod:`eventspype.hooks`), a plain ``subscriber.call``
or ``call_async``. With hooks, each call is one delivery for them, as from a
real broker: an instrumented test run (eventspype-otel, a recorder built on
the hooks) sees TestBroker's deliveries too. The hooks see the delivery
current at the call: the emulated entry of a consumer group (stream entry
id, delivery count, group), else ``None`` (in-process, like ``LocalBroker``).
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from eventspype._internal import observed as _observed
from eventspype.delivery import current_delivery
from eventspype.hooks import REGISTRY as _HOOKS
from eventspype.hooks import DeliveryInfo

if TYPE_CHECKING:
    from eventspype.event import NormalizedTag
    from eventspype.sub.asynchronous import AsyncEventSubscriber
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["call", "call_async", "handing_context"]


def handing_context() -> contextvars.Context | None:
    """The context a coroutine subscriber's event is queued in, for the hooks
    around its later run (a span's parent); ``None`` with no hook installed."""
    return contextvars.copy_context() if _HOOKS.hooks else None


def call(
    subscriber: EventSubscriber,
    event: Any,
    tag: NormalizedTag,
    caller: Any,
    channel: str,
) -> None:
    """``subscriber.call(event, tag, caller)`` (a synchronous subscriber),
    between the hooks if any; what it raises propagates."""
    hooks = _HOOKS.hooks
    if hooks:
        _observed.call(
            hooks, subscriber, event, tag, caller, channel, current_delivery()
        )
    else:
        subscriber.call(event, tag, caller)


async def call_async(
    subscriber: AsyncEventSubscriber,
    event: Any,
    tag: NormalizedTag,
    caller: Any,
    channel: str,
    context: contextvars.Context | None = None,
) -> None:
    """``await subscriber.call_async(event, tag, caller)``, the hooks (if any)
    around its handler's run; what the handler raises propagates.

    ``context`` is where the event was handed over (see
    :func:`handing_context`); by default, the caller's.
    """
    info = None
    if _HOOKS.hooks:
        info = DeliveryInfo(channel, event, tag, subscriber, caller, current_delivery())
        info.context = context if context is not None else contextvars.copy_context()
    await subscriber._call_async(event, tag, caller, info)
