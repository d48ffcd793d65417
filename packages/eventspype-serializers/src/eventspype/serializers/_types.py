"""What an event class needs from the engine, read once from its annotations.

msgspec already knows how to walk a type (``msgspec.inspect.type_info``); this
module only asks that tree the questions msgspec cannot answer for us: which
user types need the hooks, whether those are usable, and whether a
MessagePack encoder would lose a datetime's UTC offset.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import msgspec.inspect as mi

__all__ = [
    "TypePlan",
    "UnsupportedTypeError",
    "has_dict_protocol",
    "is_pydantic_model",
    "named_tuple_shadow",
    "plan_for",
    "type_name",
]


class UnsupportedTypeError(TypeError):
    """An event class (or a type inside it) that cannot round-trip.

    ``field`` is the event class's field whose annotation is at fault, when
    it could be found.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.field = field


@dataclasses.dataclass(frozen=True)
class TypePlan:
    """The facts about one event class that decide how its codec is built."""

    #: The event class is a NamedTuple: written as an object, as 1.4.2 does.
    named_tuple: bool
    #: Somewhere inside is a datetime that may be aware, or a ``to_dict()``
    #: object whose output is unknown: MessagePack must write datetimes as
    #: RFC 3339 text, since its timestamp extension keeps only the UTC instant.
    datetimes_as_text: bool


def type_name(tp: Any) -> str:
    """``module.QualName`` for classes, ``repr`` for anything else (``list[int]``)."""
    if isinstance(tp, type):
        if tp.__module__ == "builtins":
            return tp.__qualname__
        return f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp)


def is_pydantic_model(tp: Any) -> bool:
    """Whether ``tp`` is a pydantic v2 model class, without importing pydantic.

    A pydantic model class can only exist once pydantic has been imported, so
    looking in ``sys.modules`` keeps pydantic an optional dependency.
    """
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(tp, type):
        return False
    return issubclass(tp, pydantic.BaseModel)


def has_dict_protocol(tp: Any) -> bool:
    """Whether ``tp`` implements the ``to_dict()`` / ``from_dict()`` pair."""
    return callable(getattr(tp, "to_dict", None)) and callable(
        getattr(tp, "from_dict", None)
    )


def plan_for(event_class: Any) -> TypePlan:
    """Inspect ``event_class`` and everything reachable from its annotations.

    Raises :class:`UnsupportedTypeError` with a reason naming the offending
    field or type when msgspec rejects an annotation (for example a union of
    two dataclasses, which cannot be told apart on the wire without a tag) or
    when a user type is neither native to msgspec nor usable through the hooks.
    """
    info = _type_info(event_class)
    datetimes_as_text = False
    for node in _walk(info):
        if isinstance(node, mi.DateTimeType) and node.tz is not False:
            datetimes_as_text = True
        elif isinstance(node, mi.CustomType):
            if is_pydantic_model(node.cls):
                continue
            if not has_dict_protocol(node.cls):
                raise UnsupportedTypeError(
                    f"{type_name(node.cls)} is not supported: make it a dataclass, "
                    "attrs class, NamedTuple or pydantic model, or give it "
                    "to_dict() and a from_dict() classmethod",
                    _field_reaching(event_class, node.cls),
                )
            datetimes_as_text = True
    return TypePlan(
        named_tuple=isinstance(info, mi.NamedTupleType),
        datetimes_as_text=datetimes_as_text,
    )


def named_tuple_shadow(cls: Any) -> type[msgspec.Struct]:
    """A Struct with the fields of NamedTuple ``cls``, to decode it from an object.

    msgspec reads NamedTuples from arrays only; eventspype 1.4.2 writes a
    NamedTuple event as an object (``_asdict()``). Decoding into this Struct
    validates every field with the NamedTuple's own annotations and defaults.
    """
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError) as exc:
        raise UnsupportedTypeError(str(exc)) from exc
    defaults: dict[str, Any] = cls._field_defaults
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name in cls._fields:
        annotation = hints.get(name, Any)
        if name in defaults:
            # A factory returning the very default object mirrors NamedTuple
            # semantics and sidesteps msgspec's ban on mutable default values.
            factory = _returning(defaults[name])
            fields.append((name, annotation, msgspec.field(default_factory=factory)))
        else:
            fields.append((name, annotation))
    return msgspec.defstruct(cls.__name__, fields, module=cls.__module__)


def _returning(value: Any) -> Callable[[], Any]:
    return lambda: value


def _type_info(event_class: Any) -> mi.Type:
    try:
        return mi.type_info(event_class)
    except (TypeError, NameError, ValueError) as exc:
        raise UnsupportedTypeError(str(exc), _first_bad_field(event_class)) from exc


def _first_bad_field(event_class: Any) -> str | None:
    # msgspec's message names the offending annotation but not where it is;
    # retrying field by field finds the name a user can act on.
    for name, annotation in _field_annotations(event_class):
        try:
            mi.type_info(annotation)
        except Exception:
            return name
    return None


def _field_reaching(event_class: Any, cls: type) -> str | None:
    """The first field of ``event_class`` whose annotation involves ``cls``."""
    for name, annotation in _field_annotations(event_class):
        try:
            info = mi.type_info(annotation)
        except Exception:
            continue
        if any(getattr(node, "cls", None) is cls for node in _walk(info)):
            return name
    return None


def _field_annotations(event_class: Any) -> list[tuple[str, Any]]:
    try:
        hints = typing.get_type_hints(event_class, include_extras=True)
    except Exception:  # not a class with annotations, or unresolvable ones
        return []
    return [
        (name, annotation)
        for name, annotation in hints.items()
        if typing.get_origin(annotation) is not typing.ClassVar
    ]


def _walk(root: mi.Type) -> Iterator[mi.Type]:
    """Every node of a type tree once (recursive event types are cyclic)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(_children(node))


def _children(node: mi.Type) -> Iterator[mi.Type]:
    # Attribute names shared by msgspec.inspect's node classes; reading them
    # generically keeps this working as msgspec adds container kinds.
    for attr in ("type", "item_type", "key_type", "value_type"):
        child = getattr(node, attr, None)
        if isinstance(child, mi.Type):
            yield child
    for attr in ("item_types", "types"):
        yield from getattr(node, attr, ())
    for field in getattr(node, "fields", ()):
        yield field.type
