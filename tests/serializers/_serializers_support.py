"""Event classes, strategies and an exact-equality check for the serializer tests.

Event classes live at module level: msgspec resolves annotations through the
defining module, as it would for any user's events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import sys
import uuid
from decimal import Decimal
from typing import Any, NamedTuple, Optional, Union

from hypothesis import strategies as st

from eventspype.serializers import JsonEventSerializer, MsgpackEventSerializer

SERIALIZERS = [JsonEventSerializer, MsgpackEventSerializer]
SERIALIZER_IDS = ["json", "msgpack"]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


if sys.version_info >= (3, 11):

    class Level(enum.StrEnum):
        DEBUG = "debug"
        ERROR = "error"

else:  # StrEnum is 3.11+; a str mixin is the same thing on the wire

    class Level(str, enum.Enum):
        DEBUG = "debug"
        ERROR = "error"


@dataclasses.dataclass
class OrderPlacedEvent:
    """The event of the documentation."""

    order_id: int
    amount: float


@dataclasses.dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str = "EUR"


@dataclasses.dataclass(slots=True)
class LineItem:
    sku: str
    quantity: int
    price: Money
    tags: list[str] = dataclasses.field(default_factory=list)


class Point(NamedTuple):
    x: int
    y: int = 0


class Segment(NamedTuple):
    """A NamedTuple event holding a nested NamedTuple and a dataclass."""

    start: Point
    end: Point
    label: str | None = None
    cost: Money | None = None


@dataclasses.dataclass
class Shipment:
    """A nested event: list of dataclasses, datetime, UUID, Enum, Decimal."""

    shipment_id: uuid.UUID
    shipped_at: dt.datetime
    color: Color
    total: Decimal
    items: list[LineItem]
    by_sku: dict[str, LineItem] = dataclasses.field(default_factory=dict)
    route: tuple[Point, ...] = ()


@dataclasses.dataclass
class Everything:
    """One field of every scalar and container type the serializers promise."""

    naive: dt.datetime
    aware: dt.datetime
    day: dt.date
    clock: dt.time
    aware_clock: dt.time
    span: dt.timedelta
    ident: uuid.UUID
    price: Decimal
    color: Color
    priority: Priority
    level: Level
    blob: bytes
    pair: tuple[int, str]
    floats: tuple[float, ...]
    numbers: set[int]
    names: frozenset[str]
    # The typing spellings are part of what is tested (they are distinct
    # objects from `X | Y` at runtime); the other fields use `X | Y`.
    maybe: Optional[int]  # noqa: UP045
    either: Union[int, str]  # noqa: UP007
    money_or_none: Money | None
    point: Point
    by_id: dict[int, dt.date]
    by_level: dict[Level, list[Decimal]]
    flag: bool = False
    nothing: None = None


@dataclasses.dataclass
class Tree:
    """A recursive event."""

    name: str
    children: list[Tree] = dataclasses.field(default_factory=list)


class Stamp:
    """An object with the to_dict()/from_dict() protocol (not a dataclass)."""

    def __init__(self, at: dt.datetime, note: str) -> None:
        self.at = at
        self.note = note

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stamp:
        return cls(dt.datetime.fromisoformat(data["at"]), data["note"])

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Stamp)
            and (self.at, self.note) == (other.at, other.note)
            and self.at.utcoffset() == other.at.utcoffset()
        )

    __hash__ = None  # type: ignore[assignment]


@dataclasses.dataclass
class Stamped:
    """A dataclass holding to_dict()/from_dict() objects."""

    first: Stamp
    others: list[Stamp]


# --- exact comparison -----------------------------------------------------------


def assert_exact(expected: Any, actual: Any, path: str = "$") -> None:
    """Fail unless ``actual`` equals ``expected`` with every value's type too.

    Stricter than ``==``: an IntEnum is not its int, a tuple is not a list, a
    nested dataclass is not a dict, an aware datetime keeps its UTC offset and
    a Decimal its exponent.
    """
    assert type(actual) is type(expected), (
        f"{path}: {type(expected).__name__} expected, got {type(actual).__name__}"
    )
    if isinstance(expected, (dt.datetime, dt.time)):
        assert actual == expected, path
        assert actual.utcoffset() == expected.utcoffset(), f"{path}: offset"
    elif isinstance(expected, Decimal):
        assert actual.as_tuple() == expected.as_tuple(), f"{path}: {actual!r}"
    elif isinstance(expected, float):
        assert math.isnan(actual) if math.isnan(expected) else actual == expected
        assert math.copysign(1, actual) == math.copysign(1, expected), path
    elif dataclasses.is_dataclass(expected):
        for field in dataclasses.fields(expected):
            name = field.name
            assert_exact(
                getattr(expected, name), getattr(actual, name), f"{path}.{name}"
            )
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f"{path}: length"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            assert_exact(want, got, f"{path}[{index}]")
    elif isinstance(expected, (set, frozenset)):
        assert _typed(actual) == _typed(expected), path
    elif isinstance(expected, dict):
        assert _typed(actual) == _typed(expected), f"{path}: keys"
        for key, want in expected.items():
            assert_exact(want, actual[key], f"{path}[{key!r}]")
    elif hasattr(expected, "__attrs_attrs__"):
        for attribute in expected.__attrs_attrs__:
            name = attribute.name
            assert_exact(
                getattr(expected, name), getattr(actual, name), f"{path}.{name}"
            )
    elif hasattr(type(expected), "model_fields"):  # pydantic
        for name in type(expected).model_fields:
            assert_exact(
                getattr(expected, name), getattr(actual, name), f"{path}.{name}"
            )
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def _typed(items: Any) -> set[tuple[type, Any]]:
    return {(type(item), item) for item in items}


# --- strategies -----------------------------------------------------------------

# Offsets are whole minutes: RFC 3339 (and so msgspec) has no seconds in offsets.
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
naive_datetimes = st.datetimes()
aware_datetimes = st.datetimes(timezones=offsets)
aware_times = st.times(timezones=offsets)
decimals = st.decimals(allow_nan=False)
# JSON has no NaN or infinity; MessagePack tests add them separately.
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
texts = st.text(max_size=20)
money = st.builds(Money, decimals, texts)
points = st.builds(Point, ints, ints)
line_items = st.builds(LineItem, texts, ints, money, st.lists(texts, max_size=3))

everything = st.builds(
    Everything,
    naive=naive_datetimes,
    aware=aware_datetimes,
    day=st.dates(),
    clock=st.times(),
    aware_clock=aware_times,
    span=st.timedeltas(),
    ident=st.uuids(),
    price=decimals,
    color=st.sampled_from(Color),
    priority=st.sampled_from(Priority),
    level=st.sampled_from(Level),
    blob=st.binary(max_size=32),
    pair=st.tuples(ints, texts),
    floats=st.lists(finite_floats, max_size=4).map(tuple),
    numbers=st.sets(ints, max_size=4),
    names=st.frozensets(texts, max_size=4),
    maybe=st.none() | ints,
    either=ints | texts,
    money_or_none=st.none() | money,
    point=points,
    by_id=st.dictionaries(ints, st.dates(), max_size=3),
    by_level=st.dictionaries(
        st.sampled_from(Level), st.lists(decimals, max_size=3), max_size=2
    ),
    flag=st.booleans(),
)

shipments = st.builds(
    Shipment,
    shipment_id=st.uuids(),
    shipped_at=naive_datetimes | aware_datetimes,
    color=st.sampled_from(Color),
    total=decimals,
    items=st.lists(line_items, max_size=3),
    by_sku=st.dictionaries(texts, line_items, max_size=2),
    route=st.lists(points, max_size=3).map(tuple),
)

segments = st.builds(
    Segment,
    start=points,
    end=points,
    label=st.none() | texts,
    cost=st.none() | money,
)

trees = st.recursive(
    st.builds(Tree, texts),
    lambda children: st.builds(Tree, texts, st.lists(children, max_size=3)),
    max_leaves=10,
)

stamped = st.builds(
    Stamped,
    first=st.builds(Stamp, aware_datetimes, texts),
    others=st.lists(
        st.builds(Stamp, naive_datetimes | aware_datetimes, texts), max_size=3
    ),
)

EVENT_STRATEGIES = {
    "everything": everything,
    "shipment": shipments,
    "segment": segments,
    "tree": trees,
    "stamped": stamped,
}
EVENT_CLASSES = [Everything, Shipment, Segment, Tree, Stamped, OrderPlacedEvent, Point]
