"""The :class:`~eventspype.SubscriberLostWarning` every publisher and broker gives.

Core's subscriber lists and the Redis brokers' fan-out hold subscribers weakly;
each warns, with the same words, when one is garbage-collected while still
subscribed and before it received any event (see the warning's docstring).
"""

from __future__ import annotations

import sys
import warnings

from eventspype.sub.subscriber import SubscriberLostWarning

__all__ = ["lost_subscriber_message", "warn_lost_subscriber"]


def lost_subscriber_message(subscriber: object, watch: str) -> str:
    """The warning's text for ``subscriber``, subscribed to ``watch``.

    Made when the subscriber is added: by the time it is collected, only its
    weak reference is left.
    """
    return (
        f"A {type(subscriber).__name__} subscribed to {watch} was "
        "garbage-collected before it received any event. Publishers and brokers "
        "hold subscribers weakly: keep a reference to it (for example as an "
        "attribute of the object that uses it) for as long as it should "
        "receive events."
    )


def warn_lost_subscriber(message: str) -> None:
    """Warn with ``message``; call it from the subscriber's weakref callback.

    The warning points at the line that dropped the last reference (the
    frame the callback runs on top of). At interpreter shutdown everything is
    collected: nothing is reported then.
    """
    if not sys.is_finalizing():
        # 1: here, 2: the weakref callback, 3: the line that dropped it.
        warnings.warn(message, SubscriberLostWarning, stacklevel=3)
