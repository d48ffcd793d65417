"""A received message becomes an event here, or is refused with a reason.

No I/O (the sans-I/O pattern of h11): every Redis broker feeds
:meth:`Inbound.decode` the channel a message arrived on and its bytes, and
gets the event and its tag back, or an :class:`~_wire.envelope.EnvelopeError`
whose ``reason`` is the drop reason to count. The checks, in order, each in
time linear in the message's size:

1. size (``oversized``: nothing is parsed);
2. JSON syntax and envelope shape, with nesting bounded by msgspec
   (``invalid_json``, ``invalid_envelope``, ``too_deep``);
3. the tag is the tag of the channel it arrived on, ``str(tag) == channel``
   (``tag_mismatch``);
4. the class is allowed by the :class:`~_wire.registry.ClassRegistry`
   (``unregistered_class``);
5. the payload decodes into that class (``invalid_payload``, or ``too_deep``
   when the serializer hit the recursion limit).

The last check, that each subscriber's publication accepts the event
(``tag_mismatch``, ``class_mismatch``), is the fan-out's (see ``_wire.fanout``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from eventspype.broker.redis._wire import envelope as _envelope
from eventspype.broker.redis._wire.envelope import EnvelopeError
from eventspype.broker.redis._wire.registry import ClassRegistry
from eventspype.event import NormalizedTag
from eventspype.serializers import EventSerializer

__all__ = ["Inbound", "Received"]


class Received(NamedTuple):
    """An accepted message: the event, its tag and the headers it carried."""

    event: Any
    event_tag: NormalizedTag
    #: Headers that travelled with it (empty: none, or dropped).
    headers: Mapping[str, str]
    #: Why its headers were dropped (the event is still delivered), or ``None``.
    headers_problem: str | None


class Inbound:
    """Validates a message, resolves its class, deserializes its payload.

    Stateless apart from its configuration: safe from any thread.

    Raises:
        ValueError: ``max_bytes`` is below 1.
    """

    __slots__ = ("_classes", "_max_bytes", "_serializer")

    def __init__(
        self, serializer: EventSerializer, classes: ClassRegistry, *, max_bytes: int
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_message_bytes must be at least 1, got {max_bytes}")
        self._serializer = serializer
        self._classes = classes
        self._max_bytes = max_bytes

    def decode(self, channel: str, data: bytes) -> Received:
        """The event a message on ``channel`` (local name, no prefix) carries.

        Raises:
            EnvelopeError: the message must be dropped; ``reason`` says why.
        """
        message = _envelope.decode(data, max_bytes=self._max_bytes)
        tag = message.event_tag
        if (tag if tag.__class__ is str else str(tag)) != channel:
            raise EnvelopeError(
                "tag_mismatch",
                f"event_tag {tag!r} is not the tag of channel {channel!r}",
            )
        event_class = self._classes.resolve(message.event_module, message.event_class)
        try:
            event = self._serializer.deserialize(message.payload, event_class)
        except BaseException as error:
            too_deep = isinstance(error, RecursionError) or isinstance(
                error.__cause__, RecursionError
            )
            raise EnvelopeError(
                "too_deep" if too_deep else "invalid_payload",
                f"payload is not a valid {event_class.__qualname__}: {error}",
            ) from None
        return Received(event, tag, message.headers, message.headers_problem)
