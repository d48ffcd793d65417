"""The public API: import paths, the abstract base, the eventspype 1.4.2 format."""

from __future__ import annotations

import dataclasses
import json
import pickle
import threading

import pytest
from _serializers_support import (
    SERIALIZER_IDS,
    SERIALIZERS,
    LineItem,
    Money,
    OrderPlacedEvent,
    Point,
    assert_exact,
)

import eventspype
import eventspype.serializers
from eventspype.serializers import (
    EventSerializer,
    JsonEventSerializer,
    MsgpackEventSerializer,
    SerializationError,
)

# --- import paths -------------------------------------------------------------------


def test_serializers_package_exports() -> None:
    assert set(eventspype.serializers.__all__) == {
        "EventSerializer",
        "JsonEventSerializer",
        "MsgpackEventSerializer",
        "SerializationError",
        "__version__",
    }
    assert eventspype.serializers.__version__.count(".") == 2


def test_lazy_reexports_from_eventspype() -> None:
    from eventspype import EventSerializer as Base
    from eventspype import JsonEventSerializer as Json
    from eventspype import MsgpackEventSerializer as Msgpack
    from eventspype import SerializationError as Error

    assert (Base, Json, Msgpack, Error) == (
        EventSerializer,
        JsonEventSerializer,
        MsgpackEventSerializer,
        SerializationError,
    )


def test_lazy_reexports_from_eventspype_broker() -> None:
    from eventspype.broker import EventSerializer as Base
    from eventspype.broker import JsonEventSerializer as Json

    assert (Base, Json) == (EventSerializer, JsonEventSerializer)


def test_reference_import_path_keeps_working() -> None:
    from eventspype.broker import serializer

    assert serializer.EventSerializer is EventSerializer
    assert serializer.JsonEventSerializer is JsonEventSerializer
    assert serializer.MsgpackEventSerializer is MsgpackEventSerializer
    assert serializer.SerializationError is SerializationError
    assert serializer.make_json_safe is eventspype.make_json_safe
    assert serializer.make_json_safe(Point(1, 2)) == {"x": 1, "y": 2}


def test_serialization_error_is_a_value_error() -> None:
    assert issubclass(SerializationError, ValueError)


def test_serialization_error_pickles_with_its_attributes() -> None:
    error = SerializationError("boom", event_class=Money, path="$.amount")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.event_class, copy.path) == ("boom", Money, "$.amount")


# --- EventSerializer is abstract ---------------------------------------------------


def test_event_serializer_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        EventSerializer()  # type: ignore[abstract]


@pytest.mark.parametrize("missing", ["serialize", "deserialize"])
def test_subclass_missing_a_method_cannot_be_instantiated(missing: str) -> None:
    methods = {
        "serialize": lambda self, event: b"",
        "deserialize": lambda self, data, event_class: None,
    }
    del methods[missing]
    incomplete = type("Incomplete", (EventSerializer,), methods)
    with pytest.raises(TypeError, match=missing):
        incomplete()


def test_custom_serializer_from_the_documentation() -> None:
    class MySerializer(EventSerializer):
        def serialize(self, event: OrderPlacedEvent) -> bytes:
            return f"{event.order_id}:{event.amount}".encode()

        def deserialize(self, data: bytes, event_class: type) -> OrderPlacedEvent:
            order_id, amount = data.decode().split(":")
            return event_class(int(order_id), float(amount))  # type: ignore[no-any-return]

    serializer = MySerializer()
    event = OrderPlacedEvent(order_id=1, amount=49.99)
    assert (
        serializer.deserialize(serializer.serialize(event), OrderPlacedEvent) == event
    )


# --- the documented example -----------------------------------------------------------


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=SERIALIZER_IDS)
def test_documentation_example(serializer_class: type[EventSerializer]) -> None:
    serializer = serializer_class()
    data = serializer.serialize(OrderPlacedEvent(order_id=1, amount=49.99))
    assert isinstance(data, bytes)
    event = serializer.deserialize(data, OrderPlacedEvent)
    assert_exact(OrderPlacedEvent(order_id=1, amount=49.99), event)


# --- interoperability with eventspype 1.4.2 (JSON only) ------------------------------
# 1.4.2 writes json.dumps(dataclasses.asdict(event)) (NamedTuple: _asdict()) and
# reads event_class(**json.loads(data)). Both directions must work for the
# events it could handle.


def test_json_of_a_dataclass_is_an_object_keyed_by_field_names() -> None:
    event = OrderPlacedEvent(order_id=1, amount=49.99)
    data = JsonEventSerializer().serialize(event)
    assert json.loads(data) == dataclasses.asdict(event)


def test_json_of_a_named_tuple_event_is_an_object() -> None:
    data = JsonEventSerializer().serialize(Point(3, 4))
    assert json.loads(data) == {"x": 3, "y": 4}


@pytest.mark.parametrize(
    "event",
    [
        OrderPlacedEvent(order_id=7, amount=1.5),
        LineItem("a", 2, Money(1, "USD"), ["t"]),
    ],
    ids=["flat", "nested"],
)
def test_reads_what_1_4_2_writes_for_dataclasses(event: object) -> None:
    written_by_1_4_2 = json.dumps(dataclasses.asdict(event)).encode()  # type: ignore[call-overload]
    assert JsonEventSerializer().deserialize(written_by_1_4_2, type(event)) == event


def test_reads_what_1_4_2_writes_for_named_tuples() -> None:
    written_by_1_4_2 = json.dumps(Point(5, 6)._asdict()).encode()
    assert_exact(
        Point(5, 6), JsonEventSerializer().deserialize(written_by_1_4_2, Point)
    )


@pytest.mark.parametrize("event", [OrderPlacedEvent(1, 2.5), Point(1, 2)], ids=repr)
def test_1_4_2_reads_what_we_write(event: object) -> None:
    data = JsonEventSerializer().serialize(event)
    assert type(event)(**json.loads(data.decode("utf-8"))) == event


# --- sharing an instance -------------------------------------------------------------


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=SERIALIZER_IDS)
def test_one_instance_is_safe_to_share_between_threads(
    serializer_class: type[EventSerializer],
) -> None:
    serializer = serializer_class()
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def work(offset: int) -> None:
        start.wait()
        try:
            for n in range(300):
                event = LineItem(f"sku-{offset}-{n}", n, Money(n, "EUR"), [str(n)])
                copy = serializer.deserialize(serializer.serialize(event), LineItem)
                assert copy == event
                point = Point(offset, n)
                assert (
                    serializer.deserialize(serializer.serialize(point), Point) == point
                )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_repr_names_the_class() -> None:
    assert repr(JsonEventSerializer()) == "JsonEventSerializer()"
    assert repr(MsgpackEventSerializer()) == "MsgpackEventSerializer()"
