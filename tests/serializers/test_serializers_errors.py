"""Bad input and unsupported events: always a SerializationError that says where."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from _serializers_support import (
    SERIALIZER_IDS,
    SERIALIZERS,
    LineItem,
    Money,
    OrderPlacedEvent,
    Point,
    Shipment,
    Stamp,
    Stamped,
)

from eventspype.serializers import (
    EventSerializer,
    JsonEventSerializer,
    MsgpackEventSerializer,
    SerializationError,
)


@pytest.fixture(params=SERIALIZERS, ids=SERIALIZER_IDS)
def serializer(request: pytest.FixtureRequest) -> EventSerializer:
    return request.param()  # type: ignore[no-any-return]


def encode_document(serializer: EventSerializer, document: Any) -> bytes:
    """``document`` (plain values) in the serializer's wire format."""
    if isinstance(serializer, JsonEventSerializer):
        return msgspec.json.encode(document)
    return msgspec.msgpack.encode(document)


def rejects(
    serializer: EventSerializer, data: bytes, event_class: type
) -> SerializationError:
    with pytest.raises(SerializationError) as caught:
        serializer.deserialize(data, event_class)
    error = caught.value
    assert error.event_class is event_class
    assert event_class.__qualname__ in str(error)
    assert isinstance(error.__cause__, Exception)
    return error


# --- data that does not match the event class ---------------------------------------


@pytest.mark.parametrize(
    ("document", "event_class", "path", "reason"),
    [
        ({"order_id": 1}, OrderPlacedEvent, "$.amount", "missing required field"),
        (
            {"order_id": "1", "amount": 2.0},
            OrderPlacedEvent,
            "$.order_id",
            "Expected `int`",
        ),
        (
            {"order_id": {"id": 1}, "amount": 2.0},
            OrderPlacedEvent,
            "$.order_id",
            "object",
        ),
        ([1, 2.0], OrderPlacedEvent, "$", "Expected `object`"),
        ("order", OrderPlacedEvent, "$", "Expected `object`"),
        ({"x": [1]}, Point, "$.x", "Expected `int`"),
        ({"y": 1}, Point, "$.x", "missing required field"),
        (
            {"sku": "a", "quantity": 1, "price": {"amount": "x"}},
            LineItem,
            "$.price.amount",
            "decimal",
        ),
        (
            {"sku": "a", "quantity": 1, "price": {"amount": "1"}, "tags": [[1]]},
            LineItem,
            "$.tags[0]",
            "Expected `str`",
        ),
        (
            {"first": {"at": "2024-01-01", "note": "n"}, "others": [{"note": "n"}]},
            Stamped,
            "$.others[0]",
            "from_dict",
        ),
    ],
    ids=[
        "missing-field",
        "wrong-type",
        "extra-nesting",
        "array-for-object",
        "scalar-for-object",
        "named-tuple-wrong-type",
        "named-tuple-missing",
        "nested-bad-decimal",
        "nested-list-item",
        "from-dict-raises",
    ],
)
def test_mismatched_data_names_class_and_field(
    serializer: EventSerializer,
    document: Any,
    event_class: type,
    path: str,
    reason: str,
) -> None:
    error = rejects(serializer, encode_document(serializer, document), event_class)
    assert error.path == path
    assert reason.lower() in str(error).lower()
    if path != "$":
        assert f"`{path}`" in str(error)


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"\xff\xfe", b'{"order_id": 1, "amount": }', b"\xc1", b"\x81"],
    ids=repr,
)
def test_malformed_bytes(serializer: EventSerializer, data: bytes) -> None:
    rejects(serializer, data, OrderPlacedEvent)


def test_trailing_garbage_is_rejected(serializer: EventSerializer) -> None:
    data = serializer.serialize(OrderPlacedEvent(1, 2.0)) + b"\x00"
    rejects(serializer, data, OrderPlacedEvent)


@pytest.mark.parametrize("data", [None, 12, object()], ids=["None", "12", "object"])
def test_input_that_is_not_bytes(serializer: EventSerializer, data: Any) -> None:
    error = rejects(serializer, data, OrderPlacedEvent)
    assert "bytes" in str(error)


def test_deeply_nested_input(serializer: EventSerializer) -> None:
    # An Any field decodes whatever it is given: nesting must not crash.
    depth = 100_000
    if isinstance(serializer, JsonEventSerializer):
        data = b'{"payload":' + b"[" * depth + b"]" * depth + b"}"
    else:
        data = b"\x81\xa7payload" + b"\x91" * depth + b"\x00"
    error = rejects(serializer, data, AnyPayload)
    assert "nested too deeply" in str(error) or "recursion" in str(error)


def test_json_rejects_non_finite_floats_on_decode() -> None:
    serializer = JsonEventSerializer()
    data = serializer.serialize(OrderPlacedEvent(1, float("inf")))
    assert json.loads(data)["amount"] is None  # JSON has no infinity
    error = rejects(serializer, data, OrderPlacedEvent)
    assert error.path == "$.amount"


def test_a_failed_decode_returns_nothing(serializer: EventSerializer) -> None:
    @dataclasses.dataclass
    class Outer:
        first: Money
        second: Money

    document = {"first": {"amount": "1"}, "second": {"amount": []}}
    error = rejects(serializer, encode_document(serializer, document), Outer)
    assert error.path == "$.second.amount"


# --- nothing named by the data is imported or run ------------------------------------

