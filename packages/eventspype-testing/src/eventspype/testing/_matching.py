"""What an assertion of :class:`~eventspype.testing.EventRecorder` looks for,
and the failure message that shows what was published instead."""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["EventMatcher", "fields_of", "report"]

#: How many recorded events a failure message lists (the most recent ones).
MAX_LISTED = 20

_repr = reprlib.Repr()
_repr.maxstring = 120
_repr.maxother = 120
_repr.maxlevel = 4


def fields_of(event: Any) -> Mapping[str, Any] | None:
    """The fields of ``event`` by name, or ``None`` when it has no notion of
    fields (dataclasses, NamedTuples, attrs classes, pydantic models and plain
    objects with a ``__dict__`` have one)."""
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    as_dict = getattr(event, "_asdict", None)  # NamedTuple
    if isinstance(event, tuple) and callable(as_dict):
        result = as_dict()
        return result if isinstance(result, Mapping) else None
    attrs_fields = getattr(type(event), "__attrs_attrs__", None)
    if attrs_fields is not None:
        return {a.name: getattr(event, a.name) for a in attrs_fields}
    model_fields = getattr(type(event), "model_fields", None)  # pydantic v2
    if isinstance(model_fields, Mapping):
        return {name: getattr(event, name) for name in model_fields}
    attributes = getattr(event, "__dict__", None)
    if isinstance(attributes, dict):
        return {k: v for k, v in attributes.items() if not k.startswith("_")}
    return None


class EventMatcher:
    """One assertion's expectation, built from the arguments every
    ``assert_*`` method and ``wait_for`` take.

    - ``expected`` an instance: an event equal to it.
    - ``expected`` a class: any instance of it (subclasses included).
    - ``where``: a predicate the event must satisfy.
    - ``fields``: attributes the event must have, with these values (a
      partial match: other fields may be anything).
    - nothing at all: any event.
    """

    def __init__(
        self,
        expected: Any = None,
        where: Callable[[Any], object] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        if where is not None and not callable(where):
            raise TypeError(f"where= must be a callable, got {where!r}")
        self.expected = expected
        self.where = where
        self.fields = dict(fields or {})

    @property
    def event_class(self) -> type | None:
        """The class the events must be instances of, if the matcher says."""
        if isinstance(self.expected, type):
            return self.expected
        if self.expected is not None:
            return type(self.expected)
        return None

    def matches(self, event: Any) -> bool:
        expected = self.expected
        if isinstance(expected, type):
            if not isinstance(event, expected):
                return False
        elif expected is not None and not _equal(event, expected):
            return False
        for name, value in self.fields.items():
            if not hasattr(event, name) or not _equal(getattr(event, name), value):
                return False
        return self.where is None or bool(self.where(event))

    def describe(self) -> str:
        """The expectation in words, for a failure message."""
        parts: list[str] = []
        if isinstance(self.expected, type):
            parts.append(f"an instance of {self.expected.__qualname__}")
        elif self.expected is not None:
            parts.append(_repr.repr(self.expected))
        else:
            parts.append("an event")
        if self.fields:
            listed = ", ".join(f"{k}={_repr.repr(v)}" for k, v in self.fields.items())
            parts.append(f"with {listed}")
        if self.where is not None:
            parts.append(
                f"satisfying {getattr(self.where, '__qualname__', self.where)}"
            )
        return " ".join(parts)

    def difference(self, event: Any) -> list[str]:
        """Why ``event`` does not match, one line per differing field; empty
        when the event is of another class (a field diff would be noise)."""
        wanted: dict[str, Any] = {}
        if self.expected is not None and not isinstance(self.expected, type):
            if type(event) is not type(self.expected):
                return []
            wanted.update(fields_of(self.expected) or {})
            if not wanted:
                return [f"expected {_repr.repr(self.expected)}"]
        elif self.event_class is not None and not isinstance(event, self.event_class):
            return []
        wanted.update(self.fields)
        lines = []
        for name, value in wanted.items():
            if not hasattr(event, name):
                lines.append(f"{name}: missing (expected {_repr.repr(value)})")
                continue
            got = getattr(event, name)
            if not _equal(got, value):
                lines.append(
                    f"{name}: expected {_repr.repr(value)}, got {_repr.repr(got)}"
                )
        if not lines and self.where is not None and not self.where(event):
            lines.append(f"{getattr(self.where, '__qualname__', 'where')} is false")
        return lines


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an __eq__ that raises (numpy arrays...) is "not equal"
        return False


def report(
    headline: str, matcher: EventMatcher, events: Sequence[Any], where: str
) -> str:
    """A failure message: ``headline``, then the recorded events (the most
    recent :data:`MAX_LISTED`), each with its difference from the expectation."""
    lines = [f"{headline}: {matcher.describe()}"]
    if not events:
        lines.append(f"nothing was published {where}")
        return "\n".join(lines)
    count = len(events)
    lines.append(f"{count} event{'s' if count != 1 else ''} published {where}:")
    first = max(0, count - MAX_LISTED)
    if first:
        lines.append(f"  ... {first} earlier ones not shown")
    for number, event in enumerate(events[first:], start=first + 1):
        mark = "*" if matcher.matches(event) else " "
        lines.append(f" {mark}{number:>3}. {_repr.repr(event)}")
        lines.extend(f"         {line}" for line in matcher.difference(event))
    return "\n".join(lines)
