"""Conversion of arbitrary event objects into JSON-compatible values.

Used by :class:`~eventspype.sub.queue.QueueEventSubscriber` (events handed to
consumers as plain dicts) and re-exported as ``eventspype.make_json_safe``.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

__all__ = ["make_json_safe"]


def make_json_safe(obj: Any, _seen: set[int] | None = None) -> Any:
    """Return a JSON-compatible copy of ``obj``.

    Dataclasses and NamedTuples become dicts, enums their values, sequences and
    sets lists, dict keys strings; anything else falls back to ``str(obj)``.
    The conversion is lossy by design (it is for display and queues, not for
    round trips: use a serializer for those). Circular references are replaced
    by a ``"<circular ref TypeName>"`` marker instead of recursing forever.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if _seen is None:
        _seen = set()
    key = id(obj)
    if key in _seen:
        return f"<circular ref {type(obj).__name__}>"
    _seen.add(key)
    try:
        if isinstance(obj, Enum):
            return make_json_safe(obj.value, _seen)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {
                field.name: make_json_safe(getattr(obj, field.name), _seen)
                for field in dataclasses.fields(obj)
            }
        if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
            return make_json_safe(obj._asdict(), _seen)
        if isinstance(obj, dict):
            return {str(k): make_json_safe(v, _seen) for k, v in obj.items()}
        if isinstance(obj, (list, tuple, set, frozenset)):
            return [make_json_safe(item, _seen) for item in obj]
        return str(obj)
    finally:
        _seen.discard(key)
