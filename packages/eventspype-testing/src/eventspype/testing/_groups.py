"""The consumer-group methods of ``TestBroker(durable=True)``: moving the
emulated clock, settling, dead letters (see :mod:`.consumer_group`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventspype.event import NormalizedTag

if TYPE_CHECKING:
    from eventspype.broker.redis import DeadLetter
    from eventspype.serializers import EventSerializer
    from eventspype.testing.consumer_group import EmulatedGroup

__all__ = ["GroupMethods"]


class GroupMethods:
    """Mixed into :class:`~eventspype.testing.TestBroker`."""

    _group: EmulatedGroup | None
    _serializer: EventSerializer | None
    _classes: dict[tuple[str, str], type]

    def _raise_now(self) -> None:
        raise NotImplementedError  # TestBroker's

    def _emulation(self) -> EmulatedGroup:
        if self._group is None:
            raise RuntimeError("only a TestBroker(durable=True) has consumer groups")
        return self._group

    def _through_group(
        self, channel: str, event: Any, event_tag: NormalizedTag
    ) -> None:
        assert self._serializer is not None  # durable needs one (checked at init)
        cls = type(event)
        self._classes[(cls.__module__, cls.__qualname__)] = cls
        payload = self._serializer.serialize(event)
        self._emulation().add(channel, event_tag, cls, payload)

    def _decode(self, event_module: str, event_class: str, payload: bytes) -> Any:
        """The event of an entry (classes known because they were published)."""
        assert self._serializer is not None
        cls = self._classes.get((event_module, event_class))
        if cls is None:
            raise LookupError(f"unknown class {event_module}.{event_class}")
        return self._serializer.deserialize(payload, cls)

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward; retries and claims that fall due
        on the way run now, in this thread (``durable=True`` only)."""
        self._emulation().advance(seconds)
        self._raise_now()

    def settle(self, max_seconds: float = 86_400.0) -> None:
        """Advance the clock until every event is acknowledged or a dead
        letter (``durable=True`` only): "after all retries" in one call.

        Raises:
            RuntimeError: coroutine subscribers hold events (``drain()``
                first), or events are still pending after ``max_seconds``.
        """
        self._emulation().settle(max_seconds)
        self._raise_now()

    def pending(self) -> int:
        """Events delivered and not yet acknowledged nor dead-lettered."""
        return self._emulation().pending()

    def dead_letters(self, channel: str) -> list[DeadLetter]:
        """``channel``'s dead letters, as ``RedisStreamBroker.dead_letters()``
        returns them (``event`` holds the envelope as published)."""
        return self._emulation().dead_letters(channel)
