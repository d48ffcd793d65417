"""Event tags and the optional :class:`Event` marker base class.

A tag names a kind of event. It may be an :class:`~enum.Enum` member, an ``int``
or a ``str``; :func:`normalize_event_tag` turns it into the canonical value that
publications compare and that brokers use as the channel name.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "Event",
    "EventTag",
    "NormalizedTag",
    "TagEnum",
    "format_event_tag",
    "normalize_event_tag",
]

#: What a user may pass as a tag.
EventTag = Enum | int | str

#: The canonical form of a tag: ``int`` for ints, ``str`` for everything else.
NormalizedTag = int | str


class TagEnum(Enum):
    """An :class:`~enum.Enum` whose members may only have ``int`` or ``str`` values.

    A plain ``Enum`` accepts any value; a ``TagEnum`` rejects anything else when
    the class is created, so a bad tag fails at import time instead of at the
    first publish::

        class OrderEvents(TagEnum):
            PLACED = 1
            SHIPPED = "shipped"
    """

    def __new__(cls, value: int | str) -> TagEnum:
        # bool is an int, and 1.4.2 accepts it: the member's tag is still its
        # name ("Flags.ON"), so True does not collide with the int tag 1.
        if not isinstance(value, (int, str)):
            raise TypeError(
                f"TagEnum member value must be int or str, got "
                f"{type(value).__name__}: {value!r} (in {cls.__name__})"
            )
        member = object.__new__(cls)
        member._value_ = value
        return member


def normalize_event_tag(tag: EventTag) -> NormalizedTag:
    """Return the canonical form of ``tag``.

    - Enum members by identity: ``"ClassName.MEMBER"``, so two enums that
      share a value are still different tags.
    - Strings case-insensitively: ``"order_placed"`` becomes ``"ORDER_PLACED"``.
    - Integers as they are.

    Raises:
        ValueError: for anything else (``None``, floats, bools, objects).
    """
    if isinstance(tag, Enum):
        return f"{type(tag).__name__}.{tag.name}"
    if isinstance(tag, str):
        return tag.upper()
    if isinstance(tag, int) and not isinstance(tag, bool):
        return tag
    raise ValueError(
        f"Invalid event tag {tag!r} of type {type(tag).__name__}: "
        "a tag must be an Enum member, an int or a str"
    )


def format_event_tag(tag: EventTag) -> str:
    """Return ``tag`` as people read it: ``MyEnum.MEMBER``, ``"a_string"`` or ``42``."""
    if isinstance(tag, Enum):
        return f"{type(tag).__name__}.{tag.name}"
    if isinstance(tag, str):
        return f'"{tag}"'
    return str(tag)


class Event:
    """Optional marker base class for events.

    Nothing requires it: any class (a dataclass, a NamedTuple, an attrs class,
    a plain class) can be an event. Subclassing it only documents intent.
    """

    __slots__ = ()
