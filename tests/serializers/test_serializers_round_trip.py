"""Exact round trips, one kind of event or field at a time, in both formats."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from _serializers_support import (
    SERIALIZER_IDS,
    SERIALIZERS,
    Color,
    Everything,
    Level,
    LineItem,
    Money,
    Point,
    Priority,
    Segment,
    Shipment,
    Stamp,
    Stamped,
    Tree,
    assert_exact,
)

from eventspype.serializers import (
    EventSerializer,
    JsonEventSerializer,
    MsgpackEventSerializer,
    _engine,
)

PLUS_0530 = dt.timezone(dt.timedelta(hours=5, minutes=30))


@pytest.fixture(params=SERIALIZERS, ids=SERIALIZER_IDS)
def serializer(request: pytest.FixtureRequest) -> EventSerializer:
    return request.param()  # type: ignore[no-any-return]


def round_trip(serializer: EventSerializer, event: Any) -> Any:
    copy = serializer.deserialize(serializer.serialize(event), type(event))
    assert_exact(event, copy)
    return copy


def everything(**changes: Any) -> Everything:
    event = Everything(
        naive=dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
        aware=dt.datetime(2024, 1, 1, 8, 30, tzinfo=PLUS_0530),
        day=dt.date(1999, 12, 31),
        clock=dt.time(12, 0, 1, 5),
        aware_clock=dt.time(7, 15, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
        span=dt.timedelta(days=-2, seconds=5, microseconds=7),
        ident=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        price=Decimal("1234.5000"),
        color=Color.GREEN,
        priority=Priority.HIGH,
        level=Level.ERROR,
        blob=bytes(range(256)),
        pair=(1, "one"),
        floats=(0.1, -0.0, 1e308),
        numbers={1, 2, 3},
        names=frozenset({"a", "b"}),
        maybe=None,
        either="text",
        money_or_none=Money(Decimal("0.01")),
        point=Point(1, 2),
        by_id={1: dt.date(2020, 1, 1), -5: dt.date(2021, 6, 30)},
        by_level={Level.DEBUG: [Decimal("1.10"), Decimal("-0")]},
        flag=True,
    )
    return dataclasses.replace(event, **changes)


# --- every field type -----------------------------------------------------------------


def test_every_field_type(serializer: EventSerializer) -> None:
    copy = round_trip(serializer, everything())
    # The types the reference got wrong, spelled out.
    assert type(copy.priority) is Priority
    assert type(copy.pair) is tuple
    assert type(copy.money_or_none) is Money
    assert type(copy.point) is Point
    assert copy.aware.utcoffset() == dt.timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    "changes",
    [
        {"maybe": 42, "money_or_none": None, "either": 7},
        {"numbers": set(), "names": frozenset(), "by_id": {}, "by_level": {}},
        {"blob": b"", "floats": ()},
        {"aware": dt.datetime(2024, 3, 31, 2, 30, tzinfo=dt.timezone.utc)},
    ],
    ids=["alternatives", "empty-containers", "empty-bytes", "utc"],
)
def test_alternative_values(
    serializer: EventSerializer, changes: dict[str, Any]
) -> None:
    round_trip(serializer, everything(**changes))


def test_zoneinfo_datetimes_keep_their_offset(serializer: EventSerializer) -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    event = everything(aware=dt.datetime(2024, 7, 14, 12, tzinfo=paris))
    copy = serializer.deserialize(serializer.serialize(event), Everything)
    # The zone name is not part of the wire format; the instant and offset are.
    assert copy.aware == event.aware
    assert copy.aware.utcoffset() == dt.timedelta(hours=2)


def test_messagepack_keeps_non_finite_floats() -> None:
    serializer = MsgpackEventSerializer()
    event = everything(floats=(float("inf"), float("-inf"), float("nan")))
    copy = serializer.deserialize(serializer.serialize(event), Everything)
    assert_exact(event.floats, copy.floats)


def test_decimals_keep_their_exponent(serializer: EventSerializer) -> None:
    for text in [
        "0",
        "-0.000",
        "1E+30",
        "3.14159265358979323846264338327950288",
        "Infinity",
    ]:
        round_trip(serializer, Money(Decimal(text)))


def test_json_integers_are_not_limited_to_64_bits() -> None:
    round_trip(JsonEventSerializer(), Point(2**80, -(2**70)))


# --- every kind of event class --------------------------------------------------------


def test_nested_dataclasses_in_lists_and_dicts(serializer: EventSerializer) -> None:
    item = LineItem("sku-1", 2, Money(Decimal("9.99"), "USD"), ["gift"])
    event = Shipment(
        shipment_id=uuid.uuid4(),
        shipped_at=dt.datetime(2024, 5, 1, 12, 30, tzinfo=PLUS_0530),
        color=Color.RED,
        total=Decimal("19.98"),
        items=[item, LineItem("sku-2", 1, Money(Decimal("0")))],
        by_sku={"sku-1": item},
        route=(Point(0, 0), Point(3, 4)),
    )
    copy = round_trip(serializer, event)
    assert type(copy.items[0]) is LineItem
    assert type(copy.by_sku["sku-1"].price) is Money


def test_frozen_slotted_and_defaulted_dataclasses(serializer: EventSerializer) -> None:
    round_trip(serializer, Money(Decimal("5")))  # frozen, default currency
    round_trip(serializer, LineItem("x", 1, Money(Decimal("1"))))  # slots
    assert not hasattr(LineItem("x", 1, Money(Decimal(1))), "__dict__")


def test_missing_fields_take_their_defaults(serializer: EventSerializer) -> None:
    data = serializer.serialize({"sku": "x", "quantity": 1, "price": {"amount": "2"}})
    copy = serializer.deserialize(data, LineItem)
    assert_exact(LineItem("x", 1, Money(Decimal("2"), "EUR"), []), copy)


def test_recursive_dataclass(serializer: EventSerializer) -> None:
    round_trip(serializer, Tree("root", [Tree("a", [Tree("a1")]), Tree("b")]))


def test_named_tuple_events(serializer: EventSerializer) -> None:
    round_trip(serializer, Point(1))
    copy = round_trip(
        serializer,
        Segment(Point(0, 0), Point(1, 1), "diagonal", Money(Decimal("2.50"))),
    )
    assert type(copy.start) is Point
    assert type(copy.cost) is Money
    round_trip(serializer, Segment(Point(0), Point(0)))


def test_named_tuple_defaults_are_filled_in(serializer: EventSerializer) -> None:
    assert serializer.deserialize(serializer.serialize({"x": 9}), Point) == Point(9, 0)


class Untyped(NamedTuple):
    a: Any
    b: list[int] | None = None


def test_named_tuple_with_any_and_optional(serializer: EventSerializer) -> None:
    round_trip(serializer, Untyped({"k": [1, "two"]}, [3]))


def test_to_dict_from_dict_objects(serializer: EventSerializer) -> None:
    event = Stamped(
        first=Stamp(dt.datetime(2024, 1, 1, tzinfo=PLUS_0530), "first"),
        others=[Stamp(dt.datetime(2024, 1, 2), "naive")],
    )
    round_trip(serializer, event)
    round_trip(serializer, event.first)  # as the event itself


def test_plain_values_as_events(serializer: EventSerializer) -> None:
    for event in [{"a": 1, "b": [1, 2]}, [1, "x"], "text", 5, None, True]:
        assert serializer.deserialize(serializer.serialize(event), type(event)) == event


def test_codecs_are_built_once_per_class(
    serializer: EventSerializer, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    real_build = _engine.build_codec

    def counting_build(event_class: object, *args: Any) -> Any:
        built.append(event_class)
        return real_build(event_class, *args)

    monkeypatch.setattr(_engine, "build_codec", counting_build)
    for _ in range(3):
        round_trip(serializer, Money(Decimal("1")))
        round_trip(serializer, Point(1, 2))
    assert built == [Money, Point]
