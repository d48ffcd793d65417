"""Subscribers built from plain callables."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from eventspype.event import NormalizedTag
from eventspype.sub.subscriber import EventSubscriber

__all__ = [
    "CompleteEventCallback",
    "FunctionalEventCallback",
    "FunctionalEventSubscriber",
    "SimpleEventCallback",
]

#: ``callback(event, tag, caller)``
CompleteEventCallback = Callable[[Any, NormalizedTag, Any], Any]
#: ``callback(event)``
SimpleEventCallback = Callable[[Any], Any]
FunctionalEventCallback = SimpleEventCallback | CompleteEventCallback


class FunctionalEventSubscriber(EventSubscriber):
    """Wraps a function as a subscriber.

    With ``with_event_info=True`` (the default) the callback is called as
    ``callback(event, tag, caller)``; with ``False`` as ``callback(event)``.

    Remember that publishers hold subscribers weakly: keep this object (not just
    the function) alive for as long as it should receive events.

    Raises:
        TypeError: ``callback`` is not callable, or its signature (when it can
            be inspected) cannot take the arguments ``with_event_info`` says it
            will get: a one-argument ``lambda event: ...`` needs
            ``with_event_info=False``. Without this check the mistake would
            only show as a logged error at every publish.
    """

    def __init__(
        self, callback: FunctionalEventCallback, with_event_info: bool = True
    ) -> None:
        _check_callback(callback, with_event_info)
        super().__init__()
        self._callback: Callable[..., Any] = callback
        self._with_event_info = with_event_info

    @property
    def callback(self) -> Callable[..., Any]:
        """The wrapped function."""
        return self._callback

    def call(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> None:
        if self._with_event_info:
            self._callback(arg, current_event_tag, current_event_caller)
        else:
            self._callback(arg)


def _check_callback(callback: Any, with_event_info: bool) -> None:
    """Raise ``TypeError`` now for a callback that would fail at every publish."""
    if not callable(callback):
        raise TypeError(
            "FunctionalEventSubscriber needs a callable, got "
            f"{type(callback).__name__}: {callback!r}"
        )
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):
        return  # some builtins have no signature: trust the caller
    if _accepts(signature, 3 if with_event_info else 1):
        return
    called_as = "(event, tag, caller)" if with_event_info else "(event)"
    if _accepts(signature, 1 if with_event_info else 3):
        hint = f"pass with_event_info={not with_event_info}"
    else:
        hint = "it must accept (event) or (event, tag, caller)"
    raise TypeError(
        f"FunctionalEventSubscriber: {callback!r} with signature {signature} "
        f"cannot be called as callback{called_as}, which is how "
        f"with_event_info={with_event_info} calls it: {hint}"
    )


def _accepts(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True