_NO_IMPORT_SCRIPT = """
import sys
from dataclasses import dataclass
from eventspype.serializers import (
    JsonEventSerializer, MsgpackEventSerializer, SerializationError,
)

@dataclass
class Event:
    name: str

hostile = {
    "__class__": "os.system", "__module__": "antigravity",
    "__reduce__": ["os.system", ["true"]], "name": "x",
    "event_module": "this", "py/object": "subprocess.Popen",
}
before = set(sys.modules)
import msgspec
for serializer, encode in [(JsonEventSerializer(), msgspec.json.encode),
                           (MsgpackEventSerializer(), msgspec.msgpack.encode)]:
    assert serializer.deserialize(encode(hostile), Event) == Event("x")
    try:
        serializer.deserialize(encode({"name": hostile}), Event)
    except SerializationError:
        pass
new = sorted(m for m in set(sys.modules) - before if not m.startswith("msgspec"))
print(new)
"""


def test_data_never_imports_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _NO_IMPORT_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


# --- events the serializer cannot represent -------------------------------------------


class Opaque:
    """Neither a dataclass nor any supported protocol."""


@dataclasses.dataclass
class HoldsOpaque:
    thing: Opaque


@dataclasses.dataclass
class AmbiguousUnion:
    """Two object-like types in one union: msgspec cannot tell them apart."""

    value: Money | LineItem


@dataclasses.dataclass
class TwoStringTypes:
    value: str | Decimal


@dataclasses.dataclass
class AnyPayload:
    payload: Any
    note: str | None = None


def test_unsupported_event_class_names_the_type(serializer: EventSerializer) -> None:
    with pytest.raises(SerializationError, match="Opaque") as caught:
        serializer.serialize(Opaque())
    assert caught.value.event_class is Opaque
    with pytest.raises(SerializationError, match="Opaque"):
        serializer.deserialize(b"{}", Opaque)


def test_unsupported_field_type_names_the_type(serializer: EventSerializer) -> None:
    with pytest.raises(
        SerializationError, match=r"HoldsOpaque.*field `thing`.*Opaque is not supported"
    ) as caught:
        serializer.serialize(HoldsOpaque(Opaque()))
    assert caught.value.path == "$.thing"


@pytest.mark.parametrize(
    ("event_class", "event", "reason"),
    [
        (AmbiguousUnion, AmbiguousUnion(Money(Decimal(1))), "more than one dataclass"),
        (TwoStringTypes, TwoStringTypes("x"), "more than one str-like type"),
    ],
    ids=["two-dataclasses", "two-string-types"],
)
def test_unsupported_annotations_name_the_field(
    serializer: EventSerializer, event_class: type, event: object, reason: str
) -> None:
    for action in (
        lambda: serializer.serialize(event),
        lambda: serializer.deserialize(b"{}", event_class),
    ):
        with pytest.raises(SerializationError, match=reason) as caught:
            action()
        assert "field `value`" in str(caught.value)
        assert caught.value.path == "$.value"
        assert event_class.__qualname__ in str(caught.value)


def test_unrepresentable_value_names_its_type(serializer: EventSerializer) -> None:
    with pytest.raises(SerializationError, match="Opaque") as caught:
        serializer.serialize(AnyPayload(payload=Opaque()))
    assert "AnyPayload" in str(caught.value)
    assert caught.value.event_class is AnyPayload


def test_to_dict_without_from_dict_is_rejected_up_front(
    serializer: EventSerializer,
) -> None:
    class WriteOnly:
        def to_dict(self) -> dict[str, int]:
            return {}

    with pytest.raises(SerializationError, match="from_dict"):
        serializer.serialize(WriteOnly())


def test_self_referencing_value(serializer: EventSerializer) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="AnyPayload"):
        serializer.serialize(AnyPayload(payload=loop))


def test_messagepack_integers_beyond_64_bits() -> None:
    with pytest.raises(SerializationError, match=r"Point.*ints"):
        MsgpackEventSerializer().serialize(Point(2**64))


def test_lone_surrogates_cannot_be_encoded(serializer: EventSerializer) -> None:
    with pytest.raises(SerializationError, match="Money"):
        serializer.serialize(Money(Decimal(1), "\ud800"))


def test_an_unsupported_class_does_not_poison_the_cache(
    serializer: EventSerializer,
) -> None:
    for _ in range(2):
        with pytest.raises(SerializationError):
            serializer.serialize(AmbiguousUnion(Money(Decimal(1))))
    assert serializer.deserialize(serializer.serialize(Point(1)), Point) == Point(1)


def test_stamp_to_dict_errors_propagate_as_serialization_errors(
    serializer: EventSerializer,
) -> None:
    data = encode_document(serializer, {"at": 5, "note": "n"})
    error = rejects(serializer, data, Stamp)
    assert "from_dict" in str(error)


def test_shipment_with_wrong_enum_value(serializer: EventSerializer) -> None:
    document = {
        "shipment_id": "12345678-1234-5678-1234-567812345678",
        "shipped_at": "2024-01-01T00:00:00",
        "color": "purple",
        "total": "1",
        "items": [],
    }
    error = rejects(serializer, encode_document(serializer, document), Shipment)
    assert error.path == "$.color"
    assert "purple" in str(error) or "Invalid enum value" in str(error)


def test_decoders_accept_bytes_like_input() -> None:
    serializer = JsonEventSerializer()
    data = serializer.serialize(Point(1, 2))
    for form in (bytearray(data), memoryview(data), data.decode()):
        assert serializer.deserialize(form, Point) == Point(1, 2)  # type: ignore[arg-type]
    msgpack = MsgpackEventSerializer()
    data = msgpack.serialize(Point(1, 2))
    assert msgpack.deserialize(bytearray(data), Point) == Point(1, 2)  # type: ignore[arg-type]
