"""The one exception the serializers raise for data or events they cannot handle."""

from __future__ import annotations

from typing import Any

__all__ = ["SerializationError"]


class SerializationError(ValueError):
    """An event could not be serialized, or bytes could not be read back as one.

    Raised for malformed input (not JSON / not MessagePack), input that does not
    match the event class (a missing field, a value of the wrong type, extra
    nesting), an event holding a value of a type the serializer cannot
    represent, and an event class whose annotations cannot be supported. The
    message names the event class and, when the problem is one field, its
    path; the original error from the engine is chained as ``__cause__``.

    It subclasses :class:`ValueError`, so code written against eventspype 1.4.2
    that caught ``ValueError`` keeps working.

    Attributes:
        event_class: The class being serialized or deserialized, when known.
        path: Where in the document the problem is, as a JSONPath-like string
            such as ``"$.items[2].price"`` (``"$"`` is the event itself); ``None``
            when the problem is not about one place (e.g. malformed input).

    .. versionadded:: 1.0.0
    """

    def __init__(
        self,
        message: str,
        *,
        event_class: Any = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.event_class = event_class
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the keyword-only attributes across pickling (multiprocessing,
        # logging handlers); the default reduction passes only ``args``.
        return (
            _rebuild,
            (type(self), str(self), self.event_class, self.path),
        )


def _rebuild(
    cls: type[SerializationError],
    message: str,
    event_class: Any,
    path: str | None,
) -> SerializationError:
    return cls(message, event_class=event_class, path=path)
