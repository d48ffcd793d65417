"""Subscribers built from plain callables."""

from __future__ import annotations

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
    """

    def __init__(
        self, callback: FunctionalEventCallback, with_event_info: bool = True
    ) -> None:
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
