"""The contract every event serializer fulfils (``RedisBroker`` depends only on it)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["EventSerializer"]


class EventSerializer(ABC):
    """Turns events into bytes and back, for brokers that cross a process boundary.

    Subclass it to plug your own format into a broker: both methods are
    abstract, so a subclass that misses one cannot be instantiated::

        class MySerializer(EventSerializer):
            def serialize(self, event) -> bytes: ...
            def deserialize(self, data: bytes, event_class: type): ...

    Implementations should be safe to share between threads (a broker calls
    them from the publisher's thread and from its listener thread) and should
    raise :class:`~eventspype.serializers.SerializationError` for data they
    cannot read, so that a broker can drop a bad message without stopping.
    """

    @abstractmethod
    def serialize(self, event: Any) -> bytes:
        """Return ``event`` encoded as bytes."""

    @abstractmethod
    def deserialize(self, data: bytes, event_class: type) -> Any:
        """Return the event of type ``event_class`` that ``data`` encodes.

        ``event_class`` comes from the caller (a broker's registry), never from
        ``data``: the bytes choose nothing about what gets constructed.
        """
