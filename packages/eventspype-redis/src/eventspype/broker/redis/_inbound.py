"""Received messages become events here, or are refused with a reason."""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any

from eventspype.broker.redis import _envelope
from eventspype.broker.redis._envelope import EnvelopeError
from eventspype.broker.redis._process import track
from eventspype.event import NormalizedTag
from eventspype.serializers import EventSerializer

__all__ = ["ClassRegistry", "Inbound"]


class Inbound:
    """Validates a message, resolves its class, deserializes its payload.

    Used by the listener thread only (the registry it reads is thread-safe).
    """

    def __init__(
        self,
        serializer: EventSerializer,
        classes: ClassRegistry,
        *,
        max_bytes: int,
        max_depth: int,
    ) -> None:
        if max_bytes < 1 or max_depth < 1:
            raise ValueError(
                "max_message_bytes and max_nesting_depth must be at least 1, "
                f"got {max_bytes} and {max_depth}"
            )
        self._serializer = serializer
        self._classes = classes
        self._max_bytes = max_bytes
        self._max_depth = max_depth

    def decode(self, data: bytes | str) -> tuple[Any, NormalizedTag]:
        """The event a message carries, and its tag.

        Raises:
            EnvelopeError: the message must be dropped; ``reason`` says why.
        """
        if isinstance(data, str):  # never from the listener; be lenient
            data = data.encode("utf-8")
        message = _envelope.decode(
            data, max_bytes=self._max_bytes, max_depth=self._max_depth
        )
        event_class = self._classes.resolve(message.event_module, message.event_class)
        try:
            event = self._serializer.deserialize(message.payload, event_class)
        except Exception as error:  # any serializer, any failure: a bad payload
            raise EnvelopeError(
                "invalid_payload",
                f"payload is not a valid {event_class.__qualname__}: {error}",
            ) from None
        return event, message.event_tag


class ClassRegistry:
    """The allowlist of event classes, keyed by ``"<module>.<qualname>"``.

    A message names its event class by module and qualified name. Only
    registered classes are resolved; with ``allow_unregistered=True`` an
    unknown name is imported, which lets whoever can publish on the Redis
    server make this process import any module: keep it off on shared servers.
    """

    def __init__(self, allow_unregistered: bool) -> None:
        self._allow_unregistered = allow_unregistered
        self._lock = threading.Lock()
        self._classes: dict[str, type] = {}
        track(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread may have held the lock at the fork.
        self._lock = threading.Lock()

    def register(self, event_class: type) -> None:
        """Allow ``event_class`` in received messages.

        Raises:
            TypeError: ``event_class`` is not a class.
        """
        if not isinstance(event_class, type):
            raise TypeError(
                f"register_event_class() needs a class, got {event_class!r}"
            )
        key = f"{event_class.__module__}.{event_class.__qualname__}"
        with self._lock:
            # Copy-on-write: the listener reads the dict without the lock.
            self._classes = {**self._classes, key: event_class}

    def resolve(self, module: str, qualname: str) -> type:
        """The class a message names.

        Raises:
            EnvelopeError: (reason ``unregistered_class``) the class is not
                registered and unregistered classes are not allowed, or it
                cannot be found.
        """
        event_class = self._classes.get(f"{module}.{qualname}")
        if event_class is not None:
            return event_class
        if not self._allow_unregistered:
            raise EnvelopeError(
                "unregistered_class",
                f"event class {module}.{qualname} is not registered; call "
                "broker.register_event_class() to accept it",
            )
        return _import_class(module, qualname)


def _import_class(module_name: str, qualname: str) -> type:
    if "<" in qualname:  # "<locals>": defined in a function, not importable
        raise EnvelopeError(
            "unregistered_class", f"{module_name}.{qualname} is not importable"
        )
    try:
        obj: object = sys.modules.get(module_name) or importlib.import_module(
            module_name
        )
        for attribute in qualname.split("."):
            obj = getattr(obj, attribute)
    except Exception as error:
        raise EnvelopeError(
            "unregistered_class",
            f"cannot import {module_name}.{qualname}: {error!r}",
        ) from None
    if not isinstance(obj, type):
        raise EnvelopeError(
            "unregistered_class", f"{module_name}.{qualname} is not a class"
        )
    return obj
