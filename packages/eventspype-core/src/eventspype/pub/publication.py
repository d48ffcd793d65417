"""Publications: the declaration of one kind of event (a tag and a class)."""

from __future__ import annotations

from typing import Any

from eventspype.event import EventTag, NormalizedTag, normalize_event_tag

__all__ = ["EventPublication"]


class EventPublication:
    """Declares an event: its tag and the class its events must be instances of.

    ``event_tag`` holds the normalized tag (see
    :func:`~eventspype.event.normalize_event_tag`), ``original_tag`` the tag as
    given. Publications compare by identity, so two publications with the same
    tag are still different declarations.
    """

    __slots__ = ("__weakref__", "event_class", "event_tag", "original_tag")

    def __init__(self, event_tag: EventTag, event_class: Any) -> None:
        if not isinstance(event_class, type):
            raise TypeError(
                f"event_class must be a class, got {type(event_class).__name__}: "
                f"{event_class!r}"
            )
        self.original_tag: EventTag = event_tag
        self.event_class: Any = event_class
        self.event_tag: NormalizedTag = normalize_event_tag(event_tag)

    def _wrong_type_error(self, event: Any) -> ValueError:
        """The error for publishing ``event``, which is not an ``event_class``."""
        expected, got = self.event_class, type(event)
        return ValueError(
            f"Invalid event type for {self.event_tag!r}: expected "
            f"{expected.__module__}.{expected.__qualname__}, "
            f"got {got.__module__}.{got.__qualname__}"
        )

    def __repr__(self) -> str:
        return (
            f"EventPublication({self.event_tag!r}, "
            f"{self.event_class.__module__}.{self.event_class.__qualname__})"
        )
