"""A subscriber that logs every event it receives."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Protocol, runtime_checkable

from eventspype.event import NormalizedTag
from eventspype.sub.subscriber import EventSubscriber

__all__ = ["HasAsDict", "ReportingEventSubscriber"]


@runtime_checkable
class HasAsDict(Protocol):
    """Anything with a NamedTuple-style ``_asdict()``."""

    def _asdict(self) -> dict[str, Any]: ...


class ReportingEventSubscriber(EventSubscriber):
    """Logs each event at INFO on the ``eventspype.sub.reporter`` logger.

    The record's message shows the event's fields plus ``event_name``,
    ``event_source`` and ``event_tag``; the same dict is attached as
    ``record.event_data`` for structured handlers.
    """

    _logger: logging.Logger | None = None

    def __init__(self, event_source: str | None = None) -> None:
        super().__init__()
        self.event_source = event_source

    @classmethod
    def logger(cls) -> logging.Logger:
        """The logger events are written to."""
        if cls._logger is None:
            cls._logger = logging.getLogger(__name__)
        return cls._logger

    def call(
        self,
        event_object: Any,
        current_event_tag: NormalizedTag,
        current_event_caller: Any,
    ) -> None:
        try:
            if dataclasses.is_dataclass(event_object) and not isinstance(
                event_object, type
            ):
                data = dataclasses.asdict(event_object)
            elif isinstance(event_object, HasAsDict):
                data = dict(event_object._asdict())
            else:
                data = {"value": str(event_object)}
            data.update(
                event_name=type(event_object).__name__,
                event_source=self.event_source,
                event_tag=current_event_tag,
            )
            self.logger().info("Event received: %s", data, extra={"event_data": data})
        except Exception:
            self.logger().exception(
                "Error logging event: could not report a %s",
                type(event_object).__name__,
                extra={"event_source": self.event_source},
            )
